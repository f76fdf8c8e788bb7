"""2-D skeletons in S2I: how image coordinates become the units of the compact grid.

A 3-D skeleton is in metres in a camera space whose y axis points up; a person spans about 1.7
units. Estimated 2-D poses come in pixels (COCO-17 from HRNet, Toyota's ``pose2d``) or in
fractions of the image width and height (the Kinetics-skeleton release), with y pointing down.
So that a 2-D dataset and a 3-D dataset give images of comparable range, every 2-D joint is
mapped, before encoding, to **image heights with y up**::

    x' = x_px / H        y' = -y_px / H        (x_px = x * W, y_px = y * H for normalised input)

A person filling a frame spans about 1 unit, the same order as metres of a real person, and the
sign of y agrees with the 3-D camera spaces (head above feet in both). Translation is not
needed: the encoder subtracts the centre joint anyway. The third channel is 0 (no depth; the
detector's confidence is not a coordinate and would not survive centring, motion or bones);
joints that a detector reports as missing (score 0) are NaN in the reader's output and 0 in the
grid, like any absent joint. ``docs/ENCODING.md`` ("2-D skeletons") is the full statement.

A sample that carries its image size (a pyskl pickle's ``img_shape``, given by the reader as the
``img_w``/``img_h`` metadata) is in pixels of that image, pyskl's convention; otherwise the
spec's ``image.units`` says whether coordinates are ``pixels`` or ``normalized`` and its
``image.size`` gives the size. A 2-D spec without an ``image`` block
(units ``plane``) declares its coordinates already in these units and they are used unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SpecError
from .specs import JointSpec

__all__ = ["UNITS", "ImageRule", "image_rule", "to_plane_units", "ALIGN_2D_MESSAGE"]

#: How a 2-D spec's coordinates are expressed.
UNITS = ("pixels", "normalized", "plane")
#: Why ``--align`` is refused for 2-D specs (also raised by the encoder).
ALIGN_2D_MESSAGE = (
    "view alignment rotates 3-D joints into the actor's body frame; spec {fmt!r} is 2-D "
    "(image coordinates have no depth to rotate), so --align cannot be used with it"
)


@dataclass(frozen=True)
class ImageRule:
    """A 2-D spec's ``image`` block: coordinate units and the default image size ``(W, H)``."""

    units: str
    size: tuple[int, int] | None

    def scale(self, meta: Mapping[str, int]) -> tuple[float, float]:
        """``(sx, sy)`` with ``x' = sx * x`` and ``y' = sy * y`` for one sample (``sy < 0``)."""
        if self.units == "plane":
            return 1.0, 1.0
        width, height = int(meta.get("img_w", -1)), int(meta.get("img_h", -1))
        if width > 0 and height > 0:  # a sample that carries its image size is in its pixels
            return 1.0 / height, -1.0 / height
        if width <= 0 or height <= 0:
            if self.size is None:
                raise ValueError(
                    "the sample carries no image size (img_w/img_h) and the spec's image block "
                    "gives none; add image.size: [W, H] to the spec"
                )
            width, height = self.size
        if self.units == "normalized":
            return width / height, -1.0
        return 1.0 / height, -1.0 / height


def image_rule(spec: JointSpec) -> ImageRule:
    """The validated ``image`` block of a 2-D spec (none: units ``plane``, values unchanged)."""
    block: Any = spec.raw.get("image")
    if block is None:
        return ImageRule("plane", None)
    if not isinstance(block, Mapping) or not set(block) <= {"units", "size"}:
        raise SpecError(spec.source, "image", f"expected keys units and size, found {block!r}")
    units = block.get("units")
    if units not in UNITS:
        raise SpecError(spec.source, "image.units", f"expected one of {UNITS}, found {units!r}")
    size = block.get("size")
    if size is not None:
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise SpecError(
                spec.source, "image.size", f"expected [width, height] in pixels, found {size!r}"
            )
        size = (size[0], size[1])
    return ImageRule(units, size)


def to_plane_units(joints: np.ndarray, rule: ImageRule, meta: Mapping[str, int]) -> np.ndarray:
    """``(M, T, V, 2)`` image coordinates -> float32 image heights with y up (NaN stays NaN)."""
    sx, sy = rule.scale(meta)
    if (sx, sy) == (1.0, 1.0):
        return joints
    out = np.array(joints, dtype=np.float32, copy=True)
    out[..., 0] *= np.float32(sx)
    out[..., 1] *= np.float32(sy)
    return out
