"""PKU-MMD long recordings: skeleton, label and split files in the official layout.

A recording holds several actions separated by idle stretches and is seen by three views
(``-L``, ``-M``, ``-R``) at once; each view is a ``skeleton/<video>.txt`` of 150 numbers per frame
(two bodies x 25 joints x xyz, ``%.6f``, the absent second body as 75 zeros) with a
``label/<video>.txt`` of ``label,start,end,confidence`` lines (``end`` exclusive). Interaction
recordings have two people throughout. ``split/`` holds the cross-subject and cross-view files
in the official syntax, misspelled ``Validataion videos:`` heading included.
Phase 1 names videos ``0002-L`` (numbers 0002-0364 first, in a seeded order); phase 2 names them
``A10N08-L`` (take 10, subject 8). Performers follow the official cross-subject splits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..kernels.fmt import format_rows_fixed
from .cameras import View, perform, to_camera
from .config import (
    PERFORMANCE,
    PLAN,
    VIEW,
    SampleInfo,
    SynthConfig,
    Track,
    subject_body,
)
from .sensor import dropouts, jitter, occlusions

__all__ = ["PkuJob", "RenderedPku", "VIEWS"]

VIEWS = ("L", "M", "R")
_VIEW_AZIMUTH = {"L": -40.0, "M": 0.0, "R": 40.0}
_SPLIT_FILES = {
    1: ("cross-subject.txt", "cross-view.txt"),
    2: ("cross_subject_v2.txt", "cross_view_v2.txt"),
}
#: Phase-2 cross-subject test subjects; phase-1 test videos and the last phase-1 video number
#: (FORMATS.md 2.4). Further phase-1 recordings get numbers after it.
_PHASE2_TEST_SUBJECTS = (2, 3, 7)
_PHASE1_XSUB_TEST = (291, 334)
_PHASE1_LAST = 364
_XSUB_TEST_SHARE = 44 / 363
_ACTIONS_PER_RECORDING = (3, 7)


@dataclass(frozen=True)
class RenderedPku:
    """One view of a recording: skeleton and label file bytes, its clips, and its two bodies."""

    video: str
    skeleton: bytes
    labels: bytes
    clips: tuple[SampleInfo, ...]
    tracks: tuple[Track, ...]


@dataclass(frozen=True)
class _Recording:
    index: int
    subject: int
    video: str  # name without the view suffix
    clips: tuple[int, ...]  # labelled actions per view (L, M, R); 0 = view not written


@dataclass(frozen=True)
class PkuJob:
    """Plan of a PKU-MMD run; ``samples`` counts action clips over all views."""

    config: SynthConfig
    samples: int
    phase: int = 1

    def recordings(self) -> list[_Recording]:
        """Recordings and their clip counts until ``samples`` clips are planned (in the parent)."""
        rng = self.config.rng(PLAN)
        numbers = self._phase1_numbers(rng)
        out, left = [], self.samples
        while left > 0:
            r = len(out)
            n = int(rng.integers(_ACTIONS_PER_RECORDING[0], _ACTIONS_PER_RECORDING[1] + 1))
            clips = []
            for _ in VIEWS:
                clips.append(min(n, left))
                left -= clips[-1]
            if self.phase == 1:
                number = int(next(numbers, -1))
                if number < 0:
                    raise ValueError(
                        "too many PKU-MMD phase-1 recordings for 4-digit names; lower --samples"
                    )
                subject, video = self._phase1_subject(number), f"{number:04d}"
            else:
                take, subject = divmod(r, self.config.subjects)
                subject += 1
                if take >= 99:
                    raise ValueError(
                        "too many PKU-MMD phase-2 recordings; raise --subjects or lower --samples"
                    )
                video = f"A{take + 1:02d}N{subject:02d}"
            out.append(_Recording(r, subject, video, tuple(clips)))
        return out

    @staticmethod
    def _phase1_numbers(rng: np.random.Generator) -> Iterator[int]:
        """Phase-1 video numbers in a seeded order in which every 8th recording, from the second
        on, is one of the official cross-subject test videos (0291-0334, 12 % of 0002-0364), so
        even a small run has a non-empty test set; numbers after 0364 follow."""
        first, last = _PHASE1_XSUB_TEST
        pool = np.arange(2, _PHASE1_LAST + 1)
        in_test = (pool >= first) & (pool <= last)
        test = iter(rng.permutation(pool[in_test]).tolist())
        train = iter(rng.permutation(pool[~in_test]).tolist())
        for r in itertools.count():
            picked = next(test, None) if r % 8 == 1 else None
            if picked is None:
                picked = next(train, None)
            if picked is None:
                break
            yield picked
        yield from test
        yield from range(_PHASE1_LAST + 1, 10000)

    def _phase1_subject(self, number: int) -> int:
        """Performer of phase-1 video ``number``: videos 0291-0334 (the official cross-subject test
        set) belong to their own performers, the last ~12% of ``--subjects``."""
        n_test = max(1, round(self.config.subjects * _XSUB_TEST_SHARE))
        n_train = max(1, self.config.subjects - n_test)
        first, last = _PHASE1_XSUB_TEST
        if first <= number <= last:
            return n_train + 1 + (number - first) * n_test // (last - first + 1)
        return 1 + (number - 2 - (last - first + 1 if number > last else 0)) % n_train

    def tasks(self, size: int = 2) -> list[list[_Recording]]:
        recs = self.recordings()
        return [recs[a : a + size] for a in range(0, len(recs), size)]

    def run(self, task: list[_Recording], out_dir: Path) -> list[SampleInfo]:
        infos = []
        for rec in task:
            for view in self.render_recording(rec):
                (out_dir / "skeleton" / f"{view.video}.txt").write_bytes(view.skeleton)
                (out_dir / "label" / f"{view.video}.txt").write_bytes(view.labels)
                infos.extend(view.clips)
        return infos

    def prepare(self, out_dir: Path) -> None:
        for sub in ("skeleton", "label", "split"):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)

    def finish(self, out_dir: Path, infos: list[SampleInfo]) -> None:
        """Write the official split files over the videos written."""
        videos = sorted({info.path.split("/")[-1][:-4] for info in infos})
        if self.phase == 2:
            xsub = [v for v in videos if int(v[4:6]) in _PHASE2_TEST_SUBJECTS]
        else:
            xsub = [v for v in videos if _PHASE1_XSUB_TEST[0] <= int(v[:4]) <= _PHASE1_XSUB_TEST[1]]
        xview = [v for v in videos if v.endswith("-L")]
        for fname, test in zip(_SPLIT_FILES[self.phase], (xsub, xview), strict=True):
            train = [v for v in videos if v not in set(test)]
            text = (
                f"Training videos: \n{', '.join(train)}\nValidataion videos: \n{', '.join(test)}\n"
            )
            (out_dir / "split" / fname).write_text(text, encoding="ascii", newline="\n")

    def render_recording(self, rec: _Recording) -> list[RenderedPku]:
        cfg = self.config
        rng = cfg.rng(PERFORMANCE, rec.index)
        pairs = [a for a in cfg.actions if a.persons == 2]
        singles = [a for a in cfg.actions if a.persons == 1]
        duo = bool(pairs) and (not singles or rng.random() < len(pairs) / len(cfg.actions))
        pool = pairs if duo else singles
        n = max(rec.clips)
        chosen = rng.choice(len(pool), size=n, replace=n > len(pool))
        lo, hi = cfg.frames
        t = int(rng.integers(10, 41))
        segments = []
        for k in chosen:
            length = int(rng.integers(lo, hi + 1))
            segments.append((pool[int(k)], t, length))
            t += length + int(rng.integers(15, 46))
        t_n = t + int(rng.integers(0, 16))
        bodies = [subject_body(cfg.seed, rec.subject)]
        if duo:
            bodies.append(subject_body(cfg.seed, rec.subject % cfg.subjects + 1))
        offset = np.array([rng.normal(0.0, 0.2), 0.0, rng.normal(0.3, 0.3)])
        people = perform(
            bodies, t_n, segments, rng.normal(0.0, 10.0), rng.uniform(0.75, 1.1), offset, rng
        )
        distance, height = rng.uniform(2.6, 3.4), rng.uniform(0.8, 1.4)
        confidence = np.where(rng.random(n) < 0.7, 2, 1)
        out = []
        for v, (view_name, count) in enumerate(zip(VIEWS, rec.clips, strict=True)):
            if count == 0:
                continue
            vrng = cfg.rng(VIEW, rec.index, v)
            values = np.zeros((t_n, 2, 25, 3))
            view = View(_VIEW_AZIMUTH[view_name] + rng.normal(0.0, 3.0), distance, height)
            for k, person in enumerate(people):
                xyz, _ = to_camera(person, view)
                xyz, _ = occlusions(
                    jitter(xyz, cfg.realism.jitter, vrng), cfg.realism.occlusion, vrng
                )
                values[:, k] = dropouts(xyz, cfg.realism.dropouts, vrng)[0]
            features = ["two_person"] if duo else []
            if vrng.random() < cfg.realism.lost_frames:
                lost = int(vrng.integers(1, 6))
                t0 = int(vrng.integers(0, t_n - lost + 1))
                values[t0 : t0 + lost, 0] = 0.0
                features.append("lost_frames")
            crlf = cfg.crlf(vrng)
            if crlf:
                features.append("crlf")
            values = values.astype(np.float32).astype(np.float64)
            video = f"{rec.video}-{view_name}"
            newline = "\r\n" if crlf else "\n"
            lines = [
                f"{a.pku},{s},{s + ln},{c}"
                for (a, s, ln), c in zip(segments[:count], confidence[:count], strict=True)
            ]
            clips = tuple(
                SampleInfo(
                    f"{video}_{k:03d}",
                    f"skeleton/{video}.txt",
                    a.pku - 1,
                    a.name,
                    (("start", s), ("end", s + ln)),
                    tuple(features),
                )
                for k, (a, s, ln) in enumerate(segments[:count])
            )
            tracks = tuple(
                Track(str(k), np.arange(t_n), values[:, k].astype(np.float32)) for k in range(2)
            )
            out.append(
                RenderedPku(
                    video,
                    format_rows_fixed(values.reshape(t_n, 150), 6, crlf).tobytes(),
                    "".join(line + newline for line in lines).encode(),
                    clips,
                    tracks,
                )
            )
        return out
