"""S2I encoding: selected actors -> joint/motion/bone grids (and images), the pixel mapping, stats.

A sample's actors ``(M, T, V, 3)`` are centred on the main actor, optionally rotated into a body
frame, laid out as columns (parts in spec order, persons side by side), turned into the requested
streams, resampled to a fixed number of rows and stored as float16 in metres (the *compact grid*).
Images are always derived from that float16 grid, so a stored compact sample plus the recorded
pixel-mapping parameters reproduce a stored uint8 image bit for bit (:func:`to_image`).
``docs/ENCODING.md`` is the precise description; the arithmetic lives in ``kernels/s2i.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .errors import EmptySampleError, SourceLocation, StoreError
from .kernels import s2i as _k
from .planar import ALIGN_2D_MESSAGE, ImageRule, image_rule, to_plane_units
from .skeleton import Skeleton
from .specs import PART_NAMES, JointSpec

__all__ = [
    "STREAMS",
    "PIXEL_MAPPING",
    "EncodeConfig",
    "StreamStats",
    "column_layout",
    "encode",
    "pixel_mapping_params",
    "stored_shape",
    "to_image",
]

#: Every stream, in canonical order; a config may request any subset in any order.
STREAMS: tuple[str, ...] = ("joint", "motion", "bone")
_STREAM_CODE = {"joint": _k.STREAM_JOINT, "motion": _k.STREAM_MOTION, "bone": _k.STREAM_BONE}
_DTYPES = ("float16", "uint8")
#: Name of the one pixel mapping this version implements (recorded in every dataset).
PIXEL_MAPPING = "minmax-per-sample-channel"
#: Channels of every stored sample (x, y, z; a 2-D skeleton gets a zero third channel).
CHANNELS = 3
#: Values per float32 conversion chunk in :meth:`StreamStats.update` (bounds its memory).
_STATS_CHUNK_VALUES = 1 << 22


@dataclass(frozen=True)
class EncodeConfig:
    """How samples are encoded; stored with every dataset (``to_dict``) so it can be reproduced.

    Attributes:
        streams: any non-empty subset of :data:`STREAMS`, in the order they are stored.
        frames: rows of the compact grid (frames after linear resampling).
        align: rotate each sample so its spine points along +z and its shoulders along +x.
        image_size: ``None`` stores the compact grid; ``(H, W)`` stores the resized image.
        dtype: ``"float16"`` (physical units) or ``"uint8"`` (pixel mapping; needs ``image_size``).
    """

    streams: tuple[str, ...] = STREAMS
    frames: int = 64
    align: bool = False
    image_size: tuple[int, int] | None = None
    dtype: str = "float16"

    def __post_init__(self) -> None:
        streams = tuple(self.streams)
        object.__setattr__(self, "streams", streams)
        if (
            not streams
            or any(s not in STREAMS for s in streams)
            or len(set(streams)) != len(streams)
        ):
            raise ValueError(f"streams must be distinct names from {STREAMS}, found {streams}")
        if not isinstance(self.frames, int) or isinstance(self.frames, bool) or self.frames < 1:
            raise ValueError(f"frames must be a positive integer, found {self.frames!r}")
        if self.image_size is not None:
            size = tuple(self.image_size)
            if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
                raise ValueError(f"image_size must be two positive integers (H, W), found {size}")
            object.__setattr__(self, "image_size", size)
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, found {self.dtype!r}")
        if self.dtype == "uint8" and self.image_size is None:
            raise ValueError(
                "dtype uint8 needs an image_size: the compact grid is stored in metres"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists instead of tuples)."""
        return {
            "streams": list(self.streams),
            "frames": self.frames,
            "align": self.align,
            "image_size": None if self.image_size is None else list(self.image_size),
            "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EncodeConfig:
        """Inverse of :meth:`to_dict`; also accepts a dataset's ``encoding`` attribute, whose extra
        ``pixel_mapping`` entry is ignored here."""
        known = {"streams", "frames", "align", "image_size", "dtype"}
        unknown = set(d) - known - {"pixel_mapping"}
        if unknown:
            raise ValueError(f"unknown encoding keys {sorted(unknown)}; expected {sorted(known)}")
        kwargs = {k: d[k] for k in known if k in d}
        if kwargs.get("image_size") is not None:
            kwargs["image_size"] = tuple(kwargs["image_size"])
        if "streams" in kwargs:
            kwargs["streams"] = tuple(kwargs["streams"])
        return cls(**kwargs)


def stored_shape(spec: JointSpec, cfg: EncodeConfig) -> tuple[int, int, int, int]:
    """``(S, 3, H, W)`` of one stored sample; compact: ``H = frames``, ``W = max_persons * V``."""
    if cfg.image_size is None:
        return (len(cfg.streams), CHANNELS, cfg.frames, spec.max_persons * spec.num_joints)
    return (len(cfg.streams), CHANNELS, cfg.image_size[0], cfg.image_size[1])


def column_layout(spec: JointSpec) -> list[dict[str, Any]]:
    """What every column of the compact grid holds: ``{"column", "person", "joint", "part"}``."""
    order = spec.column_order
    part = spec.part_of_column
    return [
        {
            "column": m * len(order) + k,
            "person": m,
            "joint": spec.joints[int(order[k])],
            "part": PART_NAMES[int(part[k])],
        }
        for m in range(spec.max_persons)
        for k in range(len(order))
    ]


def pixel_mapping_params(cfg: EncodeConfig) -> dict[str, Any]:
    """The parameters of :func:`to_image`, recorded in the dataset's ``encoding`` attribute."""
    return {
        "name": PIXEL_MAPPING,
        "source": "float16 compact grid",
        "normalise": "per sample, stream and channel: (v - min) / (max - min); 0 if max == min",
        "interpolation": "bilinear",
        "align_corners": False,
        "antialias": False,
        "rounding": "uint8(floor(clip(v, 0, 1) * 255 + 0.5)), float32",
        "image_size": None if cfg.image_size is None else list(cfg.image_size),
    }


def _as_float32(grid: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy or view; float16 goes through the exact unpacking kernel."""
    if grid.dtype == np.float16:
        bits = np.ascontiguousarray(grid).view(np.uint16)
        out = np.empty(grid.shape, np.float32)
        _k._unpack_half(bits.reshape(-1), out.reshape(-1))
        return out
    return np.ascontiguousarray(grid, dtype=np.float32)


def _as_float16(values: np.ndarray) -> np.ndarray:
    """float32 -> float16 by the packing kernel (the bits of ``astype``, several times faster)."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    bits = np.empty(flat.size, np.uint16)
    _k._pack_half(flat, bits)
    return bits.view(np.float16).reshape(values.shape)


def to_image(
    grid: np.ndarray, size: tuple[int, int], mapping: Mapping[str, Any], *, as_float: bool = False
) -> np.ndarray:
    """The one pixel mapping: stored compact sample(s) -> image(s).

    ``grid`` is ``(..., T, W)`` float16 or float32, typically ``(S, 3, T, W)`` or a batch of those.
    Each ``(T, W)`` plane (one stream and channel of one sample) is min-max normalised to [0, 1],
    resized bilinearly to ``size = (H, W)`` with half-pixel centres, and quantised as
    ``floor(v * 255 + 0.5)`` in float32. Returns ``(..., H, W)`` uint8, or with ``as_float`` the
    float32 values in [0, 1] before quantisation (for a training loader that normalises itself).

    Raises:
        StoreError: ``mapping`` names a mapping this version does not implement.
    """
    name = mapping.get("name")
    if (
        name != PIXEL_MAPPING
        or mapping.get("interpolation", "bilinear") != "bilinear"
        or mapping.get("align_corners", False)
    ):
        raise StoreError(
            f"pixel mapping {dict(mapping)!r} is not implemented by this s2i version; "
            f"it implements {pixel_mapping_params(EncodeConfig())!r}"
        )
    height, width = (int(v) for v in size)
    lead = grid.shape[:-2]
    planes = _as_float32(grid).reshape((-1,) + grid.shape[-2:])
    if as_float:
        return _k._to_image(planes, height, width).reshape(lead + (height, width))
    out = np.empty((planes.shape[0], height, width), np.uint8)
    _k._to_image_u8(planes, height, width, out)
    return out.reshape(lead + (height, width))


class _Plan(NamedTuple):
    """Everything :func:`encode` derives from (spec, cfg) once, not per sample."""

    col_joint: np.ndarray
    parent_joint: np.ndarray
    streams: np.ndarray
    spine: tuple[int, int]
    shoulders: tuple[int, int]
    mapping: dict[str, Any]
    planar: ImageRule | None  # 2-D specs: image coordinates -> image heights (planar.py)


_PLANS: dict[tuple[int, EncodeConfig], tuple[JointSpec, _Plan]] = {}


def _plan(spec: JointSpec, cfg: EncodeConfig) -> _Plan:
    """The cached :class:`_Plan`: spec properties rebuild their arrays on every access."""
    key = (id(spec), cfg)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    if cfg.align and len(spec.dims) < CHANNELS:
        raise ValueError(ALIGN_2D_MESSAGE.format(fmt=spec.format))
    order = spec.column_order
    plan = _Plan(
        col_joint=order.astype(np.uint64),
        parent_joint=spec.parent_array.astype(np.uint64),
        streams=np.array([_STREAM_CODE[s] for s in cfg.streams], np.int64),
        spine=spec.align_spine or (_k.NO_JOINT, _k.NO_JOINT),
        shoulders=spec.align_shoulders or (_k.NO_JOINT, _k.NO_JOINT),
        mapping=pixel_mapping_params(cfg),
        planar=image_rule(spec) if len(spec.dims) < CHANNELS else None,
    )
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = (spec, plan)
    return plan


def encode(skel: Skeleton, spec: JointSpec, cfg: EncodeConfig) -> np.ndarray:
    """One sample -> ``stored_shape(spec, cfg)`` array of ``cfg.dtype``.

    The compact form is float16 in metres; ``image_size`` with float16 resizes that grid
    bilinearly (still metres); ``image_size`` with uint8 applies :func:`to_image` to it.

    Raises:
        EmptySampleError: the skeleton has no actor or no frame.
        ValueError: the skeleton does not match the spec (joint count, dims, too many actors).
    """
    plan = _plan(spec, cfg)
    joints = skel.joints
    if joints.ndim != 4 or joints.shape[2] != spec.num_joints or joints.shape[3] != len(spec.dims):
        raise ValueError(
            f"{skel.source}: sample {skel.name}: expected joints (M, T, {spec.num_joints}, "
            f"{len(spec.dims)}) for spec {spec.format!r}, found {joints.shape}"
        )
    n_persons, n_frames = joints.shape[:2]
    if n_persons == 0 or n_frames == 0:
        raise EmptySampleError(
            SourceLocation(skel.source), f"sample {skel.name} has no frames to encode"
        )
    if n_persons > spec.max_persons:
        raise ValueError(
            f"{skel.source}: sample {skel.name} has {n_persons} actors; spec {spec.format!r} "
            f"allows {spec.max_persons} (select bodies first)"
        )
    if plan.planar is not None:
        joints = to_plane_units(joints, plan.planar, skel.meta)
    if joints.shape[3] < CHANNELS:
        pad = np.zeros(joints.shape[:3] + (CHANNELS - joints.shape[3],), np.float32)
        joints = np.concatenate([joints.astype(np.float32), pad], axis=3)
    elif joints.dtype != np.float32 or not joints.flags.c_contiguous:
        joints = np.ascontiguousarray(joints, dtype=np.float32)
    out = np.empty(
        (len(cfg.streams), CHANNELS, cfg.frames, spec.max_persons * spec.num_joints), np.uint16
    )
    _k._encode_compact(
        joints,
        plan.col_joint,
        plan.parent_joint,
        spec.max_persons,
        spec.centre,
        plan.spine[0],
        plan.spine[1],
        plan.shoulders[0],
        plan.shoulders[1],
        cfg.align,
        plan.streams,
        out,
    )
    grid = out.view(np.float16)
    if cfg.image_size is None:
        return grid
    if cfg.dtype == "uint8":
        return to_image(grid, cfg.image_size, plan.mapping)
    height, width = cfg.image_size
    planes = _as_float32(grid).reshape((-1,) + grid.shape[-2:])
    resized = _k._resize_bilinear(planes, height, width)
    return _as_float16(resized).reshape(stored_shape(spec, cfg))


class StreamStats:
    """Per-stream, per-channel count / mean / std / min / max of stored values.

    Sums are float64; partial results add up, so merging shard statistics in shard order gives a
    deterministic result that equals a single pass up to float rounding. Every value counts,
    including the zeros of absent actors: the statistics describe what the model is fed. The five
    ``(S, 3)`` arrays are updated in place (the pipeline restores them on resume).
    """

    def __init__(self, num_streams: int) -> None:
        shape = (num_streams, CHANNELS)
        self.count = np.zeros(shape, np.int64)
        self.sum = np.zeros(shape, np.float64)
        self.sumsq = np.zeros(shape, np.float64)
        self.min = np.full(shape, np.inf)
        self.max = np.full(shape, -np.inf)

    def update(self, batch: np.ndarray) -> None:
        """Add a batch ``(k, S, 3, H, W)`` of stored samples (float16, float32 or uint8)."""
        if batch.ndim != 5 or batch.shape[1:3] != self.count.shape:
            raise ValueError(
                f"expected a batch (k, {self.count.shape[0]}, 3, H, W), found {batch.shape}"
            )
        per_sample = int(np.prod(batch.shape[1:]))
        step = max(1, _STATS_CHUNK_VALUES // max(per_sample, 1))
        plane = batch.shape[3] * batch.shape[4]
        totals = (self.count, self.sum, self.sumsq, self.min, self.max)
        for i in range(0, batch.shape[0], step):
            chunk = np.ascontiguousarray(batch[i : i + step])
            if chunk.dtype == np.float16:
                moments = _k._half_plane_moments(chunk.view(np.uint16).reshape(-1, plane))
            else:
                moments = _k._plane_moments(chunk.astype(np.float32).reshape(-1, plane))
            _k._fold_moments(
                moments.reshape(chunk.shape[0], -1, 4), plane, *(t.reshape(-1) for t in totals)
            )

    def packed(self) -> np.ndarray:
        """The five accumulators as one ``(5, S, 3)`` float64 array (counts are exact below
        2**53): one array to pickle per sample instead of five."""
        return np.stack([self.count, self.sum, self.sumsq, self.min, self.max]).astype(np.float64)

    def merge_packed(self, rows: np.ndarray) -> None:
        """Fold ``(k, 5, S, 3)`` stacked :meth:`packed` arrays in, in order: bit for bit what k
        calls of :meth:`merge` give (sums accumulate sequentially; counts, minima and maxima do
        not depend on the order), for a handful of numpy calls instead of 5k."""
        self.count += rows[:, 0].sum(axis=0).astype(np.int64)
        for total, k in ((self.sum, 1), (self.sumsq, 2)):
            total[...] = np.add.accumulate(np.concatenate([total[None], rows[:, k]]), axis=0)[-1]
        np.minimum(self.min, rows[:, 3].min(axis=0), out=self.min)
        np.maximum(self.max, rows[:, 4].max(axis=0), out=self.max)

    def merge(self, other: StreamStats) -> None:
        """Fold ``other`` (e.g. one shard's statistics) into this one."""
        if other.count.shape != self.count.shape:
            raise ValueError(
                f"cannot merge stats of {other.count.shape[0]} streams into {self.count.shape[0]}"
            )
        self.count += other.count
        self.sum += other.sum
        self.sumsq += other.sumsq
        np.minimum(self.min, other.min, out=self.min)
        np.maximum(self.max, other.max, out=self.max)

    def to_dict(self, streams: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{stream: {"mean": [3], "std": [3], "min": [3], "max": [3], "count": n}}`` (JSON-ready;
        ``None`` entries when nothing was counted). ``std`` is the population standard deviation."""
        if len(streams) != self.count.shape[0]:
            raise ValueError(f"expected {self.count.shape[0]} stream names, found {list(streams)}")
        result = {}
        for s, name in enumerate(streams):
            n = self.count[s]
            if n[0] == 0:
                result[name] = {"mean": None, "std": None, "min": None, "max": None, "count": 0}
                continue
            mean = self.sum[s] / n
            var = np.maximum(self.sumsq[s] / n - mean * mean, 0.0)
            result[name] = {
                "mean": mean.tolist(),
                "std": np.sqrt(var).tolist(),
                "min": self.min[s].tolist(),
                "max": self.max[s].tolist(),
                "count": int(n[0]),
            }
        return result
