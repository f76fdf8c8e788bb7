"""Batched transforms on the training device: stored S2I samples -> model input.

Entry point for a training loop::

    to_input = ToModelInput.for_dataset(ds, size=224, train=True)   # train=False: no augmentation
    x = to_input(to_device(x, device))   # loader x (tensor, or list per geometry)
                                         # -> (B, S, 3, 224, 224) float32

Pipeline, per batch and per geometry group, all in float32 on ``x``'s device:

1. compact grids (metres): optional :class:`RandomRotation3D` of the xyz channels; then the
   dataset's pixel mapping (:func:`pixel_map`: min-max per sample, stream and channel) and a
   bilinear resize to ``size`` (:func:`resize`, half-pixel centres, no antialias), which is
   exactly what the converter does for ``--image-size`` datasets (``s2i_prep.encoding.to_image``;
   tests compare the two). With :class:`TemporalCropResize` the rows are cropped first and the
   mapping uses the crop's rows, as if the clip had been shorter.
2. stored uint8 images: / 255 (the inverse of the stored quantisation), optional temporal crop,
   resize when ``size`` differs. Stored float16 images (metres, already resized): min-max per
   plane of the resized image; the converter maps before resizing, so this only approximates
   the mapping (on the test data: max 0.08, mean 0.006 on the [0, 1] scale). Prefer the compact
   form: exact, and 16x smaller than a 224 x 224 float16 image.
3. per-channel normalisation ``(v - mean) / std`` (ImageNet's by default, as timm's ViTs expect).

No horizontal flip is offered: columns are body parts in a fixed order (torso, left arm, right
arm, left leg, right leg, then the second person), so flipping the image swaps and reverses
limbs into a layout no real sample has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from s2i_prep.encoding import PIXEL_MAPPING

from .errors import DatasetRequestError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RandomRotation3D",
    "TemporalCropResize",
    "ToModelInput",
    "check_pixel_mapping",
    "normalise",
    "pixel_map",
    "quantise",
    "resize",
    "to_device",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Batch = torch.Tensor | list[torch.Tensor]


def to_device(x: Batch, device: torch.device | str, non_blocking: bool = True) -> Batch:
    """A loader batch ``x`` (tensor or list of tensors) moved to ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=non_blocking)
    return [t.to(device, non_blocking=non_blocking) for t in x]


def check_pixel_mapping(mapping: Mapping[str, Any]) -> None:
    """Refuse a dataset whose recorded pixel mapping is not the one implemented here."""
    if (
        mapping.get("name") != PIXEL_MAPPING
        or mapping.get("interpolation", "bilinear") != "bilinear"
        or mapping.get("align_corners", False)
        or mapping.get("antialias", False)
    ):
        raise DatasetRequestError(
            f"pixel mapping {dict(mapping)!r} is not implemented by this s2i_train; it implements "
            f"{PIXEL_MAPPING!r} (bilinear, half-pixel centres, no antialias)"
        )


