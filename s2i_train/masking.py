"""Patch masks for masked pretraining, as pure tensor functions of per-sample seeds.

A mask is drawn from a per-sample integer seed (see :func:`sample_seeds`) by a counter-based hash,
not
from torch's global generator. The same sample in the same epoch therefore gets the same mask
whatever
the batch it lands in, the rank that reads it or the device it runs on: DDP with K ranks reproduces
a
one-process run of the same global batch, and ``--resume`` reproduces an uninterrupted run.

Every strategy returns per-patch *scores* of shape (B, L) over the patch grid (rows = time, columns
=
joints, row-major like timm's patch embedding); the patches with the lowest scores stay visible, so
all
strategies share :func:`make_mask` and keep exactly the same number of patches in every sample.

- ``random``: uniform scores (MAE).
- ``block``: unions of random rectangles of patches (BEiT-style blockwise masking).
- ``joint``: whole patch columns, i.e. the same joints hidden in every frame.
- ``temporal``: whole patch rows, i.e. whole stretches of time hidden for every joint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = ["MASKINGS", "Mask", "hash_uniform", "keep_count", "make_mask", "sample_seeds"]

_M32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """An avalanching 32-bit integer hash (lowbias32) on int64 tensors; products stay below
    2**63."""
    x = x & _M32
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & _M32
    x = ((x ^ (x >> 15)) * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def sample_seeds(seed: int, epoch: int, index: torch.Tensor) -> torch.Tensor:
    """Per-sample int64 seeds from the run seed, the epoch and the samples' dataset indices."""
    base = _mix32(torch.tensor([seed * 0x9E3779B1 + epoch], dtype=torch.int64, device=index.device))
    return _mix32(base ^ _mix32(index.to(torch.int64) + 0x632BE5AB))


def hash_uniform(seeds: torch.Tensor, n: int, stream: int = 0) -> torch.Tensor:
    """(B, n) float32 uniforms in [0, 1) from (B,) int64 seeds; ``stream`` gives independent
    draws."""
    pos = torch.arange(n, device=seeds.device, dtype=torch.int64)
    x = _mix32(seeds[:, None] * 0x01000193 + _mix32(pos + stream * 0x5BD1E995 + 1)[None, :])
    return (_mix32(x ^ 0x27D4EB2D) >> 8).to(torch.float32) / 16777216.0  # 24 bits: exact in float32


def keep_count(strategy: str, grid: tuple[int, int], ratio: float) -> int:
    """Visible patches per sample; whole-row/column strategies keep whole rows/columns."""
    gh, gw = grid
    if strategy == "joint":
        return gh * max(1, round(gw * (1.0 - ratio)))
    if strategy == "temporal":
        return gw * max(1, round(gh * (1.0 - ratio)))
    return max(1, round(gh * gw * (1.0 - ratio)))


def _random_scores(seeds: torch.Tensor, grid: tuple[int, int], ratio: float) -> torch.Tensor:
    return hash_uniform(seeds, grid[0] * grid[1])


def _ranks(u: torch.Tensor) -> torch.Tensor:
    """Integer ranks (as float) of each row's values: whole groups stay apart after tie-breaking."""
    return torch.argsort(torch.argsort(u, dim=1), dim=1).to(torch.float32)


def _joint_scores(seeds: torch.Tensor, grid: tuple[int, int], ratio: float) -> torch.Tensor:
    gh, gw = grid
    col = _ranks(hash_uniform(seeds, gw))  # one score per patch column, shared by all its rows
    return col[:, None, :].expand(-1, gh, -1).reshape(len(seeds), gh * gw)


def _temporal_scores(seeds: torch.Tensor, grid: tuple[int, int], ratio: float) -> torch.Tensor:
    gh, gw = grid
    row = _ranks(hash_uniform(seeds, gh))  # one score per patch row, shared by all its columns
    return row[:, :, None].expand(-1, -1, gw).reshape(len(seeds), gh * gw)


_BLOCK_CANDIDATES = 32


def _block_scores(seeds: torch.Tensor, grid: tuple[int, int], ratio: float) -> torch.Tensor:
    """Rectangles (area 1/16..1/4 of the grid, aspect 0.3..3.3) are added until the masked target is
    covered; covered patches score above 1, so they are masked first."""
    gh, gw = grid
    n = gh * gw
    target = n - keep_count("block", grid, ratio)
    b, k = len(seeds), _BLOCK_CANDIDATES
    u = hash_uniform(seeds, 4 * k, stream=1).view(b, k, 4)
    area = n * (1 / 16 + u[..., 0] * (1 / 4 - 1 / 16))
    aspect = torch.exp(math.log(0.3) + u[..., 1] * 2 * math.log(1 / 0.3))
    h = torch.sqrt(area * aspect).round().clamp(1, gh)
    w = torch.sqrt(area / aspect).round().clamp(1, gw)
    top = (u[..., 2] * (gh - h + 1)).floor()
    left = (u[..., 3] * (gw - w + 1)).floor()
    rows = torch.arange(gh, device=seeds.device, dtype=torch.float32).view(1, 1, gh, 1)
    cols = torch.arange(gw, device=seeds.device, dtype=torch.float32).view(1, 1, 1, gw)
    inside = (
        (rows >= top[..., None, None])
        & (rows < (top + h)[..., None, None])
        & (cols >= left[..., None, None])
        & (cols < (left + w)[..., None, None])
    ).view(b, k, n)
    covered = inside.int().cummax(dim=1).values  # union of the first j rectangles, j = 1..k
    enough = covered.sum(-1) >= target  # (b, k)
    last = torch.full((b,), k - 1, dtype=torch.long, device=seeds.device)
    first = torch.where(enough.any(1), enough.float().argmax(1), last)
    union = covered[torch.arange(b, device=seeds.device), first].float()
    return union + hash_uniform(seeds, n, stream=2) * 0.5


MASKINGS: dict[str, Callable[[torch.Tensor, tuple[int, int], float], torch.Tensor]] = {
    "random": _random_scores,
    "block": _block_scores,
    "joint": _joint_scores,
    "temporal": _temporal_scores,
}


class Mask(NamedTuple):
    """``ids_keep`` (B, K) visible patch indices, ``ids_restore`` (B, L) the inverse permutation of
    [visible, masked] order, ``mask`` (B, L) float 1 for masked patches (MAE's convention)."""

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor


def make_mask(strategy: str, seeds: torch.Tensor, grid: tuple[int, int], ratio: float) -> Mask:
    """Draw a ``strategy`` mask for every seed over a (rows, columns) patch grid."""
    if strategy not in MASKINGS:
        raise ValueError(f"unknown masking {strategy!r}; choose from {', '.join(MASKINGS)}")
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    scores = MASKINGS[strategy](seeds, grid, ratio)
    # within a masked row/column, ties are broken by a second hash so the sort is deterministic
    n = grid[0] * grid[1]
    tie = hash_uniform(seeds, n, stream=3) * 1e-2
    ids_shuffle = torch.argsort(scores + tie, dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    k = keep_count(strategy, grid, ratio)
    mask = torch.ones_like(scores)
    mask[:, :k] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return Mask(ids_shuffle[:, :k], ids_restore, mask)
