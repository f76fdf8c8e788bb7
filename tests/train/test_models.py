"""MAE / DiffMAE models on timm ViTs: shapes, the masked loss, MAE's positions, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2i_train.masking import Mask, sample_seeds
from s2i_train.models import create_model, list_models
from s2i_train.models.diffmae import linear_alpha_bars
from s2i_train.models.vit import create_encoder, sincos_pos_embed

KW = dict(img_size=32, patch_size=8, decoder_dim=32, decoder_depth=1)


def _mae_reference_sincos(dim: int, gh: int, gw: int) -> np.ndarray:
    """facebookresearch/mae util/pos_embed.py, written out: columns first, then rows."""

    def one_d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
    emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), emb], axis=0)


def test_registry_names() -> None:
    names = list_models()
    for size in ("vit_tiny", "vit_small", "vit_base"):
        assert {size, f"mae_{size}", f"diffmae_{size}"} <= set(names)
    with pytest.raises(KeyError, match="unknown model"):
        create_model("mae_vit_huge")


def test_sincos_matches_mae() -> None:
    ours = sincos_pos_embed(64, (4, 6))[0].numpy()
    np.testing.assert_allclose(ours, _mae_reference_sincos(64, 4, 6), atol=1e-6)


def test_default_geometry_is_vit_b16_224() -> None:
    model = create_model("mae_vit_base")
    assert model.grid == (14, 14) and model.embed_dim == 768 and len(model.blocks) == 12
    assert model.decoder_embed.out_features == 512 and len(model.decoder_blocks) == 8
    assert model.decoder_blocks[0].attn.num_heads == 16
    assert not model.pos_embed.requires_grad


@pytest.mark.parametrize("name", ["mae_vit_test", "diffmae_vit_test"])
def test_forward_shapes_and_masked_loss(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **KW)
    imgs = torch.randn(3, 3, 32, 32)
    seeds = sample_seeds(0, 0, torch.arange(3))
    loss, pred, mask = model(imgs, seeds)
    assert pred.shape == (3, 16, 8 * 8 * 3) and mask.shape == (3, 16)
    assert torch.equal(mask.sum(1), torch.full((3,), 12.0))
    loss2, _, _ = model(imgs, seeds)
    assert torch.equal(loss, loss2)  # the same seeds give the same mask and noise
    # the loss only sees masked patches: changing a visible patch's pixels changes the input,
    # but targets of visible patches never enter the loss
    if name.startswith("mae"):
        target = model.target(imgs)
        manual = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
        torch.testing.assert_close(loss, manual)


def test_patchify_roundtrip_and_norm_pix() -> None:
    model = create_model("mae_vit_test", norm_pix_loss=True, **KW)
    imgs = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.unpatchify(model.patchify(imgs)), imgs)
    t = model.target(imgs)
    torch.testing.assert_close(t.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.std(-1), torch.ones(2, 16), atol=1e-3, rtol=0)


def test_non_square_input() -> None:
    model = create_model(
        "mae_vit_test", img_size=(32, 16), patch_size=8, decoder_dim=32, decoder_depth=1
    )
    loss, pred, mask = model(torch.randn(2, 3, 32, 16), sample_seeds(0, 0, torch.arange(2)))
    assert model.grid == (4, 2) and pred.shape == (2, 8, 192)
    torch.testing.assert_close(
        model.unpatchify(model.patchify(torch.ones(1, 3, 32, 16))), torch.ones(1, 3, 32, 16)
    )


def test_encoder_keys_load_into_the_evaluation_vit_and_agree() -> None:
    torch.manual_seed(0)
    model = create_model("mae_vit_test", **KW).eval()
    enc = create_encoder("vit_test", img_size=32, patch_size=8).eval()
    enc.load_state_dict(model.encoder_state_dict(), strict=True)
    imgs = torch.randn(2, 3, 32, 32)
    all_visible = Mask(
        torch.arange(16).expand(2, -1), torch.arange(16).expand(2, -1), torch.zeros(2, 16)
    )
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_encoder(imgs, all_visible), enc.forward_features(imgs)
        )


def test_diffusion_schedule() -> None:
    ab = linear_alpha_bars(1000)
    assert ab.shape == (1000,) and torch.all(ab[1:] < ab[:-1])
    assert abs(float(ab[0]) - (1 - 1e-4)) < 1e-12 and float(ab[-1]) < 1e-4


@pytest.mark.parametrize("name", ["mae_vit_test", "diffmae_vit_test"])
def test_tiny_model_learns_a_repeated_batch(name: str) -> None:
    """The reconstruction loss on one fixed batch must fall by half; a broken loss or mask
    cannot."""
    torch.manual_seed(0)
    model = create_model(name, **KW)
    xs = torch.linspace(0, 1, 32)
    imgs = torch.stack(
        [torch.sin(6 * xs[:, None] * (k + 1) + xs[None, :]).expand(3, -1, -1) for k in range(8)]
    )
    seeds = sample_seeds(0, 0, torch.arange(8))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss, _, _ = model(imgs, seeds)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first
