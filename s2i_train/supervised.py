"""What the evaluation commands share: the train/test datasets of a split, the encoder's source,
the supervised loop with per-epoch checkpoints and resume, and the saved test scores."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from s2i_train.backbone import Geometry, resolve_geometry
from s2i_train.checkpoint import check_exact, load_checkpoint, save_checkpoint
from s2i_train.config import RunConfig, device_of, resume_mismatch
from s2i_train.data import S2IDataset
from s2i_train.distributed import Dist
from s2i_train.engine import Batch, evaluate, extract_features, train_one_epoch
from s2i_train.errors import S2ITrainError
from s2i_train.inputs import NO_SPLIT, Batches, open_dataset
from s2i_train.lr_sched import adjust_learning_rate
from s2i_train.rundir import RunDir

__all__ = ["EvalConfig", "EvalSetup", "load_scores", "prepare", "save_scores", "train_and_test"]


@dataclass(frozen=True)
class EvalConfig(RunConfig):
    """Options of every evaluation: the encoder's source (exactly one of ``checkpoint``, ``init``,
    ``random_init``), ``model`` only without a checkpoint, and the semi-supervised label
    fraction."""

    checkpoint: str | None = None
    init: str | None = None
    random_init: bool = False
    model: str | None = None
    label_fraction: float | None = None
    eval_every: int = 0
    resume: bool = False
    overwrite: bool = False


@dataclass
class EvalSetup:
    cfg: EvalConfig
    geo: Geometry
    device: torch.device
    dist: Dist
    train_ds: S2IDataset
    test_ds: S2IDataset
    run: RunDir

    @property
    def workers(self) -> int:
        return (
            self.cfg.workers
            if self.cfg.workers is not None
            else (4 if self.device.type == "cuda" else 0)
        )

    def batches(self, ds: S2IDataset, train: bool, augment: bool = False) -> Batches:
        return Batches(
            ds,
            self.cfg.batch_size,
            self.geo.input_size,
            self.device,
            self.dist,
            train=train,
            augment=augment,
            seed=self.cfg.seed,
            workers=self.workers,
        )

    def saved_config(self) -> dict[str, Any]:
        d = dataclasses.replace(
            self.cfg,
            model=self.geo.model,
            input_size=self.geo.input_size,
            patch_size=self.geo.patch_size,
        ).to_dict()
        for k in ("resume", "overwrite"):
            d.pop(k)
        return d


def prepare(cfg: EvalConfig, kind: str, dist: Dist) -> EvalSetup:
    """Check every option, the checkpoint and both datasets before any training starts."""
    device = device_of(cfg.device)
    if any(s.lower() in NO_SPLIT for s in cfg.split):
        raise S2ITrainError(
            f"{kind} needs a split with a test part (--split NAME); 'none' has none"
        )
    geo = resolve_geometry(
        cfg.checkpoint, cfg.init, cfg.random_init, cfg.model, cfg.input_size, cfg.patch_size
    )
    train_ds = open_dataset(cfg.data, cfg.split, "train", cfg.stream, cfg.label_fraction, cfg.seed)
    test_ds = open_dataset(cfg.data, cfg.split, "test", cfg.stream)
    run = RunDir(cfg.out, kind, resume=cfg.resume, overwrite=cfg.overwrite, write=dist.main)
    return EvalSetup(cfg, geo, device, dist, train_ds, test_ds, run)


def resume_state(setup: EvalSetup, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load ``checkpoint.pt`` of the run being resumed; returns the first epoch still to run."""
    run = setup.run
    if not run.resuming:
        return 0
    state = load_checkpoint(run.checkpoint)
    if state.get("kind") != run.kind:
        raise S2ITrainError(
            f"{run.checkpoint}: a {state.get('kind')} checkpoint, not a {run.kind} run"
        )
    differ = resume_mismatch(state["config"], setup.saved_config())
    if differ:
        raise S2ITrainError(
            f"{run.checkpoint}: --resume with different options: {'; '.join(differ)}"
        )
    check_exact(model, state["model"], str(run.checkpoint))
    optimizer.load_state_dict(state["optimizer"])
    run.drop_metrics_after(state["epoch"])
    return int(state["epoch"]) + 1