def pixel_map(grid: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Min-max of every (H, W) plane to [0, 1]; a constant plane becomes 0.

    Same float32 arithmetic as the converter's kernel: ``(v - lo) * (1 / (hi - lo))``. With
    ``rows`` ((B,) start, (B,) stop per sample of a ``(B, ..., H, W)`` batch) the minimum and
    maximum are taken over those rows only.
    """
    g = grid.float()
    if rows is None:
        lo = g.amin(dim=(-2, -1), keepdim=True)
        hi = g.amax(dim=(-2, -1), keepdim=True)
    else:
        start, stop = rows
        r = torch.arange(g.shape[-2], device=g.device)
        inside = (r >= start[:, None]) & (r < stop[:, None])  # (B, H)
        inside = inside.view(inside.shape[0], *([1] * (g.dim() - 3)), g.shape[-2], 1)
        lo = torch.where(inside, g, math.inf).amin(dim=(-2, -1), keepdim=True)
        hi = torch.where(inside, g, -math.inf).amax(dim=(-2, -1), keepdim=True)
    rng = hi - lo
    inv = torch.where(rng > 0, 1.0 / torch.where(rng > 0, rng, 1.0), 0.0)
    return (g - lo) * inv


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of the last two axes (half-pixel centres, no antialias: the converter's)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-2]
    flat = x.reshape(1, -1, *x.shape[-2:]) if x.dim() < 4 else x.reshape(-1, 1, *x.shape[-2:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=False)
    return out.reshape(*lead, *size)


def quantise(v: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 as stored: ``floor(clip(v, 0, 1) * 255 + 0.5)`` in float32."""
    return torch.floor(v.float().clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``(..., 3, H, W)``."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - m) / s


class RandomRotation3D:
    """Rotate the xyz coordinates of compact grids by random angles (and optionally scale).

    Why: a skeleton seen from another viewpoint is the same action; rotating the 3-D points
    before the pixel mapping makes new, physically possible views (unlike any 2-D image warp).
    Joint, motion and bone streams are linear in the joint positions, so one rotation per sample
    applies to all of them. Angles are uniform in ``[-max, max]`` radians about x, y and z (0.3
    rad, about 17 degrees, as the random rotation of CTR-GCN's and PYSKL's NTU pipelines).
    ``scale`` draws one uniform factor per sample; note that the per-channel min-max pixel mapping
    removes any scale, so it only matters to a model fed metres.
    """

    def __init__(
        self,
        max_angle: float | Sequence[float] = 0.3,
        scale: tuple[float, float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        angles = (
            [float(max_angle)] * 3
            if isinstance(max_angle, (int, float))
            else [float(a) for a in max_angle]
        )
        if len(angles) != 3 or any(a < 0 for a in angles):
            raise DatasetRequestError(
                f"max_angle must be >= 0, one or three values, found {max_angle!r}"
            )
        if scale is not None and not (0 < scale[0] <= scale[1]):
            raise DatasetRequestError(
                f"scale must be (low, high) with 0 < low <= high, found {scale!r}"
            )
        self.max_angle = tuple(angles)
        self.scale = scale
        self.generator = generator

    def matrices(self, n: int, device: torch.device) -> torch.Tensor:
        """(n, 3, 3) rotation (times scale) matrices R = Rz @ Ry @ Rx."""
        u = torch.rand(n, 3, generator=self.generator) * 2 - 1
        a = u * torch.tensor(self.max_angle)
        c, s = torch.cos(a), torch.sin(a)
        one, zero = torch.ones(n), torch.zeros(n)
        rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], 1)
        ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], 1)
        rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], 1)
        m = rz.view(n, 3, 3) @ ry.view(n, 3, 3) @ rx.view(n, 3, 3)
        if self.scale is not None:
            lo, hi = self.scale
            m = m * (lo + (hi - lo) * torch.rand(n, 1, 1, generator=self.generator))
        return m.to(device)

    def __call__(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, S, 3, T, W) metres -> rotated, same shape."""
        m = self.matrices(grid.shape[0], grid.device)
        return torch.einsum("bij,bsjtw->bsitw", m, grid.float())


class TemporalCropResize:
    """Draw one row window per sample: a random crop of ``[min_ratio, max_ratio]`` of the rows.

    Why: rows are time, so a crop stretched back to the full height is the same action performed
    faster or cut shorter, the main augmentation of the strongest skeleton pipelines (PYSKL's
    ``UniformSampleFrames``/``RandomResizedCrop`` in time). The crop and the resize happen in one
    bilinear sampling inside :class:`ToModelInput`; columns (body parts) are never cropped.
    """

    def __init__(
        self,
        min_ratio: float = 0.5,
        max_ratio: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0 < min_ratio <= max_ratio <= 1:
            raise DatasetRequestError(
                f"need 0 < min_ratio <= max_ratio <= 1, found {min_ratio!r}, {max_ratio!r}"
            )
        self.min_ratio, self.max_ratio = float(min_ratio), float(max_ratio)
        self.generator = generator

    def windows(self, n: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(start, length) in rows, float32 (n,) each."""
        u = torch.rand(n, 2, generator=self.generator)
        length = rows * (self.min_ratio + (self.max_ratio - self.min_ratio) * u[:, 0])
        start = (rows - length) * u[:, 1]
        return start, length


