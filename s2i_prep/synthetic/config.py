"""What every synthetic writer shares: the run's settings, per-subject bodies, per-sample results.

Randomness is keyed, never sequential: every subject, performance and camera view draws from a
generator seeded with ``(seed, purpose, index...)``, so any file can be rebuilt alone and the
output does not depend on how the work is split among processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .actions import Action
from .kinematics import Body, make_body
from .sensor import Realism

__all__ = ["SynthConfig", "SampleInfo", "Track", "LINE_ENDINGS", "subject_body", "keyed_rng"]

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

    ``features`` names the realism features present (``empty``, ``flicker``, ``crlf``, ...), so
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
