"""NTU RGB+D ``SsssCcccPpppRrrrAaaa.skeleton`` files, with the real recordings' imperfections.

Like the real capture, every performance (setup, performer, replication, action) is seen by three
cameras at -45, 0 and +45 degrees: camera 1 is the middle one, and the performer faces camera 2
in replication 1 and camera 3 in replication 2, so camera 1 always sees a 45-degree view and
cameras 2 and 3 see front and side views. Samples ``3p .. 3p+2`` are the three views of
performance ``p``; performances are a seeded permutation of the (setup, performer, replication,
action) grid, so names never repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.fmt import format_ntu
from .actions import Action
from .cameras import Person, View, color_pixels, depth_pixels, perform, quaternions, to_camera
from .config import PERFORMANCE, SETUP, VIEW, SampleInfo, ThreeViewJob, Track, subject_body
from .kinematics import LEAF_JOINTS, NUM_JOINTS, SB, SS
from .sensor import dropouts, jitter, occlusions

__all__ = ["NtuJob", "RenderedNtu", "CAMERA_AZIMUTH"]

#: Camera id -> azimuth (degrees) and replication -> the camera the performer faces.
CAMERA_AZIMUTH = {1: 0.0, 2: -45.0, 3: 45.0}
_FACES = {1: 2, 2: 3}
_BODY_ID_BASE = 1 << 56
#: Setups the grid uses: NTU-60's 17, or NTU-120's 32 when more performances are needed.
_SETUPS = (17, 32)
_TRACKED, _INFERRED = 2, 1


@dataclass(frozen=True)
class RenderedNtu:
    """One file's bytes, its summary and every body written (for tests)."""

    data: bytes
    info: SampleInfo
    tracks: tuple[Track, ...]


@dataclass
class _Body:
    """A body entry stream before assembly: present frames, values and per-frame fields."""

    body_id: int
    present: np.ndarray  # (T,) bool
    values: np.ndarray  # (T, 25, 11) x y z depthX depthY colorX colorY W X Y Z
    state: np.ndarray  # (T, 25) joint tracking states
    ints: np.ndarray  # (T, 7) bodyInfo integer fields
    lean: np.ndarray  # (T, 2)


