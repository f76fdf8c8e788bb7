"""Estimated-pose datasets: Kinetics-skeleton (OpenPose-18), pyskl COCO-17 pickles, Toyota Smarthome.

The same kinematic performers as the Kinect formats are filmed by a pinhole camera and reduced to
the joints an estimator reports (face points placed around the head), in the grammar and folder
layout of each release. What an estimator adds is imitated too: pixel noise, joints it misses
(score 0), frames in which nobody is found, low-scored bystanders, and people listed in a
different order in every frame (OpenPose does not track), so person ranking is exercised.

- ``openpose18``: ``kinetics_train/`` and ``kinetics_val/`` (every 4th video is val) with
  ``kinetics_{train,val}_label.json``; 340x256 frames, coordinates normalised, 3 decimals.
- ``coco17``: one pyskl annotation pickle ``coco17_2d.pkl`` (``split`` train/test, every 4th
  sample in test), pixel coordinates in 1920x1080 or 640x480 frames, ``keypoint_score``.
- ``toyota13``: ``Activity_pNN_rNN_vNN_cNN.json`` LCR-Net files with ``pose2d`` (640x480
  pixels) and ``pose3d`` (metres, centred on the hips), coordinate-major, and ``cumscore``.
"""

from __future__ import annotations

import base64
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cameras import View, perform, to_camera
from .config import PERFORMANCE, VIEW, SampleInfo, SynthConfig, subject_body
from .kinematics import (
    AL, AR, EL, ER, HEAD, HIPL, HIPR, KL, KR, NECK, SL, SR, SS, WL, WR,
)

__all__ = [
    "EstimatedJob", "RenderedPose", "TOYOTA_ACTIVITIES", "TOYOTA_SUBJECTS", "ESTIMATED_FORMATS",
]

ESTIMATED_FORMATS = ("openpose18", "coco17", "toyota13")
#: Toyota Smarthome's 31 activities (CS protocol), in the order of their 0-based labels.
TOYOTA_ACTIVITIES = (
    "Cook.Cleandishes", "Cook.Cleanup", "Cook.Cut", "Cook.Stir", "Cook.Usestove", "Cutbread",
    "Drink.Frombottle", "Drink.Fromcan", "Drink.Fromcup", "Drink.Fromglass", "Eat.Attable",
    "Eat.Snack", "Enter", "Getup", "Laydown", "Leave", "Makecoffee.Pourgrains",
    "Makecoffee.Pourwater", "Maketea.Boilwater", "Maketea.Insertteabag", "Pour.Frombottle",
    "Pour.Fromcan", "Pour.Fromkettle", "Readbook", "Sitdown", "Takepills", "Uselaptop",
    "Usetablet", "Usetelephone", "Walk", "WatchTV",
)
#: The 18 Toyota Smarthome subjects (cross-subject train and test ids).
TOYOTA_SUBJECTS = (2, 3, 4, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 25)

# Kinect v2 joint -> layout joint; the face points (-1) are placed around the head.
_FACE = -1
_LAYOUT = {
    # OpenPose-18: nose neck RSho RElb RWri LSho LElb LWri RHip RKnee RAnk LHip LKnee LAnk REye
    # LEye REar LEar
    "openpose18": (
        _FACE, SS, SR, ER, WR, SL, EL, WL, HIPR, KR, AR, HIPL, KL, AL, _FACE, _FACE, _FACE, _FACE
    ),
    # COCO-17: nose LEye REye LEar REar LSho RSho LElb RElb LWri RWri LHip RHip LKnee RKnee LAnk RAnk
    "coco17": (
        _FACE, _FACE, _FACE, _FACE, _FACE, SL, SR, EL, ER, WL, WR, HIPL, HIPR, KL, KR, AL, AR
    ),
    # LCR-Net 13: RAnk LAnk RKnee LKnee RHip LHip RWri LWri RElb LElb RSho LSho head
    "toyota13": (AR, AL, KR, KL, HIPR, HIPL, WR, WL, ER, EL, SR, SL, HEAD),
}
# Face points as (right, up, forward) offsets in metres from the head, in the head's frame.
_FACE_OFFSETS = {
    "nose": (0.0, -0.02, 0.10), "right_eye": (0.035, 0.015, 0.08),
    "left_eye": (-0.035, 0.015, 0.08), "right_ear": (0.075, 0.0, 0.0),
    "left_ear": (-0.075, 0.0, 0.0),
}
_FACE_NAMES = {
    "openpose18": {0: "nose", 14: "right_eye", 15: "left_eye", 16: "right_ear", 17: "left_ear"},
    "coco17": {0: "nose", 1: "left_eye", 2: "right_eye", 3: "left_ear", 4: "right_ear"},
    "toyota13": {},
}
_IMAGE = {"openpose18": ((340, 256),), "coco17": ((1920, 1080), (640, 480)),
          "toyota13": ((640, 480),)}
