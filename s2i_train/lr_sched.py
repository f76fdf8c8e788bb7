"""Learning-rate schedule: linear warmup, then half-cycle cosine to ``min_lr`` (MAE's ``lr_sched``).

Set every iteration with a fractional epoch, so the schedule does not depend on the batch count.
A param group's ``lr_scale`` (layer-wise decay) multiplies its rate.
"""

from __future__ import annotations

import math

import torch

__all__ = ["adjust_learning_rate", "lr_at"]


def lr_at(epoch: float, lr: float, min_lr: float, warmup_epochs: float, epochs: float) -> float:
    """Learning rate at fractional ``epoch``."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-8)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def adjust_learning_rate(
    optimizer: torch.optim.Optimizer,
    epoch: float,
    lr: float,
    min_lr: float,
    warmup_epochs: float,
    epochs: float,
) -> float:
    """Set every group's rate for fractional ``epoch``; returns the unscaled rate."""
    value = lr_at(epoch, lr, min_lr, warmup_epochs, epochs)
    for group in optimizer.param_groups:
        group["lr"] = value * group.get("lr_scale", 1.0)
    return value
