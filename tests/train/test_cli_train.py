"""``s2i-train`` end to end on tiny generated datasets: pretrain -> linprobe / finetune / knn ->
fuse,
exact resume, clear errors before training, and DDP (2 gloo processes) against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2i_train import pretrain as pretrain_module
from s2i_train.cli import main
from s2i_train.data import S2IDataset
from s2i_train.models import create_model

REPO = Path(__file__).resolve().parents[2]
TINY = ["--model", "vit_test", "--input-size", "32", "--patch-size", "8", "--device", "cpu", "-q"]
DECODER = ["--decoder-dim", "32", "--decoder-depth", "1"]


@pytest.fixture(scope="module")
def data(datasets: Any) -> dict[str, Path]:
    """The session's tiny NTU-format (48 samples, 6 classes) and NW-UCLA-format (24) datasets."""
    return {"ntu": datasets.ntu, "ucla": datasets.ucla}


def _run(*args: Any, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    if code:
        return {"output": result.output}
    last = result.stdout.strip().splitlines()[-1]
    return json.loads(last)


def _pretrain(data: dict[str, Path], out: Path, *extra: Any, epochs: int = 2) -> dict[str, Any]:
    return _run(
        "pretrain",
        "--data",
        data["ntu"],
        "--split",
        "ntu60-xsub",
        *TINY,
        *DECODER,
        "--epochs",
        epochs,
        "--batch-size",
        8,
        "--blr",
        1e-2,
        "--warmup-epochs",
        1,
        "--out",
        out,
        *extra,
    )


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_pretrain_probe_finetune_knn_fuse(data: dict[str, Path], tmp_path: Path) -> None:
    pre = _pretrain(data, tmp_path / "pre", "--method", "mae")
    assert pre["command"] == "pretrain" and pre["final_loss"] > 0 and pre["images_per_s"] > 0
    epochs = [m for m in _metrics(tmp_path / "pre") if "epoch" in m]
    assert [m["epoch"] for m in epochs] == [0, 1] and (tmp_path / "pre" / "checkpoint.pt").is_file()

    common = [
        "--data",
        data["ntu"],
        "--split",
        "ntu60-xsub",
        "--device",
        "cpu",
        "-q",
        "--batch-size",
        8,
    ]
    ck = ["--checkpoint", tmp_path / "pre"]
    lp = _run("linprobe", *common, *ck, "--epochs", 3, "--out", tmp_path / "lp")
    ft = _run("finetune", *common, *ck, "--epochs", 2, "--out", tmp_path / "ft", "--eval-every", 1)
    kn = _run("knn", *common, *ck, "--k", 5, "--out", tmp_path / "knn")
    base = _run(
        "linprobe",
        *common,
        "--random-init",
        "--model",
        "vit_test",
        "--input-size",
        32,
        "--patch-size",
        8,
        "--epochs",
        3,
        "--out",
        tmp_path / "lp0",
    )
    for res in (lp, ft, kn, base):
        assert set(res) >= {"top1", "top5", "n_test"} and 0 <= res["top1"] <= res["top5"] <= 100
        assert res["n_test"] == lp["n_test"] > 0
    assert base["source"] == "random" and lp["source"] == "checkpoint"
    scores = dict(np.load(tmp_path / "ft" / "test_scores.npz"))
    assert (
        scores["logits"].shape == (ft["n_test"], 120) and len(scores["sample_ids"]) == ft["n_test"]
    )
    assert any(
        "test_top1" in m for m in _metrics(tmp_path / "ft")
    )  # --eval-every logs test figures

    fused = _run("fuse", tmp_path / "lp", tmp_path / "ft", tmp_path / "knn")
    assert fused["n_test"] == lp["n_test"] and len(fused["runs"]) == 3
    assert [r["top1"] for r in fused["runs"]] == pytest.approx([lp["top1"], ft["top1"], kn["top1"]])

    # transfer: the NTU-pretrained encoder fine-tuned on the NW-UCLA format (another grid width)
    tr = _run(
        "finetune",
        "--data",
        data["ucla"],
        "--split",
        "ucla-xview",
        *ck,
        "--device",
        "cpu",
        "-q",
        "--epochs",
        1,
        "--batch-size",
        8,
        "--out",
        tmp_path / "transfer",
    )
    assert tr["n_test"] > 0 and tr["model"] == "vit_test"


def test_universal_diffmae_pretraining_on_two_formats(
    data: dict[str, Path], tmp_path: Path
) -> None:
    res = _run(
        "pretrain",
        "--data",
        data["ntu"],
        "--data",
        data["ucla"],
        *TINY,
        *DECODER,
        "--method",
        "diffmae",
        "--mask",
        "temporal",
        "--epochs",
        1,
        "--batch-size",
        16,
        "--out",
        tmp_path / "u",
    )
    both = S2IDataset([data["ntu"], data["ucla"]])
    assert _metrics(tmp_path / "u")[0]["samples"] == len(both) > len(S2IDataset(data["ntu"]))
    assert res["final_loss"] > 0


def test_python_dash_m_runs_the_cli() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "s2i_train", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert out.returncode == 0 and "pretrain" in out.stdout and "linprobe" in out.stdout


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["mae", "diffmae"])
def test_resume_reaches_the_weights_of_an_uninterrupted_run(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    _pretrain(data, tmp_path / "full", "--method", method, "--seed", 3, epochs=3)
    real = pretrain_module.pretrain_one_epoch

    def crash_in_epoch_2(*args: Any, **kwargs: Any) -> Any:
        if args[5] == 2:  # the epoch argument
            raise _Interrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "pretrain_one_epoch", crash_in_epoch_2)
    with pytest.raises(_Interrupt):
        _pretrain(data, tmp_path / "cut", "--method", method, "--seed", 3, epochs=3)
    monkeypatch.undo()
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["epoch"] == 1
    _pretrain(data, tmp_path / "cut", "--method", method, "--seed", 3, "--resume", epochs=3)
    _assert_same(_state(tmp_path / "full"), _state(tmp_path / "cut"))
    assert [m["epoch"] for m in _metrics(tmp_path / "cut") if "epoch" in m] == [0, 1, 2]


