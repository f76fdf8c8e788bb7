"""Synthetic skeleton datasets: raw files in the real grammars, with learnable actions.

``write_synthetic("ntu25", out, 600)`` writes 600 NTU ``.skeleton`` files whose syntax, names,
labels and splits behave like NTU RGB+D's, so the whole pipeline can be tried, tested and
benchmarked without the real data. ``docs/SYNTHETIC.md`` describes the model and its realism.
Output is byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..parallel import OrderedPool
from .actions import actions_for
from .config import LINE_ENDINGS, SampleInfo, SynthConfig
from .estimated import EstimatedJob
from .ntu import NtuJob
from .pku import PkuJob
from .sensor import Realism
from .ucla import UclaJob

__all__ = ["FORMATS", "Realism", "SampleInfo", "SynthSummary", "make_job", "write_synthetic"]

#: Format -> (dataset key of the action ids, default performers, default frames per action).
_FORMATS: dict[str, tuple[str, int, tuple[int, int]]] = {
    "ntu25": ("ntu", 40, (40, 150)),
    "pku25": ("pku", 20, (40, 120)),
    "ucla20": ("ucla", 10, (20, 80)),
    # estimated 2-D/3-D poses (synthetic/estimated.py): NTU's action catalogue
    "openpose18": ("ntu", 40, (40, 150)),
    "coco17": ("ntu", 40, (40, 150)),
    "toyota13": ("ntu", 18, (40, 150)),
}
FORMATS = tuple(_FORMATS)
_PKU_PHASE2_SUBJECTS = 13


@dataclass(frozen=True)
class SynthSummary:
    """What a run wrote. ``samples`` lists every sample (PKU-MMD: every clip) in order."""

    format: str
    out_dir: str
    samples: tuple[SampleInfo, ...]
    files: int
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Counts per label and per realism feature, for people and JSON."""
        labels: dict[int, int] = {}
        features: dict[str, int] = {}
        for s in self.samples:
            labels[s.label] = labels.get(s.label, 0) + 1
            for f in s.features:
                features[f] = features.get(f, 0) + 1
        return {
            "format": self.format,
            "out_dir": self.out_dir,
            "samples": len(self.samples),
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "classes": len(labels),
            "per_label": dict(sorted(labels.items())),
            "features": dict(sorted(features.items())),
        }


def make_job(
    format: str,
    samples: int,
    *,
    classes: int | None = None,
    subjects: int | None = None,
    seed: int = 0,
    frames: tuple[int, int] | None = None,
    line_endings: str = "lf",
    noise: bool = True,
    realism: Realism | None = None,
    phase: int = 1,
) -> NtuJob | PkuJob | UclaJob | EstimatedJob:
    """The plan of a run, without writing anything (tests render single samples from it).

    Raises:
        ValueError: an option out of range, with the allowed range.
    """
    if format not in _FORMATS:
        raise ValueError(f"unknown synthetic format {format!r}; choose one of {', '.join(FORMATS)}")
    dataset, default_subjects, default_frames = _FORMATS[format]
    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, found {seed}")
    if samples < 1:
        raise ValueError(f"--samples must be at least 1, found {samples}")
    if line_endings not in LINE_ENDINGS:
        raise ValueError(
            f"line endings must be one of {', '.join(LINE_ENDINGS)}, found {line_endings!r}"
        )
    if phase not in (1, 2):
        raise ValueError(f"PKU-MMD phase must be 1 or 2, found {phase}")
    lo, hi = frames or default_frames
    if not 2 <= lo <= hi:
        raise ValueError(f"frames must be MIN:MAX with 2 <= MIN <= MAX, found {lo}:{hi}")
    if subjects is None:
        subjects = _PKU_PHASE2_SUBJECTS if (dataset == "pku" and phase == 2) else default_subjects
    limit = {"ntu": 106, "pku": 99, "ucla": 99}[dataset]
    if not 1 <= subjects <= limit:
        raise ValueError(f"--subjects must be 1..{limit} for {format}, found {subjects}")
    one_person = dataset == "ucla" or format == "toyota13"
    actions = actions_for(dataset, classes, max_persons=1 if one_person else 2)
    if realism is None:
        realism = Realism() if noise else Realism.off()
    config = SynthConfig(int(seed), actions, subjects, (lo, hi), line_endings, realism)
    if format in ("openpose18", "coco17", "toyota13"):
        return EstimatedJob(config, samples, format)
    if dataset == "ntu":
        return NtuJob(config, samples)
    if dataset == "ucla":
        return UclaJob(config, samples)
    return PkuJob(config, samples, phase)


_JOB: Any = None
_OUT: Path | None = None


def _install(job: Any, out_dir: Path) -> None:
    global _JOB, _OUT
    _JOB, _OUT = job, out_dir


def _run(task: Any) -> list[SampleInfo]:
    return _JOB.run(task, _OUT)


def _warm(job: Any) -> None:
    """Compile (or load) the formatting kernels once, before workers fork."""
    tiny = replace(job, samples=1)
    if isinstance(tiny, PkuJob):
        tiny.render_recording(tiny.recordings()[0])
    else:
        tiny.render(0)


def write_synthetic(
    format: str,
    out_dir: str | Path,
    samples: int,
    *,
    workers: int = 0,
    overwrite: bool = False,
    **options: Any,
) -> SynthSummary:
    """Write a synthetic raw dataset in the folder layout of the real one.

    Args:
        format: ``ntu25``, ``pku25`` or ``ucla20``.
        out_dir: output folder; must be empty or absent unless ``overwrite``.
        samples: number of samples (PKU-MMD: action clips over all views).
        workers: processes (0 = in this process); the output does not depend on it.
        overwrite: write into a non-empty folder, replacing same-named files.
        **options: ``classes``, ``subjects``, ``seed``, ``frames``, ``line_endings``, ``noise``,
            ``realism``, ``phase`` (see :func:`make_job`).

    Raises:
        ValueError: bad options. StoreError: a non-empty output folder without ``overwrite``.
    """
    job = make_job(format, samples, **options)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise StoreError(f"{out}: output folder is not empty (use --overwrite to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(job, PkuJob):
        job.prepare(out)
    t0 = time.perf_counter()
    _warm(job)
    infos: list[SampleInfo] = []
    with OrderedPool(workers, _install, (job, out)) as pool:
        for chunk in pool.map(_run, job.tasks()):
            infos.extend(chunk)
    finish = getattr(job, "finish", None)
    if finish is not None:
        finish(out, infos)
    seconds = time.perf_counter() - t0
    paths = sorted({p for p in out.rglob("*") if p.is_file()})
    total = int(np.sum([p.stat().st_size for p in paths])) if paths else 0
    return SynthSummary(format, str(out), tuple(infos), len(paths), total, seconds)
