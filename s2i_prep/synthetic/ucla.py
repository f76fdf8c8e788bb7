"""NW-UCLA ``aXX_sYY_eZZ_vWW.json`` files in the CTR-GCN ``all_sqe`` form, Kinect v1 20 joints.

Each performance (action, subject, episode) is recorded by the three views at once; samples
``3p .. 3p+2`` are its views 1-3. The JSON is one line without a trailing newline, numbers are
Python ``repr`` of 6-digit values and ``label`` is 1-based and contiguous over the action ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.fmt import format_ucla_skeletons
from .cameras import View, perform, to_camera
from .config import PERFORMANCE, VIEW, SampleInfo, ThreeViewJob, Track, subject_body
from .kinematics import V1_FROM_V2
from .sensor import dropouts, jitter, occlusions

__all__ = ["UclaJob", "RenderedUcla", "UCLA_ACTION_IDS"]

#: The dataset's action ids; the JSON label is the 1-based position here.
UCLA_ACTION_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
_VIEW_AZIMUTH = {1: -45.0, 2: 0.0, 3: 50.0}
_EPISODES = 11  # e00 .. e10


@dataclass(frozen=True)
class RenderedUcla:
    data: bytes
    info: SampleInfo
    tracks: tuple[Track, ...]


@dataclass(frozen=True)
class UclaJob(ThreeViewJob):
    """Plan of an NW-UCLA run: performances are (action, subject, episode) cells."""

    def __post_init__(self) -> None:
        if self.samples > 3 * self.grid_size():
            raise ValueError(
                f"at most {3 * self.grid_size()} NW-UCLA samples fit "
                f"{self.config.subjects} subjects, "
                f"{_EPISODES} episodes and {len(self.config.actions)} classes; raise --subjects"
            )

    def grid_size(self) -> int:
        return len(self.config.actions) * self.config.subjects * _EPISODES

    def render_performance(self, p: int, grid: np.ndarray) -> list[RenderedUcla]:
        cfg = self.config
        cell, a = divmod(int(grid[p]), len(cfg.actions))
        subject, episode = divmod(cell, _EPISODES)
        subject += 1
        action = cfg.actions[a]
        rng = cfg.rng(PERFORMANCE, p)
        lo, hi = cfg.frames
        t_n = int(rng.integers(lo, hi + 1))
        length = max(2, int(t_n * rng.uniform(0.7, 0.95)))
        start = int(rng.integers(0, t_n - length + 1))
        offset = np.array([rng.normal(0.0, 0.2), 0.0, rng.normal(0.3, 0.3)])
        person = perform(
            [subject_body(cfg.seed, subject)],
            t_n,
            [(action, start, length)],
            rng.normal(0.0, 20.0),
            0.0,
            offset,
            rng,
        )[0]
        distance, height = rng.uniform(2.4, 3.2), rng.uniform(0.8, 1.5)
        label = UCLA_ACTION_IDS.index(action.ucla) + 1
        out = []
        for v in (1, 2, 3):
            index = 3 * p + v - 1
            if index >= self.samples:
                break
            vrng = cfg.rng(VIEW, index)
            xyz, _ = to_camera(
                person, View(_VIEW_AZIMUTH[v] + rng.normal(0.0, 3.0), distance, height)
            )
            xyz, _ = occlusions(jitter(xyz, cfg.realism.jitter, vrng), cfg.realism.occlusion, vrng)
            xyz, _ = dropouts(xyz, cfg.realism.dropouts, vrng)
            xyz = xyz[:, V1_FROM_V2].astype(np.float32)
            features = []
            if vrng.random() < cfg.realism.zero_joints:
                joints = vrng.choice(xyz.shape[1], size=int(vrng.integers(1, 5)), replace=False)
                xyz[vrng.integers(t_n), joints] = 0.0
                features.append("zero_joints")
            name = f"a{action.ucla:02d}_s{subject:02d}_e{episode:02d}_v{v:02d}"
            body = format_ucla_skeletons(xyz.astype(np.float64)).tobytes()
            data = b'{"file_name": "%s", "skeletons": %s, "label": %d}' % (
                name.encode(),
                body,
                label,
            )
            info = SampleInfo(name, f"{name}.json", label - 1, action.name, (), tuple(features))
            out.append(RenderedUcla(data, info, (Track("0", np.arange(t_n), xyz),)))
        return out
