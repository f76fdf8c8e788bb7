"""Previews: one stored sample as a picture a person can check against what the model sees.

Each stream becomes one panel (x, y, z -> R, G, B through the dataset's own pixel mapping, so the
colours are the model's input up to its normalisation), panels sit side by side, and thin vertical
lines mark where each body part and each person starts. A compact grid is upscaled by nearest
neighbour so every stored value is a ``scale x scale`` block; a stored image is shown as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .encoding import EncodeConfig, stored_shape, to_image
from .specs import PART_NAMES, JointSpec

__all__ = ["render_preview", "PART_LINE", "PERSON_LINE"]

#: Line colour where a body part starts (within a person).
PART_LINE = (255, 255, 255)
#: Line colour where the next person's columns start.
PERSON_LINE = (255, 48, 48)
_BACKGROUND = (24, 24, 24)
_TEXT = (235, 235, 235)
_PART_ABBR = {
    "torso": "T",
    "left_arm": "LA",
    "right_arm": "RA",
    "left_leg": "LL",
    "right_leg": "RL",
}
_HEADER = 18  # px above the panels: stream names
_FOOTER = 26  # px below: part names, in two staggered rows
_LABEL_ROW = 12  # px between the two rows of part names
_GAP = 8  # px around and between panels
_MIN_LINE_PITCH = 3  # px per column below which boundaries are ticks in the margins only


def _part_starts(spec: JointSpec) -> np.ndarray:
    """First column of every part within one person, plus the person's width: (6,) int."""
    return np.cumsum([0] + [len(p) for p in spec.parts])


def _boundaries(spec: JointSpec) -> list[tuple[int, tuple[int, int, int]]]:
    """``(column, colour)`` of every part start except column 0, over all persons."""
    marks = []
    for m in range(spec.max_persons):
        base = m * spec.num_joints
        if m:
            marks.append((base, PERSON_LINE))
        marks += [(base + int(s), PART_LINE) for s in _part_starts(spec)[1:-1]]
    return marks


def render_preview(
    sample: np.ndarray,
    spec: JointSpec,
    cfg: EncodeConfig,
    mapping: Mapping[str, Any],
    scale: int = 4,
) -> Image.Image:
    """An RGB image of one stored sample ``(S, 3, H, W)`` (any storage form of ``cfg``).

    ``mapping`` is the dataset's recorded pixel mapping; float samples go through
    :func:`~s2i_prep.encoding.to_image` at their own size (no resampling), uint8 images are shown
    as they are. ``scale`` is the number of pixels per stored value of a compact grid.

    Raises:
        ValueError: ``sample`` does not have the shape ``cfg`` and ``spec`` give.
    """
    expected = stored_shape(spec, cfg)
    if sample.shape != expected:
        raise ValueError(
            f"sample has shape {sample.shape}; the dataset's encoding stores {expected}"
        )
    if scale < 1:
        raise ValueError(f"scale must be at least 1, found {scale}")
    n_streams, _, height, width = sample.shape
    rgb = sample if sample.dtype == np.uint8 else to_image(sample, (height, width), mapping)
    if cfg.image_size is None:
        rgb = rgb.repeat(scale, axis=2).repeat(scale, axis=3)
    pitch = rgb.shape[3] / (spec.max_persons * spec.num_joints)  # px per compact column
    panel_h, panel_w = rgb.shape[2:]
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # A panel's slot is at least as wide as its stream's name, so titles never run into the
    # next panel (a 20-column compact grid is only 80 px wide at scale 4).
    slot = max([panel_w] + [int(np.ceil(measure.textlength(s, font=font))) for s in cfg.streams])
    canvas = Image.new(
        "RGB",
        (n_streams * slot + (n_streams + 1) * _GAP, _HEADER + panel_h + _FOOTER + _GAP),
        _BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)
    marks = _boundaries(spec)
    top, bottom = _HEADER, _HEADER + panel_h - 1
    for k, stream in enumerate(cfg.streams):
        left = _GAP + k * (slot + _GAP)
        canvas.paste(Image.fromarray(np.ascontiguousarray(rgb[k].transpose(1, 2, 0))), (left, top))
        title = f"{stream} (rows: frames)"
        if draw.textlength(title, font=font) > slot:
            title = stream
        draw.text((left, 1), title, fill=_TEXT, font=font)
        for column, colour in marks:
            x = left + round(column * pitch)
            if pitch >= _MIN_LINE_PITCH:
                draw.line([(x, top), (x, bottom)], fill=colour)
                if colour == PERSON_LINE:  # two pixels wide: the person boundary must stand out
                    draw.line([(x + 1, top), (x + 1, bottom)], fill=colour)
            draw.line([(x, top - 4), (x, top - 1)], fill=colour)
            draw.line([(x, bottom + 1), (x, bottom + 3)], fill=colour)
        _part_labels(draw, font, spec, left, panel_w, pitch, bottom + 4)
    return canvas


def _part_labels(
    draw: ImageDraw.ImageDraw,
    font: Any,
    spec: JointSpec,
    left: int,
    width: int,
    pitch: float,
    y: int,
) -> list[str]:
    """Part names under a panel, with the person number when there are several (``LL2``).

    Neighbouring parts alternate between two rows, so a label may be wider than its own
    columns; a label that would still touch the previous one on its row, or leave the panel,
    is left out (very narrow panels), never drawn over another. Returns the labels drawn.
    """
    starts = _part_starts(spec)
    right_edge = [-np.inf, -np.inf]  # of the last label drawn on each row
    k = 0
    drawn = []
    for m in range(spec.max_persons):
        for p, part in enumerate(PART_NAMES):
            text = _PART_ABBR[part] + (f"{m + 1}" if spec.max_persons > 1 else "")
            centre = left + (m * spec.num_joints + (starts[p] + starts[p + 1]) / 2) * pitch
            half = draw.textlength(text, font=font) / 2
            row = k % 2
            k += 1
            if centre - half < right_edge[row] + 2 or centre - half < left - _GAP / 2 \
                    or centre + half > left + width + _GAP / 2:
                continue
            draw.text((centre, y + row * _LABEL_ROW), text, fill=_TEXT, font=font, anchor="ma")
            right_edge[row] = centre + half
            drawn.append(text)
    return drawn
