"""What every synthetic writer shares: the run's settings, per-subject bodies, per-sample results.

Randomness is keyed, never sequential: every subject, performance and camera view draws from a
generator seeded with ``(seed, purpose, index...)``, so any file can be rebuilt alone and the
output does not depend on how the work is split among processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .actions import Action
from .kinematics import Body, make_body
from .sensor import Realism

__all__ = [
    "SynthConfig",
    "SampleInfo",
    "Track",
    "ThreeViewJob",
    "LINE_ENDINGS",
    "subject_body",
    "keyed_rng",
]

LINE_ENDINGS = ("lf", "crlf", "mixed")

# Purposes of the keyed generators (first key after the seed).
SUBJECT, PERFORMANCE, VIEW, PLAN, SETUP = range(5)


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one generation run (picklable, sent once to every worker)."""

    seed: int
    actions: tuple[Action, ...]
    subjects: int
    frames: tuple[int, int]
    line_endings: str = "lf"
    realism: Realism = field(default_factory=Realism)

    def rng(self, *keys: int) -> np.random.Generator:
        return keyed_rng(self.seed, *keys)

    def crlf(self, rng: np.random.Generator) -> bool:
        """Whether one file uses CR LF (``mixed`` draws it per file)."""
        if self.line_endings == "mixed":
            return bool(rng.random() < 0.5)
        return self.line_endings == "crlf"


@dataclass(frozen=True)
class SampleInfo:
    """One generated sample: name, file (relative to the output root), 0-based label, features.

    ``features`` names the realism features present (``empty``, ``flicker``, ``inferred``
    joints, ``crlf``, ...), so
    tests and users can find examples of each.
    """

    name: str
    path: str
    label: int
    action: str
    meta: tuple[tuple[str, int], ...] = ()
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Track:
    """What was written for one body: its id, the frames it appears in and its positions.

    ``joints`` is ``(K, V, 3)`` float32 exactly as printed (before text rounding) for ``frames``
    ``(K,)``; tests compare readers against it.
    """

    body_id: str
    frames: np.ndarray
    joints: np.ndarray


def keyed_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


@lru_cache(maxsize=256)
def subject_body(seed: int, subject: int) -> Body:
    """The body of performer ``subject``: the same in every file of a run."""
    return make_body(keyed_rng(seed, SUBJECT, subject))


@dataclass(frozen=True)
class ThreeViewJob:
    """A run whose performances are each filmed by three cameras: samples ``3p .. 3p+2``.

    Performances are a seeded permutation of a grid of (..., class) cells, so sample names never
    repeat; subclasses define the grid and render one performance.
    """

    config: SynthConfig
    samples: int

    def grid_size(self) -> int:
        raise NotImplementedError

    def render_performance(self, p: int, grid: np.ndarray) -> list[Any]:
        """The rendered files of the views of performance ``p`` that fall below ``samples``."""
        raise NotImplementedError

    def grid(self) -> np.ndarray:
        return self.config.rng(PLAN).permutation(self.grid_size())

    def tasks(self, size: int = 8) -> list[range]:
        """Work units: runs of performances."""
        n = -(-self.samples // 3)
        return [range(a, min(a + size, n)) for a in range(0, n, size)]

    def run(self, task: range, out_dir: Path) -> list[SampleInfo]:
        grid, infos = self.grid(), []
        for p in task:
            for rendered in self.render_performance(p, grid):
                (out_dir / rendered.info.path).write_bytes(rendered.data)
                infos.append(rendered.info)
        return infos

    def render(self, index: int) -> Any:
        """Sample ``index`` alone (tests, previews)."""
        return self.render_performance(index // 3, self.grid())[index % 3]