@dataclass(frozen=True)
class NtuJob(ThreeViewJob):
    """Plan of an NTU run: which performance and view every sample index is."""

    def __post_init__(self) -> None:
        if self.samples > 3 * self._grid_size(_SETUPS[-1]):
            raise ValueError(
                f"at most {3 * self._grid_size(_SETUPS[-1])} NTU samples fit "
                f"{self.config.subjects} "
                f"performers and {len(self.config.actions)} classes; raise --subjects or --classes"
            )

    def _grid_size(self, setups: int) -> int:
        return setups * self.config.subjects * 2 * len(self.config.actions)

    def grid_size(self) -> int:
        """Setups 1-17 (NTU-60) when they are enough, else 1-32 (NTU-120)."""
        return next(g for g in map(self._grid_size, _SETUPS) if 3 * g >= self.samples)

    def performance(self, p: int, grid: np.ndarray) -> tuple[int, int, int, int]:
        """``(setup, performer, replication, class index)`` of performance ``p`` (1-based ids)."""
        cell, a = divmod(int(grid[p]), len(self.config.actions))
        cell, r = divmod(cell, 2)
        s, subj = divmod(cell, self.config.subjects)
        return s + 1, subj + 1, r + 1, a

    def render_performance(self, p: int, grid: np.ndarray) -> list[RenderedNtu]:
        cfg = self.config
        setup, performer, rep, a = self.performance(p, grid)
        action = cfg.actions[a]
        rng = cfg.rng(PERFORMANCE, p)
        lo, hi = cfg.frames
        t_n = int(rng.integers(lo, hi + 1))
        length = max(2, int(t_n * rng.uniform(0.55, 0.9)))
        start = int(rng.integers(0, t_n - length + 1))
        bodies = [subject_body(cfg.seed, performer)]
        if action.persons == 2:
            bodies.append(subject_body(cfg.seed, performer % cfg.subjects + 1))  # a partner
        facing = CAMERA_AZIMUTH[_FACES[rep]] + rng.normal(0.0, 15.0)
        offset = np.array([rng.normal(0.0, 0.2), 0.0, rng.normal(0.0, 0.3)])
        people = perform(
            bodies, t_n, [(action, start, length)], facing, rng.uniform(0.75, 1.1), offset, rng
        )
        srng = cfg.rng(SETUP, setup)
        distance, height = srng.uniform(2.6, 3.6), srng.uniform(0.6, 1.3)
        jitter_deg = srng.normal(0.0, 4.0, 3)
        out = []
        for cam in (1, 2, 3):
            index = 3 * p + cam - 1
            if index >= self.samples:
                break
            view = View(CAMERA_AZIMUTH[cam] + jitter_deg[cam - 1], distance, height)
            name = f"S{setup:03d}C{cam:03d}P{performer:03d}R{rep:03d}A{action.ntu:03d}"
            out.append(self._render_view(name, action, people, view, (start, length), index))
        return out

    def _render_view(
        self,
        name: str,
        action: Action,
        people: list[Person],
        view: View,
        window: tuple[int, int],
        index: int,
    ) -> RenderedNtu:
        cfg, real = self.config, self.config.realism
        rng = cfg.rng(VIEW, index)
        t_n = people[0].joints.shape[0]
        features: list[str] = []
        base_id = _BODY_ID_BASE + int(rng.integers(1000, 40000))
        streams = []
        for k, person in enumerate(people):
            body_id = base_id + (int(rng.integers(1, 40)) if k else 0)
            streams.append(self._actor(person, view, body_id, action.hand, window, rng))
        if len(people) == 2:
            features.append("two_person")
        if any((s.state == _INFERRED).any() for s in streams):
            features.append("inferred")
        if rng.random() < real.id_switch and t_n >= 20:
            cut = int(rng.integers(t_n // 4, 3 * t_n // 4))
            streams.append(_split(streams[0], cut, base_id + int(rng.integers(40, 400))))
            features.append("id_switch")
        if rng.random() < real.flicker:
            streams.append(self._flicker(streams[0], rng))
            features.append("flicker")
        if rng.random() < real.furniture:
            streams.append(self._furniture(t_n, rng))
            features.append("furniture")
        if rng.random() < real.empty:
            for s in streams:
                s.present[:] = False
            features.append("empty")
        elif rng.random() < real.leading_empty:
            lead = int(rng.integers(1, max(2, t_n // 4)))
            for s in streams:
                s.present[:lead] = False
            features.append("leading_empty")
        crlf = cfg.crlf(rng)
        if crlf:
            features.append("crlf")
        data, tracks = _assemble(streams, crlf)
        info = SampleInfo(
            name, f"{name}.skeleton", action.ntu - 1, action.name, (), tuple(features)
        )
        return RenderedNtu(data, info, tracks)

    def _actor(
        self,
        person: Person,
        view: View,
        body_id: int,
        hand: int,
        window: tuple[int, int],
        rng: np.random.Generator,
    ) -> _Body:
        real = self.config.realism
        xyz, rot = to_camera(person, view)
        xyz, hidden = occlusions(jitter(xyz, real.jitter, rng), real.occlusion, rng)
        xyz, inferred = dropouts(xyz, real.dropouts, rng)
        inferred |= hidden
        t_n = xyz.shape[0]
        quat = quaternions(rot)
        quat[:, list(LEAF_JOINTS)] = 0.0
        values = _joint_values(xyz, quat, real.integer_pixels, rng)
        state = np.where(inferred, _INFERRED, _TRACKED)
        # Lean: the upper spine's tilt in the pelvis frame (x sideways, y forwards), in [-1, 1].
        up = np.einsum("tji,tj->ti", rot[:, SB], rot[:, SS, :, 1])
        lean = np.clip(
            np.stack([2.0 * up[:, 0], -2.0 * up[:, 2]], -1) + rng.normal(0, 0.03, (t_n, 2)), -1, 1
        )
        ints = np.zeros((t_n, 7), np.int64)
        start, length = window
        for col in (2, 4):
            states = np.full(t_n, rng.choice([0, 1, 2, 3], p=[0.2, 0.2, 0.4, 0.2]))
            states[start : start + length] = hand
            flips = rng.random(t_n) < 0.05
            states[flips] = rng.integers(0, 5, int(flips.sum()))
            ints[:, col] = states
            # Confidence is high for most open/closed hands, and for some untracked ones too
            # (real files have "1 1": high confidence, state NotTracked).
            ints[:, col - 1] = rng.random(t_n) < np.where(states >= 2, 0.9, 0.4)
        ints[:, 6] = _TRACKED
        return _Body(body_id, np.ones(t_n, bool), values, state, ints, lean)

    def _flicker(self, actor: _Body, rng: np.random.Generator) -> _Body:
        """A ghost near the actor for 1-11 frames."""
        t_n = actor.present.shape[0]
        length = int(rng.integers(1, min(11, t_n) + 1))
        t0 = int(rng.integers(0, t_n - length + 1))
        xyz = actor.values[..., :3] + np.array(
            [rng.uniform(-1.0, 1.0), rng.normal(0, 0.1), rng.uniform(0.2, 0.8)]
        )
        xyz = xyz + rng.normal(0.0, 0.05, xyz.shape)
        return self._ghost(xyz, t0, length, rng)

    def _furniture(self, t_n: int, rng: np.random.Generator) -> _Body:
        """A wide, low, still 'body' (a sofa or a table): x-spread well over 0.8x its y-spread."""
        width, tall = rng.uniform(0.9, 1.6), rng.uniform(0.25, 0.55)
        centre = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-0.7, -0.3), rng.uniform(3.0, 4.3)])
        layout = rng.uniform(-0.5, 0.5, (NUM_JOINTS, 3)) * np.array([width, tall, 0.4])
        layout[:2, 0] = (-width / 2, width / 2)
        xyz = centre + layout + rng.normal(0.0, 0.01, (t_n, NUM_JOINTS, 3))
        length = int(rng.integers(max(1, int(0.4 * t_n)), t_n + 1))
        return self._ghost(xyz, int(rng.integers(0, t_n - length + 1)), length, rng)

    def _ghost(self, xyz: np.ndarray, t0: int, length: int, rng: np.random.Generator) -> _Body:
        t_n = xyz.shape[0]
        quat = rng.normal(0.0, 1.0, (t_n, NUM_JOINTS, 4))
        quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
        quat[:, list(LEAF_JOINTS)] = 0.0
        present = np.zeros(t_n, bool)
        present[t0 : t0 + length] = True
        ints = np.zeros((t_n, 7), np.int64)
        ints[:, 6] = _TRACKED
        lean = np.stack([rng.uniform(-1, 1, t_n), np.full(t_n, rng.choice([-1.0, 1.0]))], -1)
        state = np.where(rng.random((t_n, NUM_JOINTS)) < 0.6, _INFERRED, _TRACKED)
        body_id = _BODY_ID_BASE + int(rng.integers(40000, 90000))
        return _Body(body_id, present, _joint_values(xyz, quat, 0.0, rng), state, ints, lean)


def _joint_values(
    xyz: np.ndarray, quat: np.ndarray, integer_rate: float, rng: np.random.Generator
) -> np.ndarray:
    """``(T, 25, 11)`` joint line values as float32 (what a Kinect reports)."""
    color = color_pixels(xyz)
    if integer_rate > 0:
        snap = rng.random(color.shape) < integer_rate
        color[snap] = np.round(color[snap])
    return np.concatenate([xyz, depth_pixels(xyz), color, quat], -1).astype(np.float32)


def _split(body: _Body, cut: int, new_id: int) -> _Body:
    """From frame ``cut`` on, ``body`` is tracked under ``new_id`` (returned); before, unchanged."""
    later = body.present.copy()
    later[:cut] = False
    body.present[cut:] = False
    return _Body(new_id, later, body.values, body.state, body.ints, body.lean)


def _assemble(streams: list[_Body], crlf: bool) -> tuple[bytes, tuple[Track, ...]]:
    """Interleave the bodies frame by frame (file order) and render the file."""
    present = np.stack([s.present for s in streams])  # (S, T)
    t_idx, s_idx = np.nonzero(present.T)  # frame-major, body order within
    values = np.stack([s.values for s in streams])[s_idx, t_idx].astype(np.float64)
    data = format_ntu(
        present.sum(axis=0).astype(np.int64),
        np.array([streams[k].body_id for k in s_idx], np.int64),
        np.stack([s.ints for s in streams])[s_idx, t_idx],
        np.stack([s.lean for s in streams])[s_idx, t_idx].astype(np.float32).astype(np.float64),
        values,
        np.stack([s.state for s in streams])[s_idx, t_idx].astype(np.int64),
        crlf,
    ).tobytes()
    tracks = tuple(
        Track(str(s.body_id), np.flatnonzero(s.present), s.values[s.present, :, :3])
        for s in streams
        if s.present.any()
    )
    return data, tracks
