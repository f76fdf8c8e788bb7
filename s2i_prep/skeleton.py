"""The canonical arrays that flow between stages: raw file -> RawSkeleton -> Skeleton -> S2I tensors.

Axis order is fixed everywhere: bodies/persons, frames, joints, coordinates, i.e. ``(B|M, T, V, C)``
float32, the order pyskl and ``s2i-prep dump`` use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RawSkeleton", "Skeleton"]


@dataclass(frozen=True)
class RawSkeleton:
    """Everything a reader found in one sample, before any body selection.

    Attributes:
        name: sample id (file stem, or ``<recording>_<clip>`` for formats that cut clips).
        source: path of the raw file.
        joints: ``(B, T, V, C)`` float32 positions; NaN where body ``b`` is absent in frame ``t``.
            ``T`` counts every frame of the file, empty ones included.
        body_ids: ``(B,)`` body ids as strings, in order of first appearance.
        joint_fields: further per-joint fields, each ``(B, T, V)`` or ``(B, T, V, k)``.
        body_fields: further per-body fields, each ``(B, T)`` or ``(B, T, k)``.
        label: 0-based label when the format carries it in the file (PKU-MMD, NW-UCLA), else None.
        meta: integer metadata the reader knows beyond the sample name (e.g. clip bounds).
    """

    name: str
    source: str
    joints: np.ndarray
    body_ids: tuple[str, ...]
    joint_fields: Mapping[str, np.ndarray] = field(default_factory=dict)
    body_fields: Mapping[str, np.ndarray] = field(default_factory=dict)
    label: int | None = None
    meta: Mapping[str, int] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[1])

    @property
    def present(self) -> np.ndarray:
        """``(B, T)`` bool: body ``b`` is in frame ``t``."""
        return ~np.isnan(self.joints[..., 0]).all(axis=-1)


@dataclass(frozen=True)
class Skeleton:
    """The selected actors of one sample: what the encoder turns into S2I streams.

    Attributes:
        name, source, label, meta: as in :class:`RawSkeleton`.
        joints: ``(M, T', V, C)`` float32 with ``1 <= M <= max_persons``; frames where nobody was
            selected are removed; NaN where actor ``m`` is absent in a kept frame.
        frame_index: ``(T',)`` int64 index of every kept frame into the raw file's frames.
    """

    name: str
    source: str
    joints: np.ndarray
    frame_index: np.ndarray
    label: int | None = None
    meta: Mapping[str, int] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[1])

    @property
    def num_persons(self) -> int:
        return int(self.joints.shape[0])