_ID_CHARS = 11


@dataclass(frozen=True)
class RenderedPose:
    """One generated sample: what was written for every person (for tests) and its file.

    ``people`` holds, per person slot in the truth (actors first, then a bystander), ``(T, V, 2)``
    image coordinates as written (NaN where the person is not reported), ``(T, V)`` scores and,
    for Toyota, ``(T, V, 3)`` pose3d.
    """

    info: SampleInfo
    image_size: tuple[int, int]
    xy: np.ndarray
    score: np.ndarray
    xyz: np.ndarray | None
    order: np.ndarray  # (T, P) file position of every person in every frame, -1 absent
    data: bytes = b""
    part: int = 0
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EstimatedJob:
    """Plan of a run of one estimated-pose format: sample ``i`` performs class ``i mod K``."""

    config: SynthConfig
    samples: int
    format: str

    def tasks(self, size: int = 16) -> list[range]:
        return [range(a, min(a + size, self.samples)) for a in range(0, self.samples, size)]

    def class_names(self) -> list[str]:
        if self.format == "toyota13":
            return list(TOYOTA_ACTIVITIES[: len(self.config.actions)])
        return [a.name for a in self.config.actions]

    def render(self, index: int) -> RenderedPose:
        cfg, fmt = self.config, self.format
        real = cfg.realism
        rng = cfg.rng(PERFORMANCE, index)
        a = index % len(cfg.actions)
        action = cfg.actions[a]
        lo, hi = cfg.frames
        t_n = int(rng.integers(lo, hi + 1))
        length = max(2, int(t_n * rng.uniform(0.6, 0.9)))
        start = int(rng.integers(0, t_n - length + 1))
        if fmt == "toyota13":
            subject = int(TOYOTA_SUBJECTS[int(rng.integers(len(TOYOTA_SUBJECTS)))])
        else:
            subject = int(rng.integers(1, cfg.subjects + 1))
        bodies = [subject_body(cfg.seed, subject)]
        if action.persons == 2:
            bodies.append(subject_body(cfg.seed, subject % cfg.subjects + 1))
        offset = np.array([rng.normal(0.0, 0.3), 0.0, rng.normal(0.0, 0.4)])
        people = perform(
            bodies, t_n, [(action, start, length)], rng.normal(0.0, 30.0), rng.uniform(0.8, 1.1),
            offset, rng,
        )
        view = View(rng.uniform(-40.0, 40.0), rng.uniform(3.2, 4.5), rng.uniform(0.9, 1.7))
        vrng = cfg.rng(VIEW, index)
        sizes = _IMAGE[fmt]
        width, height = sizes[int(vrng.integers(len(sizes)))]
        cams = [to_camera(p, view) for p in people]
        noisy = real.jitter > 0
        if noisy and vrng.random() < 0.5:  # a bystander at the side, poorly detected
            by = perform([subject_body(cfg.seed, cfg.subjects + 7)], t_n, [], 0.0, 1.0,
                         np.array([rng.choice([-1.6, 1.6]), 0.0, rng.uniform(0.5, 1.5)]), rng)
            cams.append(to_camera(by[0], view))
        n_people = len(cams)
        vee = len(_LAYOUT[fmt])
        xyz = np.stack([_layout_joints(j, r, fmt) for j, r in cams])  # (P, T, V, 3) metres
        focal = 1.05 * width
        z = np.maximum(xyz[..., 2], 0.3)
        xy = np.stack(
            [width / 2 + focal * xyz[..., 0] / z, height / 2 - focal * xyz[..., 1] / z], -1
        )
        score = np.clip(vrng.normal(0.75, 0.12, xy.shape[:3]), 0.05, 0.99)
        if n_people > len(people):
            score[len(people):] *= 0.35
        features: list[str] = []
        if noisy:
            xy += vrng.normal(0.0, 0.004 * height, xy.shape)
            missed = vrng.random(score.shape) < 0.04
            score[missed] = 0.0
            if missed.any():
                features.append("missed_joints")
        outside = (xy[..., 0] < 0) | (xy[..., 0] >= width) | (xy[..., 1] < 0) | (xy[..., 1] >= height)
        score[outside] = 0.0
        present = np.ones((n_people, t_n), bool)
        if noisy and vrng.random() < 0.3:
            lead = int(vrng.integers(1, max(2, t_n // 5)))
            present[:, :lead] = False
            features.append("empty_frames")
        if n_people > len(people):
            present[len(people):] &= vrng.random(t_n) < 0.6
            features.append("bystander")
        present &= (score > 0).any(axis=-1)
        # detections in a shuffled order in every frame (estimators do not track people)
        order = np.full((t_n, n_people), -1, np.int64)
        for t in range(t_n):
            here = np.flatnonzero(present[:, t])
            if noisy:
                here = vrng.permutation(here)
            order[t, here] = np.arange(len(here))
        if noisy and n_people > 1:
            features.append("shuffled_people")
        if fmt == "openpose18":
            xy = np.round(xy / np.array([width, height]), 3)
            score = np.round(score, 3)
        elif fmt == "toyota13":
            xy = np.round(xy, 2)
        xy = xy.astype(np.float32)
        if fmt != "toyota13":  # LCR-Net reports every joint; the others zero what they missed
            xy[score == 0] = 0.0
        xy[~present] = np.nan
        score = np.where(present[..., None], score, 0.0).astype(np.float32)
        hips = xyz[..., [4, 5], :].mean(axis=2, keepdims=True) if fmt == "toyota13" else 0.0
        pose3d = np.round(xyz - hips, 4).astype(np.float32) if fmt == "toyota13" else None
        label = a
        if fmt == "toyota13":
            camera = int(vrng.integers(1, 8))
            # repetition and video number spell the index: names are unique up to 10,000 samples
            name = (f"{TOYOTA_ACTIVITIES[a]}_p{subject:02d}_r{index // 100 % 100:02d}"
                    f"_v{index % 100:02d}_c{camera:02d}")
            meta = (("subject", subject), ("camera", camera))
            path = f"{name}.json"
        else:
            name = _video_id(cfg.seed, index)
            part = int(index % 4 == 3)
            meta = (("part", part),)
            folder = ("kinetics_train", "kinetics_val")[part] if fmt == "openpose18" else ""
            path = f"{folder}/{name}.json" if folder else name
        info = SampleInfo(name, path, label, self.class_names()[a], meta, tuple(features))
        rendered = RenderedPose(info, (width, height), xy, score, pose3d, order,
                                part=dict(meta).get("part", 0))
        if fmt == "openpose18":
            return _with(rendered, data=_kinetics_json(rendered, self.class_names()[a]))
        if fmt == "toyota13":
            return _with(rendered, data=_toyota_json(rendered))
        return rendered

    def run(self, task: range, out_dir: Path) -> list[SampleInfo]:
        infos = []
        for i in task:
            r = self.render(i)
            if self.format == "coco17":
                parts = out_dir / ".parts"
                parts.mkdir(exist_ok=True)
                with open(parts / f"{i:08d}.pkl", "wb") as fh:
                    pickle.dump(_pyskl_annotation(r), fh, protocol=4)
            else:
                target = out_dir / r.info.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(r.data)
            infos.append(r.info)
        return infos

    def finish(self, out_dir: Path, infos: list[SampleInfo]) -> None:
        """Write what spans samples: Kinetics label files, or the pyskl pickle."""
        if self.format == "openpose18":
            for part, pname in enumerate(("train", "val")):
                table = {
                    s.name: {"has_skeleton": True, "label": s.action, "label_index": s.label}
                    for s in infos if dict(s.meta)["part"] == part
                }
                (out_dir / f"kinetics_{pname}_label.json").write_text(
                    json.dumps(table, indent=4), encoding="utf-8"
                )
        elif self.format == "coco17":
            parts = out_dir / ".parts"
            annotations = []
            for i in range(len(infos)):
                with open(parts / f"{i:08d}.pkl", "rb") as fh:
                    annotations.append(pickle.load(fh))  # noqa: S301 - our own files
                (parts / f"{i:08d}.pkl").unlink()
            parts.rmdir()
            split = {
                "train": [s.name for s in infos if dict(s.meta)["part"] == 0],
                "test": [s.name for s in infos if dict(s.meta)["part"] == 1],
            }
            with open(out_dir / "coco17_2d.pkl", "wb") as fh:
                pickle.dump({"split": split, "annotations": annotations}, fh, protocol=4)


def _with(r: RenderedPose, **changes) -> RenderedPose:
    from dataclasses import replace

    return replace(r, **changes)


def _video_id(seed: int, index: int) -> str:
    """An 11-character YouTube-like id, unique per (seed, index)."""
    raw = np.random.default_rng([seed, 99, index]).bytes(8)
    return base64.urlsafe_b64encode(raw).decode()[:_ID_CHARS]


def _layout_joints(joints: np.ndarray, rots: np.ndarray, fmt: str) -> np.ndarray:
    """Kinect v2 ``(T, 25, 3)`` camera-space joints -> the format's ``(T, V, 3)``."""
    table = _LAYOUT[fmt]
    out = np.empty((joints.shape[0], len(table), 3))
    head, head_rot = joints[:, HEAD], rots[:, NECK]
    for v, j in enumerate(table):
        if j != _FACE:
            out[:, v] = joints[:, j]
            continue
        right, up, fwd = _FACE_OFFSETS[_FACE_NAMES[fmt][v]]
        # the body frame faces -z with its left at -x (kinematics.py): right = +x, forward = -z
        local = np.array([right, up, -fwd])
        out[:, v] = head + head_rot @ local
    return out


def _numbers(values: np.ndarray, fmt: str) -> str:
    return ", ".join(fmt % v for v in values)


def _kinetics_json(r: RenderedPose, label_name: str) -> bytes:
    frames = []
    t_n, n_people = r.order.shape
    for t in range(t_n):
        people = sorted((r.order[t, p], p) for p in range(n_people) if r.order[t, p] >= 0)
        skel = ", ".join(
            '{"pose": [%s], "score": [%s]}'
            % (_numbers(r.xy[p, t].reshape(-1), "%.3f"), _numbers(r.score[p, t], "%.3f"))
            for _, p in people
        )
        frames.append('{"frame_index": %d, "skeleton": [%s]}' % (t + 1, skel))
    return ('{"data": [%s], "label": %s, "label_index": %d}'
            % (", ".join(frames), json.dumps(label_name), r.info.label)).encode()


def _toyota_json(r: RenderedPose) -> bytes:
    frames = []
    t_n, n_people = r.order.shape
    for t in range(t_n):
        people = sorted((r.order[t, p], p) for p in range(n_people) if r.order[t, p] >= 0)
        dets = []
        for _, p in people:
            dets.append(
                '{"pose2d": [%s], "pose3d": [%s], "cumscore": %.4f}'
                % (_numbers(r.xy[p, t].T.reshape(-1), "%.2f"),
                   _numbers(r.xyz[p, t].T.reshape(-1), "%.4f"), float(r.score[p, t].sum()))
            )
        frames.append("[%s]" % ", ".join(dets))
    return ('{"K": 20, "njts": 13, "frames": [%s]}' % ", ".join(frames)).encode()


def _pyskl_annotation(r: RenderedPose) -> dict:
    """pyskl's 2-D layout: every person in every frame, zeros where absent."""
    xy = np.nan_to_num(r.xy, nan=0.0).astype(np.float32)
    width, height = r.image_size
    return {
        "frame_dir": r.info.name,
        "label": r.info.label,
        "img_shape": (height, width),
        "original_shape": (height, width),
        "total_frames": int(xy.shape[1]),
        "keypoint": xy,
        "keypoint_score": r.score.astype(np.float32),
    }