def _crop_resize(
    x: torch.Tensor, start: torch.Tensor, length: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Rows ``[start, start + length)`` of each sample of (B, S, 3, T, W), bilinearly resized to
    ``size`` (half-pixel centres, border clamped: ``F.interpolate``'s rule on the crop)."""
    b, s, c, t, w = x.shape
    h_out, w_out = size
    dev = x.device
    # source row of output row i: start + (i + 0.5) * length / h_out - 0.5, in grid_sample's
    # normalised coordinates (align_corners=False): g = (2 * src + 1) / t - 1
    i = torch.arange(h_out, device=dev, dtype=torch.float32)
    src_y = start.to(dev)[:, None] + (i[None] + 0.5) * (length.to(dev)[:, None] / h_out) - 0.5
    gy = (2 * src_y + 1) / t - 1  # (B, h_out)
    j = torch.arange(w_out, device=dev, dtype=torch.float32)
    gx = (2 * ((j + 0.5) * (w / w_out) - 0.5) + 1) / w - 1  # (w_out,)
    grid = torch.stack(torch.broadcast_tensors(gx[None, None, :], gy[:, :, None]), dim=-1)
    planes = x.reshape(b, s * c, t, w).float()
    out = F.grid_sample(planes, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(b, s, c, h_out, w_out)


class ToModelInput:
    """Loader batch -> model input ``(B, S, 3, size, size)`` float32 on the batch's device.

    Args:
        form: ``"compact"`` (grids in metres) or ``"image"`` (stored images).
        dtype: stored dtype of the dataset (``"float16"`` or ``"uint8"``): uint8 images are
            divided by 255, float16 images min-max mapped.
        pixel_mapping: the dataset's ``encoding.pixel_mapping`` (checked: must be the one
            implemented here).
        size: model input (H, W) or one int; 224 by default, e.g. 64 for CPU experiments.
        mean, std: per-channel normalisation (``None``: leave values in [0, 1]).
        rotation: a :class:`RandomRotation3D` (compact form only) or ``None``.
        temporal_crop: a :class:`TemporalCropResize` or ``None``.
    """

    def __init__(
        self,
        form: str = "compact",
        dtype: str = "float16",
        pixel_mapping: Mapping[str, Any] | None = None,
        size: int | tuple[int, int] = 224,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        rotation: RandomRotation3D | None = None,
        temporal_crop: TemporalCropResize | None = None,
    ) -> None:
        if form not in ("compact", "image"):
            raise DatasetRequestError(f"form must be 'compact' or 'image', found {form!r}")
        if form == "image" and rotation is not None:
            raise DatasetRequestError(
                "rotation needs the 3-D coordinates: use a compact dataset (stored images are "
                "already pixel-mapped)"
            )
        if pixel_mapping is not None:
            check_pixel_mapping(pixel_mapping)
        self.form, self.dtype = form, dtype
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if (mean is None) != (std is None):
            raise DatasetRequestError("give both mean and std, or neither")
        self.mean, self.std = mean, std
        self.rotation, self.temporal_crop = rotation, temporal_crop

    @classmethod
    def for_dataset(
        cls,
        dataset: Any,
        size: int | tuple[int, int] = 224,
        train: bool = False,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        generator: torch.Generator | None = None,
    ) -> ToModelInput:
        """The transform for an ``S2IDataset``; ``train`` adds the default augmentations
        (temporal crop 0.5-1.0, and for compact datasets a 0.3 rad rotation)."""
        first = dataset.sources[0]
        for info in dataset.sources:
            check_pixel_mapping(info.pixel_mapping)
        compact = first.form == "compact"
        return cls(
            form=first.form,
            dtype=first.dtype,
            pixel_mapping=first.pixel_mapping,
            size=size,
            mean=mean,
            std=std,
            rotation=RandomRotation3D(generator=generator) if train and compact else None,
            temporal_crop=TemporalCropResize(generator=generator) if train else None,
        )

    def __call__(self, x: Batch) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return self._one(x)
        return torch.cat([self._one(t) for t in x])

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != 3:
            raise DatasetRequestError(f"expected a batch (B, S, 3, H, W), found {tuple(x.shape)}")
        b, _, _, t, _ = x.shape
        window = self.temporal_crop.windows(b, t) if self.temporal_crop is not None else None
        if self.form == "compact" or self.dtype != "uint8":
            g = x.float()
            if self.rotation is not None:
                g = self.rotation(g)
            rows = None
            if window is not None:
                start, length = window
                lo = start.floor().clamp(0, t - 1).to(torch.long).to(g.device)
                hi = (start + length).ceil().clamp(1, t).to(torch.long).to(g.device)
                rows = (lo, torch.maximum(hi, lo + 1))
            v = pixel_map(g, rows)
        else:
            v = x.float() * (1.0 / 255.0)
        if window is not None:
            v = _crop_resize(v, window[0], window[1], self.size)
        else:
            v = resize(v, self.size)
        if self.mean is not None and self.std is not None:
            v = normalise(v, self.mean, self.std)
        return v