def train_and_test(
    setup: EvalSetup,
    model: nn.Module,
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    train_batches: Callable[[int], Iterator[Batch]],
    steps: int,
    features: Callable[[torch.Tensor], torch.Tensor] | None,
    lr: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Train ``trained`` (the whole model, or a DDP wrapper of it, or just the probe head), saving
    a checkpoint of ``model`` every epoch; then test ``model`` and save its scores."""
    cfg, dist, device, run = setup.cfg, setup.dist, setup.device, setup.run
    start = resume_state(setup, model, optimizer)
    run.save_config(
        {
            **setup.saved_config(),
            "train": repr(setup.train_ds),
            "test": repr(setup.test_ds),
            "processes": dist.world,
            "lr": lr,
            **extra,
        }
    )
    if start == 0:
        run.log(
            event="start",
            train_samples=len(setup.train_ds),
            test_samples=len(setup.test_ds),
            steps_per_epoch=steps,
            lr=lr,
            **extra,
        )
    test = setup.batches(setup.test_ds, train=False)

    def schedule(opt: torch.optim.Optimizer, epoch: float) -> float:
        return adjust_learning_rate(opt, epoch, lr, cfg.min_lr, cfg.warmup_epochs, cfg.epochs)

    times: list[float] = []
    images = 0.0
    for epoch in range(start, cfg.epochs):
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + dist.rank)  # drop path; resumable
        stats = train_one_epoch(
            trained,
            train_batches(epoch),
            steps,
            optimizer,
            schedule,
            epoch,
            device,
            criterion,
            features,
            show_progress=cfg.show_progress and dist.main,
        )
        times.append(stats["seconds"])
        images += dist.sum(stats["images"], device)
        record = {
            "epoch": epoch,
            "loss": dist.mean(stats["loss"], device),
            "train_top1": stats["train_top1"],
            "lr": stats["lr"],
            "seconds": stats["seconds"],
            "images_per_s": dist.world * stats["images"] / max(stats["seconds"], 1e-9),
        }
        if (
            dist.main
            and cfg.eval_every
            and (epoch + 1) % cfg.eval_every == 0
            and epoch + 1 < cfg.epochs
        ):
            record.update({f"test_{k}": v for k, v in _test(setup, model, test)[0].items()})
        if dist.main:
            save_checkpoint(
                run.checkpoint,
                {
                    "kind": run.kind,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "config": setup.saved_config(),
                },
            )
            run.log(**record)
        dist.barrier()
    result: dict[str, Any] = {}
    if dist.main:
        metrics, logits, labels, index = _test(setup, model, test)
        save_scores(
            run.scores,
            logits,
            labels,
            index,
            setup.test_ds,
            {"kind": run.kind, "stream": cfg.stream},
        )
        result = {
            "command": run.kind,
            "stream": cfg.stream,
            "model": setup.geo.model,
            "source": setup.geo.source,
            **{k: metrics[k] for k in ("top1", "top5", "n_test")},
            "n_train": len(setup.train_ds),
            "epochs": cfg.epochs,
            "seconds_per_epoch": sum(times) / len(times) if times else None,
            "images_per_s": images / sum(times) if times else None,
            "scores": str(run.scores),
        }
        run.log(event="test", **metrics)
        run.save_result(result)
    dist.barrier()
    return result


def _test(
    setup: EvalSetup, model: nn.Module, test: Batches
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor, torch.Tensor]:
    model.eval()
    logits, labels, index = extract_features(
        model, test.epoch(0), len(test), setup.device, "test", setup.cfg.show_progress
    )
    return evaluate(logits, labels), logits, labels, index


def save_scores(
    path: Path,
    logits: torch.Tensor,
    labels: torch.Tensor,
    index: torch.Tensor,
    ds: S2IDataset,
    meta: dict[str, Any],
) -> None:
    """Per-sample test scores for fusion: logits (N, C), labels, dataset index and sample ids."""
    idx = index.cpu().numpy()
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        logits=logits.float().cpu().numpy(),
        labels=labels.cpu().numpy(),
        index=idx,
        sample_ids=np.asarray(ds.sample_ids)[idx].astype(str),
        meta=np.asarray(json.dumps({**meta, "datasets": [str(s.path) for s in ds.sources]})),
    )
    os.replace(tmp, path)


def load_scores(folder: str | Path) -> dict[str, Any]:
    """The scores an evaluation command saved in ``folder`` (or the file itself)."""
    path = Path(folder)
    if path.is_dir():
        path = path / "test_scores.npz"
    if not path.is_file():
        raise S2ITrainError(
            f"{path}: no saved test scores (run linprobe, finetune or knn with --out there)"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: f[k] for k in ("logits", "labels", "index", "sample_ids", "meta")}
    except (OSError, ValueError, KeyError) as exc:
        raise S2ITrainError(f"{path}: not a test-score file ({exc})") from None
    out["meta"] = json.loads(str(out["meta"]))
    out["path"] = str(path)
    return out


def print_init(report: Any, source: str | None, dist: Dist, show: bool = True) -> None:
    """Where the weights came from and what did not load, on stderr (rank 0; off with -q)."""
    if report is not None and dist.main and show:
        print(f"weights from {source}: {report.summary()}", file=sys.stderr)
