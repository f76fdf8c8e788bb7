"""One epoch of pretraining or classification training, and evaluation: short loops with explicit
arguments, in the manner of MAE's ``engine_pretrain.py`` / ``engine_finetune.py``."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from s2i_train.errors import NonFiniteLossError
from s2i_train.masking import sample_seeds

__all__ = [
    "LrSchedule",
    "autocast",
    "evaluate",
    "extract_features",
    "pretrain_one_epoch",
    "train_one_epoch",
]

Batch = tuple[
    torch.Tensor, torch.Tensor, torch.Tensor
]  # imgs (B, 3, H, W), labels (B,), indices (B,)
LrSchedule = Callable[[torch.optim.Optimizer, float], float]


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; full float32 on CPU (exact, reproducible runs and tests)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _bar(batches: Iterable[Batch], total: int, desc: str, show: bool) -> Iterable[Batch]:
    # tqdm(disable=None) turns itself off when stderr is not a terminal
    return tqdm(
        batches,
        total=total,
        desc=desc,
        leave=False,
        dynamic_ncols=True,
        disable=None if show else True,
    )


def _check_finite(loss: torch.Tensor, epoch: int, step: int) -> None:
    if not math.isfinite(loss.item()):
        raise NonFiniteLossError(
            f"loss is {loss.item()} at epoch {epoch}, step {step}; lower --blr or check the data"
        )


def pretrain_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    steps: int,
    optimizer: torch.optim.Optimizer,
    schedule: LrSchedule,
    epoch: int,
    seed: int,
    device: torch.device,
    show_progress: bool = True,
) -> dict[str, float]:
    """Masked-reconstruction training for one epoch; returns mean loss, last lr, images, seconds."""
    model.train(True)
    total, n, lr, start = 0.0, 0, 0.0, time.perf_counter()
    bar = _bar(batches, steps, f"pretrain {epoch}", show_progress)
    for step, (imgs, _, index) in enumerate(bar):
        lr = schedule(optimizer, epoch + step / steps)
        with autocast(device):
            loss, _, _ = model(imgs, sample_seeds(seed, epoch, index))
        _check_finite(loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(imgs)
        n += len(imgs)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
    return {
        "loss": total / max(n, 1),
        "lr": lr,
        "images": n,
        "seconds": time.perf_counter() - start,
    }


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    steps: int,
    optimizer: torch.optim.Optimizer,
    schedule: LrSchedule,
    epoch: int,
    device: torch.device,
    criterion: nn.Module,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    show_progress: bool = True,
) -> dict[str, float]:
    """Supervised training for one epoch. ``features`` (the frozen encoder of a linear probe) runs
    without gradients before ``model`` (then just the head)."""
    model.train(True)
    total, correct, n, lr, start = 0.0, 0, 0, 0.0, time.perf_counter()
    bar = _bar(batches, steps, f"train {epoch}", show_progress)
    for step, (x, y, _) in enumerate(bar):
        lr = schedule(optimizer, epoch + step / steps)
        with autocast(device):
            if features is not None:
                with torch.no_grad():
                    x = features(x)
            logits = model(x)
            loss = criterion(logits.float(), y)
        _check_finite(loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        correct += int((logits.argmax(-1) == y).sum())
        n += len(y)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
    return {
        "loss": total / max(n, 1),
        "train_top1": 100.0 * correct / max(n, 1),
        "lr": lr,
        "images": n,
        "seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def extract_features(
    fn: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[Batch],
    steps: int,
    device: torch.device,
    desc: str = "features",
    show_progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``fn`` over every batch: (features float32, labels, dataset indices), in loader order."""
    feats, labels, indices = [], [], []
    for x, y, index in _bar(batches, steps, desc, show_progress):
        with autocast(device):
            f = fn(x)
        feats.append(f.float())
        labels.append(y)
        indices.append(index)
    return torch.cat(feats), torch.cat(labels), torch.cat(indices)


def evaluate(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 / top-5 accuracy in percent (top-5 is top-k with k = min(5, classes))."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit = top == labels[:, None]
    return {
        "top1": 100.0 * float(hit[:, 0].float().mean()),
        "top5": 100.0 * float(hit.any(1).float().mean()),
        "n_test": int(len(labels)),
        "loss": float(F.cross_entropy(logits.float(), labels)),
    }