def test_finetune_resume_is_exact(data: dict[str, Path], tmp_path: Path) -> None:
    """Drop path and augmentation are reseeded per epoch, so a resumed fine-tune matches too."""
    common = [
        "--data",
        data["ntu"],
        "--split",
        "ntu60-xsub",
        *TINY,
        "--random-init",
        "--batch-size",
        8,
        "--drop-path",
        "0.2",
    ]
    _run("finetune", *common, "--epochs", 2, "--out", tmp_path / "full")
    _run("finetune", *common, "--epochs", 2, "--out", tmp_path / "cut")
    state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    # rewind the finished run to its first epoch, as if it had been killed during the second
    _run("finetune", *common, "--epochs", 1, "--out", tmp_path / "one")
    os.replace(tmp_path / "one" / "checkpoint.pt", tmp_path / "cut" / "checkpoint.pt")
    _run("finetune", *common, "--epochs", 2, "--out", tmp_path / "cut", "--resume")
    _assert_same(_state(tmp_path / "full"), _state(tmp_path / "cut"))
    assert state["epoch"] == 1


def test_errors_before_training(data: dict[str, Path], tmp_path: Path) -> None:
    ntu = ["--data", data["ntu"]]
    out = _run(
        "pretrain", *ntu, "--split", "no-such-split", *TINY, "--out", tmp_path / "a", code=1
    )["output"]
    assert "error:" in out and "no-such-split" in out and not (tmp_path / "a").exists()
    out = _run("pretrain", *ntu, "--stream", "depth", *TINY, "--out", tmp_path / "a", code=1)[
        "output"
    ]
    assert "depth" in out
    (tmp_path / "notdata").mkdir()
    out = _run("pretrain", "--data", tmp_path / "notdata", *TINY, "--out", tmp_path / "a", code=1)[
        "output"
    ]
    assert "notdata" in out
    out = _run("pretrain", *ntu, *TINY, "--input-size", 30, "--out", tmp_path / "a", code=1)[
        "output"
    ]
    assert "multiple" in out

    _pretrain(data, tmp_path / "pre", epochs=1)
    out = _run("pretrain", *ntu, *TINY, *DECODER, "--epochs", 1, "--out", tmp_path / "pre", code=1)[
        "output"
    ]
    assert "--resume" in out and "--overwrite" in out
    out = _run(
        "pretrain",
        *ntu,
        *TINY,
        *DECODER,
        "--epochs",
        1,
        "--mask",
        "block",
        "--resume",
        "--out",
        tmp_path / "pre",
        code=1,
    )["output"]
    assert "mask" in out and "different options" in out
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    out = _run("pretrain", *ntu, *TINY, "--overwrite", "--out", tmp_path / "mine", code=1)["output"]
    assert "thesis.tex" in out and (tmp_path / "mine" / "thesis.tex").is_file()

    ev = [*ntu, "--split", "ntu60-xsub", "--device", "cpu", "-q"]
    out = _run(
        "linprobe",
        *ev,
        "--checkpoint",
        tmp_path / "pre",
        "--model",
        "vit_tiny",
        "--out",
        tmp_path / "b",
        code=1,
    )["output"]
    assert "vit_test" in out and "vit_tiny" in out
    out = _run("linprobe", *ev, "--out", tmp_path / "b", code=1)["output"]
    assert "exactly one of --checkpoint" in out
    out = _run(
        "finetune", *ev, "--checkpoint", tmp_path / "nothing", "--out", tmp_path / "b", code=1
    )["output"]
    assert "nothing" in out
    out = _run(
        "linprobe", *ntu, "--split", "none", "--random-init", "--out", tmp_path / "b", code=1
    )["output"]
    assert "test part" in out
    out = _run("fuse", tmp_path / "pre", tmp_path / "pre", code=1)["output"]
    assert "no saved test scores" in out


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(data: dict[str, Path], tmp_path: Path) -> None:
    """2 gloo ranks with batch 8 each reach the weights of 1 process with batch 16: the sampler
    deals disjoint shards, DDP averages gradients, masks follow the samples."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [
        "pretrain",
        "--data",
        str(data["ntu"]),
        "--split",
        "ntu60-xsub",
        *TINY,
        *DECODER,
        "--epochs",
        "2",
        "--no-augment",
        "--blr",
        "1e-2",
        "--warmup-epochs",
        "1",
        "--seed",
        "1",
    ]
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "s2i_train",
            *args,
            "--batch-size",
            "16",
            "--out",
            str(tmp_path / "one"),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29533",
            "-m",
            "s2i_train",
            *args,
            "--batch-size",
            "8",
            "--out",
            str(tmp_path / "two"),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stderr
    assert (
        len([line for line in two.stdout.splitlines() if line.startswith("{")]) == 1
    )  # rank 0 alone prints
    a, b = _state(tmp_path / "one"), _state(tmp_path / "two")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["processes"] == 2


@pytest.mark.parametrize("method", ["mae", "diffmae"])
def test_pretrain_from_an_mae_repository_file(
    data: dict[str, Path], tmp_path: Path, method: str
) -> None:
    """--init with the MAE repository's layout at another input size: positions are resized, the
    decoder is used by MAE and ignored by DiffMAE, and the report lands in metrics.jsonl."""
    src = create_model("mae_vit_test", img_size=32, patch_size=8, decoder_dim=32, decoder_depth=1)
    torch.save({"model": src.state_dict(), "epoch": 1599}, tmp_path / "mae_visualize.pth")
    _run(
        "pretrain",
        "--data",
        data["ntu"],
        "--model",
        "vit_test",
        "--input-size",
        48,
        "--patch-size",
        8,
        *DECODER,
        "--device",
        "cpu",
        "-q",
        "--method",
        method,
        "--epochs",
        1,
        "--batch-size",
        8,
        "--init",
        tmp_path / "mae_visualize.pth",
        "--out",
        tmp_path / "run",
    )
    report = _metrics(tmp_path / "run")[0]["init"]
    assert "pos_embed 4x4 -> 6x6" in report["resized"] and not report["unexpected"]
    decoder_ignored = [k for k in report["ignored"] if k.startswith("decoder_")]
    assert bool(decoder_ignored) == (method == "diffmae")
    assert ("decoder_pos_embed 4x4 -> 6x6" in report["resized"]) == (method == "mae")
