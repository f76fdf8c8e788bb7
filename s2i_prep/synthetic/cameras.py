"""Scenes and Kinect cameras: where people stand, where cameras look from, what a Kinect reports.

World frame: floor at y = 0, y up, the scene centre at the origin. A camera at azimuth ``a``
stands on a circle around the centre (``a = 0`` looks along +z), ``height`` metres above the
floor, tilted to look at a point 0.9 m high over the centre. Camera space is the Kinect's: x to
the sensor's left, y up, z the depth, in metres; depth and colour pixels follow a pinhole model
of the Kinect v2 (512x424 depth, 1920x1080 colour with a small baseline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .actions import Action, animate
from .kinematics import Body, forward_kinematics

__all__ = ["View", "Person", "perform", "to_camera", "depth_pixels", "color_pixels", "quaternions"]

_LOOK_AT_Y = 0.9
# Kinect v2 intrinsics (approximate, fitted on real NTU joint lines).
_DEPTH_F, _DEPTH_C = 365.5, (255.5, 208.5)
_COLOR_F, _COLOR_C = 1060.0, (960.0, 540.0)
_COLOR_OFFSET = (0.052, -0.085)


@dataclass(frozen=True)
class View:
    """A camera pose: azimuth and its own elevation follow from where it stands."""

    azimuth: float  # degrees around the scene centre
    distance: float  # metres from the centre, horizontally
    height: float  # metres above the floor

    def frame(self) -> tuple[np.ndarray, np.ndarray]:
        """``(R, C)`` with camera coordinates ``R @ (X - C)`` of a world point ``X``."""
        a = np.radians(self.azimuth)
        centre = np.array([self.distance * np.sin(a), self.height, -self.distance * np.cos(a)])
        forward = np.array([0.0, _LOOK_AT_Y, 0.0]) - centre
        forward /= np.linalg.norm(forward)
        left = np.cross([0.0, 1.0, 0.0], forward)
        left /= np.linalg.norm(left)
        up = np.cross(forward, left)
        return np.stack([left, up, forward]), centre


@dataclass(frozen=True)
class Person:
    """One performer in world coordinates: ``joints`` (T, 25, 3) and ``rotations`` (T, 25, 3, 3)."""

    joints: np.ndarray
    rotations: np.ndarray


def _yaw(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def perform(
    bodies: list[Body],
    t_n: int,
    segments: list[tuple[Action, int, int]],
    facing: float,
    gap: float,
    offset: np.ndarray,
    rng: np.random.Generator,
) -> list[Person]:
    """Animate ``len(bodies)`` people and place them in the world.

    One person stands at ``offset`` facing the camera at azimuth ``facing``; two people stand
    ``gap`` metres apart, face to face, their axis across that camera's view.
    """
    poses = animate(len(bodies), t_n, segments, rng)
    scene = _yaw(-facing)
    people = []
    for k, (body, pose) in enumerate(zip(bodies, poses, strict=True)):
        joints, rots = forward_kinematics(body, pose.angles, pose.lift)
        if len(bodies) == 1:
            turn, place = np.eye(3), np.zeros(3)
        else:
            # Person 0 on the left facing +x (towards person 1), person 1 on the right facing -x.
            turn = _yaw(-90.0 if k == 0 else 90.0)
            place = np.array([(k - 0.5) * gap, 0.0, 0.0])
        r = scene @ turn
        people.append(Person(joints @ r.T + (scene @ place + offset), r @ rots))
    return people


def to_camera(person: Person, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space joints ``(T, V, 3)`` and joint rotations ``(T, V, 3, 3)`` of one person."""
    r, c = view.frame()
    return (person.joints - c) @ r.T, r @ person.rotations


def depth_pixels(xyz: np.ndarray) -> np.ndarray:
    """``(..., 2)`` pixel coordinates in the 512x424 depth frame (Kinect mirrors x)."""
    z = xyz[..., 2]
    return np.stack(
        [_DEPTH_C[0] + _DEPTH_F * xyz[..., 0] / z, _DEPTH_C[1] - _DEPTH_F * xyz[..., 1] / z], -1
    )


def color_pixels(xyz: np.ndarray) -> np.ndarray:
    """``(..., 2)`` pixel coordinates in the 1920x1080 colour frame."""
    z = xyz[..., 2]
    return np.stack(
        [
            _COLOR_C[0] + _COLOR_F * (xyz[..., 0] + _COLOR_OFFSET[0]) / z,
            _COLOR_C[1] - _COLOR_F * (xyz[..., 1] + _COLOR_OFFSET[1]) / z,
        ],
        -1,
    )


def quaternions(rot: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 4)`` unit quaternions W X Y Z (W >= 0)."""
    m = rot
    w = 0.5 * np.sqrt(np.maximum(0.0, 1.0 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]))
    x = 0.5 * np.sqrt(np.maximum(0.0, 1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2]))
    y = 0.5 * np.sqrt(np.maximum(0.0, 1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2]))
    z = 0.5 * np.sqrt(np.maximum(0.0, 1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]))
    x = np.copysign(x, m[..., 2, 1] - m[..., 1, 2])
    y = np.copysign(y, m[..., 0, 2] - m[..., 2, 0])
    z = np.copysign(z, m[..., 1, 0] - m[..., 0, 1])
    return np.stack([w, x, y, z], -1)
