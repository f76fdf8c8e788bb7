"""--init files in the MAE repository's and timm's layouts, atomic saves, exact loads."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from s2i_train.checkpoint import (
    check_exact,
    load_checkpoint,
    load_init,
    read_state_dict,
    save_checkpoint,
)
from s2i_train.errors import CheckpointMismatchError, S2ITrainError
from s2i_train.models import create_model
from s2i_train.models.vit import create_encoder


def _mae_repo_file(
    tmp_path: Path, img_size: int = 32, patch: int = 8, decoder: bool = True
) -> Path:
    """A file shaped like facebookresearch/mae's: {'model': ..., 'args': Namespace, 'epoch':
    ...}."""
    torch.manual_seed(1)
    src = create_model(
        "mae_vit_test", img_size=img_size, patch_size=patch, decoder_dim=32, decoder_depth=1
    )
    sd = src.state_dict() if decoder else src.encoder_state_dict()
    path = tmp_path / ("mae_full.pth" if decoder else "mae_pretrain.pth")
    torch.save({"model": sd, "args": argparse.Namespace(model="mae_vit_test"), "epoch": 799}, path)
    return path


def _timm_file(tmp_path: Path, suffix: str = ".pth") -> Path:
    """A timm-layout file: a bare VisionTransformer state dict with a 1000-class head."""
    torch.manual_seed(2)
    src = create_encoder("vit_test", img_size=32, patch_size=8, num_classes=1000)
    path = tmp_path / f"timm{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(src.state_dict(), str(path))
    else:
        torch.save(src.state_dict(), path)
    return path


def test_mae_full_file_into_mae_loads_the_decoder(tmp_path: Path) -> None:
    path = _mae_repo_file(tmp_path)
    model = create_model("mae_vit_test", img_size=32, patch_size=8, decoder_dim=32, decoder_depth=1)
    report = load_init(model, path)
    assert not report.missing and not report.unexpected and not report.ignored
    src = read_state_dict(path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, src[key]), key


def test_mae_file_into_diffmae_and_encoder_ignores_the_decoder(tmp_path: Path) -> None:
    path = _mae_repo_file(tmp_path)
    diff = create_model(
        "diffmae_vit_test", img_size=32, patch_size=8, decoder_dim=32, decoder_depth=1
    )
    report = load_init(diff, path, use_decoder=False)
    assert "mask_token" in report.ignored and any(
        k.startswith("decoder_blocks") for k in report.ignored
    )
    assert torch.equal(
        diff.blocks[0].attn.qkv.weight, read_state_dict(path)["blocks.0.attn.qkv.weight"]
    )
    enc = create_encoder("vit_test", img_size=32, patch_size=8, num_classes=5)
    report = load_init(enc, path)
    assert report.missing == ["head.weight", "head.bias"] and not report.unexpected


def test_encoder_only_file_reports_the_decoder_missing(tmp_path: Path) -> None:
    path = _mae_repo_file(tmp_path, decoder=False)
    model = create_model("mae_vit_test", img_size=32, patch_size=8, decoder_dim=32, decoder_depth=1)
    report = load_init(model, path)
    assert "mask_token" in report.missing and "decoder_pred.weight" in report.missing
    assert "cls_token" in report.loaded


def test_position_embeddings_and_patches_are_resized(tmp_path: Path) -> None:
    path = _mae_repo_file(tmp_path, img_size=32, patch=8)  # 4x4 grid
    model = create_model("mae_vit_test", img_size=48, patch_size=8, decoder_dim=32, decoder_depth=1)
    report = load_init(model, path)
    assert (
        "pos_embed 4x4 -> 6x6" in report.resized
        and "decoder_pos_embed 4x4 -> 6x6" in report.resized
    )
    assert model.pos_embed.shape == (1, 37, 32)
    torch.testing.assert_close(model.pos_embed[0, 0], read_state_dict(path)["pos_embed"][0, 0])
    small = create_encoder("vit_test", img_size=32, patch_size=4)
    report = load_init(small, path)
    assert any(r.startswith("patch_embed.proj.weight patch 8 -> 4") for r in report.resized)
    assert small.patch_embed.proj.weight.shape == (32, 3, 4, 4)
    # the decoder's output layer depends on the patch size and cannot be resized: reported
    mae4 = create_model("mae_vit_test", img_size=32, patch_size=4, decoder_dim=32, decoder_depth=1)
    report = load_init(mae4, path)
    assert any(u.startswith("decoder_pred.weight") for u in report.unexpected)
    assert "decoder_pred.weight" in report.missing


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_layout(tmp_path: Path, suffix: str) -> None:
    path = _timm_file(tmp_path, suffix)
    model = create_model("mae_vit_test", img_size=32, patch_size=8, decoder_dim=32, decoder_depth=1)
    report = load_init(model, path)
    assert sorted(report.ignored) == ["head.bias", "head.weight"]
    assert "mask_token" in report.missing and not report.unexpected
    enc = create_encoder("vit_test", img_size=32, patch_size=8, num_classes=0, global_pool="avg")
    report = load_init(enc, path)
    assert (
        "norm.weight" in report.unexpected
    )  # avg pooling swaps the final norm for fc_norm, as MAE
    assert "fc_norm.weight" in report.missing


def test_wrapped_and_prefixed_state_dicts(tmp_path: Path) -> None:
    sd = create_encoder("vit_test", img_size=32, patch_size=8).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "w.pth")
    assert set(read_state_dict(tmp_path / "w.pth")) == set(sd)


def test_wrong_size_and_garbage_files_are_refused(tmp_path: Path) -> None:
    path = _timm_file(tmp_path)
    with pytest.raises(CheckpointMismatchError, match="no encoder block"):
        load_init(create_encoder("vit_tiny", img_size=32, patch_size=8), path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(S2ITrainError, match="junk.pth: not a readable torch checkpoint"):
        load_init(create_encoder("vit_test", img_size=32, patch_size=8), tmp_path / "junk.pth")
    with pytest.raises(S2ITrainError, match="no such file"):
        read_state_dict(tmp_path / "absent.pth")
    torch.save({"a": 1}, tmp_path / "nodict.pth")
    with pytest.raises(S2ITrainError, match="no state dict"):
        read_state_dict(tmp_path / "nodict.pth")


def test_save_is_atomic_and_load_checks_the_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "config": {"a": 1}, "epoch": 0})
    assert load_checkpoint(tmp_path)["epoch"] == 0

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"model": {}, "config": {}, "epoch": 1})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 0  # the old checkpoint survives intact
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left behind
    torch.save({"w": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(S2ITrainError, match="not an s2i-train run checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_check_exact_names_the_differences() -> None:
    enc = create_encoder("vit_test", img_size=32, patch_size=8, num_classes=3)
    sd = enc.state_dict()
    sd.pop("head.bias")
    with pytest.raises(CheckpointMismatchError, match="head.bias"):
        check_exact(enc, sd, "run/checkpoint.pt")
