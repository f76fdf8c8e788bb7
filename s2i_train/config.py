"""Run configurations: frozen dataclasses built by the CLI, saved with every run (``config.json``
and inside ``checkpoint.pt``) and compared on ``--resume``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from s2i_train.errors import S2ITrainError

__all__ = ["RunConfig", "device_of", "resume_mismatch"]

C = TypeVar("C", bound="RunConfig")


@dataclass(frozen=True)
class RunConfig:
    """Options every command shares. ``batch_size`` is per process (MAE's convention); the
    learning rate is ``blr * batch_size * processes / 256``."""

    data: tuple[str, ...]
    out: str
    split: tuple[str, ...] = ("none",)
    stream: str = "joint"
    epochs: int = 100
    batch_size: int = 64
    input_size: int | None = None
    patch_size: int | None = None
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    blr: float = 1e-3
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    weight_decay: float = 0.05
    augment: bool = True
    show_progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)

    def lr(self, processes: int) -> float:
        return self.blr * self.batch_size * processes / 256


# options that may change between an interrupted run and its --resume without changing the result
_RESUMABLE = {"epochs", "workers", "device", "show_progress", "out"}


def resume_mismatch(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Options of ``now`` that differ from the checkpoint's ``saved`` config."""
    return [
        f"{k}: checkpoint {saved.get(k)!r}, now {v!r}"
        for k, v in now.items()
        if k not in _RESUMABLE and _plain(saved.get(k)) != _plain(v)
    ]


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def device_of(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; a CUDA device that is absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise S2ITrainError(
            f"--device {name!r}: not a device name (cpu, cuda, cuda:1, auto)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise S2ITrainError(f"--device {name}: CUDA is not available on this machine")
    return device
