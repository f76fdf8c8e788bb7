"""Checkpoints: atomic save and exact resume of runs, and ``--init`` from image-pretrained files.

A run checkpoint (``RUN/checkpoint.pt``) is a dict with ``model`` (the full state dict,
MAE-repository
key names), ``optimizer``, ``epoch`` (the last finished epoch), ``config`` (the run's options) and
``kind`` (``pretrain``, ``linprobe`` or ``finetune``). It is written to a temporary file in the same
folder, flushed and renamed over the old one, so a crash never leaves a half-written checkpoint.

``--init FILE`` accepts the MAE repository's files (``{"model": state_dict}``, with or without the
``decoder_*`` keys) and timm's (a bare state dict, ``.pth``/``.bin`` or ``.safetensors``, possibly
under ``state_dict``/``module.``). Position embeddings are interpolated to the model's patch grid
and
patch-embedding kernels resampled to its patch size; what did not load is reported.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from s2i_train.errors import CheckpointMismatchError, S2ITrainError
from s2i_train.models.vit import is_decoder_key

__all__ = [
    "InitReport",
    "check_exact",
    "load_checkpoint",
    "load_init",
    "load_weights",
    "read_state_dict",
    "save_checkpoint",
]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _torch_load(path: Path) -> Any:
    """``torch.load`` without executing pickled code; MAE files pickle an ``argparse.Namespace``."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise S2ITrainError(f"{path}: no such file") from None
    except Exception as exc:  # corrupt, truncated or not a torch file
        raise S2ITrainError(
            f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A run checkpoint written by :func:`save_checkpoint`, with a clear error for anything else."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    state = _torch_load(path)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise S2ITrainError(
            f"{path}: not an s2i-train run checkpoint (no 'model'/'config' entries)"
        )
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensor state dict inside an MAE-repository, timm or s2i-train file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise S2ITrainError(
                f"{path}: reading .safetensors needs the 'safetensors' package"
            ) from None
        try:
            sd: Any = load_file(str(path))
        except Exception as exc:
            raise S2ITrainError(f"{path}: not a readable safetensors file ({exc})") from None
    else:
        sd = _torch_load(path)
    for key in ("model", "state_dict", "model_state"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if (
        not isinstance(sd, dict)
        or not sd
        or not all(isinstance(v, torch.Tensor) for v in sd.values())
    ):
        raise S2ITrainError(
            f"{path}: no state dict of tensors found "
            "(looked at the top level, 'model', 'state_dict')"
        )
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


@dataclass
class InitReport:
    """What ``--init`` did: keys loaded, resized on the way, ignored (decoder keys on a model
    without that decoder, or a classifier head), left at their initial values (missing) or not
    understood."""

    loaded: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def names(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")

        lines = [f"loaded {len(self.loaded)} tensors"]
        for label, keys in (
            ("resized", self.resized),
            ("ignored", self.ignored),
            ("missing (left at initial values)", self.missing),
            ("unexpected (not used)", self.unexpected),
        ):
            if keys:
                lines.append(f"{label}: {names(keys)}")
        return "; ".join(lines)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "loaded": len(self.loaded),  # type: ignore[dict-item]
            "resized": self.resized,
            "ignored": self.ignored,
            "missing": self.missing,
            "unexpected": self.unexpected,
        }


def _grid_of(tokens: int) -> tuple[int, int]:
    side = int(round(tokens**0.5))
    if side * side != tokens:
        raise CheckpointMismatchError(
            f"position embedding with {tokens} patch tokens is not a square grid; "
            "cannot interpolate it"
        )
    return side, side


def load_init(model: nn.Module, path: str | Path, use_decoder: bool | None = None) -> InitReport:
    """Load image-pretrained weights from the file ``path`` into ``model``; see
    :func:`load_weights`."""
    return load_weights(model, read_state_dict(path), str(path), use_decoder)


def load_weights(
    model: nn.Module, sd: dict[str, torch.Tensor], source: str, use_decoder: bool | None = None
) -> InitReport:
    """Load the state dict ``sd`` (MAE-repository / timm keys) into ``model``: the encoder, and the
    decoder when ``use_decoder`` (by default when the model has ``decoder_*`` parameters).

    Position embeddings (``pos_embed``, ``decoder_pos_embed``) are interpolated bicubically to the
    model's grid, the patch embedding kernel resampled to its patch size; tensors of other shapes
    are
    reported as unexpected, never silently cropped.
    """
    own = model.state_dict()
    report = InitReport()
    has_decoder = any(is_decoder_key(k) for k in own)
    use_decoder = has_decoder if use_decoder is None else use_decoder
    grid = tuple(model.patch_embed.grid_size)
    new_sd: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if is_decoder_key(key) and not use_decoder:
            report.ignored.append(key)
            continue
        if key.startswith("head.") or (key.startswith("fc_norm.") and key not in own):
            report.ignored.append(key)
            continue
        if key not in own:
            report.unexpected.append(key)
            continue
        target = own[key]
        if key in ("pos_embed", "decoder_pos_embed") and value.shape != target.shape:
            if value.shape[-1] != target.shape[-1]:
                report.unexpected.append(
                    f"{key} (width {value.shape[-1]}, model {target.shape[-1]})"
                )
                continue
            old = _grid_of(value.shape[1] - 1)
            value = resample_abs_pos_embed(
                value.float(), new_size=list(grid), old_size=list(old), num_prefix_tokens=1
            )
            report.resized.append(f"{key} {old[0]}x{old[1]} -> {grid[0]}x{grid[1]}")
        elif (
            key == "patch_embed.proj.weight"
            and value.shape != target.shape
            and value.shape[:2] == target.shape[:2]
        ):
            old_p = tuple(value.shape[-2:])
            value = resample_patch_embed(value.float(), list(target.shape[-2:]))
            report.resized.append(f"{key} patch {old_p[0]} -> {target.shape[-1]}")
        if value.shape != target.shape:
            report.unexpected.append(
                f"{key} (shape {tuple(value.shape)}, model {tuple(target.shape)})"
            )
            continue
        new_sd[key] = value.to(target.dtype)
        report.loaded.append(key)
    report.missing = [k for k in own if k not in new_sd and (use_decoder or not is_decoder_key(k))]
    if not any(k.startswith("blocks.") for k in new_sd):
        raise CheckpointMismatchError(
            f"{source}: no encoder block of the model was loaded; is it a ViT of this size? "
            f"({report.summary()})"
        )
    model.load_state_dict(new_sd, strict=False)
    return report


def check_exact(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` requiring the same keys and shapes, or raise a mismatch naming
    ``source``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(
            f"{source} does not fit the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shapes {shapes[:5]}"
        )
    model.load_state_dict(state_dict, strict=True)
