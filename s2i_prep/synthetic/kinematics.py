"""A kinematic human in the Kinect v2 25-joint layout.

Joint angles drive a tree of rigid bones whose lengths belong to one subject, so the same
performer keeps the same proportions in every file and cross-subject splits mean something.
Body frame: the person faces -z, y is up and their left is -x (what a Kinect facing them sees);
the pelvis (SpineBase) is the root and the feet rest on the floor (y = 0).

Angles are ``(T, 25, 3)`` per joint: (pitch about x, roll about z, yaw about y) in radians,
composed as ``Ry(yaw) @ Rz(roll) @ Rx(pitch)`` and rotating everything below that joint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "NUM_JOINTS",
    "LEAF_JOINTS",
    "V1_FROM_V2",
    "Body",
    "make_body",
    "rotations",
    "forward_kinematics",
    "SB",
    "SM",
    "NECK",
    "HEAD",
    "SL",
    "EL",
    "WL",
    "HL",
    "SR",
    "ER",
    "WR",
    "HR",
    "HIPL",
    "KL",
    "AL",
    "FL",
    "HIPR",
    "KR",
    "AR",
    "FR",
    "SS",
    "HTL",
    "TL",
    "HTR",
    "TR",
]

NUM_JOINTS = 25
# Kinect v2 joint indices, in NTU/PKU file order.
SB, SM, NECK, HEAD, SL, EL, WL, HL, SR, ER, WR, HR = range(12)
HIPL, KL, AL, FL, HIPR, KR, AR, FR, SS, HTL, TL, HTR, TR = range(12, 25)

#: Joints Kinect reports with a ``0 0 0 0`` orientation (FORMATS.md 1.3).
LEAF_JOINTS = (HEAD, FL, FR, HTL, TL, HTR, TR)

#: Kinect v1 (NW-UCLA, 20 joints) index -> Kinect v2 index: ShoulderCenter is SpineShoulder.
V1_FROM_V2 = np.array(
    [SB, SM, SS, HEAD, SL, EL, WL, HL, SR, ER, WR, HR, HIPL, KL, AL, FL, HIPR, KR, AR, FR],
    dtype=np.int64,
)

#: Parent of each joint in the kinematic tree (rooted at SpineBase, unlike the specs' bone trees).
_PARENT = np.array(
    [
        -1,
        SB,
        SS,
        NECK,
        SS,
        SL,
        EL,
        WL,
        SS,
        SR,
        ER,
        WR,
        SB,
        HIPL,
        KL,
        AL,
        SB,
        HIPR,
        KR,
        AR,
        SM,
        HL,
        HL,
        HR,
        HR,
    ],
    dtype=np.int64,
)
#: Parents before children.
_ORDER = (
    SB,
    SM,
    SS,
    NECK,
    HEAD,
    SL,
    EL,
    WL,
    HL,
    HTL,
    TL,
    SR,
    ER,
    WR,
    HR,
    HTR,
    TR,
    HIPL,
    KL,
    AL,
    FL,
    HIPR,
    KR,
    AR,
    FR,
)

# Rest offsets (metres, person 1.75 m tall) from the parent joint, arms hanging, palms inwards;
# bone lengths close to the mean of the real NTU sample files (as Kinect v2 places its joints).
_REST = np.zeros((NUM_JOINTS, 3))
_REST[SM] = (0, 0.29, 0)
_REST[SS] = (0, 0.22, 0)
_REST[NECK] = (0, 0.07, 0)
_REST[HEAD] = (0, 0.11, 0.01)
_REST[HIPL], _REST[HIPR] = (-0.058, -0.03, 0), (0.058, -0.03, 0)
for _s, (_sh, _el, _wr, _ha, _tip, _th) in (
    (-1, (SL, EL, WL, HL, HTL, TL)),
    (1, (SR, ER, WR, HR, HTR, TR)),
):
    _REST[_sh] = (0.14 * _s, -0.04, 0)
    _REST[_el] = (0, -0.26, 0)
    _REST[_wr] = (0, -0.24, 0)
    _REST[_ha] = (0, -0.07, 0)
    _REST[_tip] = (0, -0.055, 0)
    _REST[_th] = (-0.01 * _s, -0.025, -0.03)
for _hip, _kn, _an, _ft in ((HIPL, KL, AL, FL), (HIPR, KR, AR, FR)):
    _REST[_kn] = (0, -0.36, 0)
    _REST[_an] = (0, -0.36, 0)
    _REST[_ft] = (0, -0.04, -0.10)

#: Segment groups whose length a subject scales together (torso, arms, legs, widths).
_GROUPS = {
    "torso": (SM, SS, NECK, HEAD),
    "arm": (EL, WL, ER, WR),
    "hand": (HL, HTL, TL, HR, HTR, TR),
    "leg": (KL, AL, KR, AR),
    "shoulders": (SL, SR),
    "hips": (HIPL, HIPR),
    "feet": (FL, FR),
}
#: Heights of the ankle and foot joints above the floor in the rest pose.
_ANKLE_Y, _FOOT_Y = 0.08, 0.03


@dataclass(frozen=True)
class Body:
    """One subject: ``offsets`` (25, 3) float64 rest offsets from each joint's kinematic parent."""

    height: float
    offsets: np.ndarray


def make_body(rng: np.random.Generator) -> Body:
    """A subject with its own height (1.50-1.95 m) and proportions."""
    height = float(np.clip(rng.normal(1.70, 0.08), 1.50, 1.95))
    offsets = _REST * (height / 1.75)
    for joints in _GROUPS.values():
        offsets[list(joints)] *= rng.normal(1.0, 0.04)
    return Body(height, offsets)


def rotations(angles: np.ndarray) -> np.ndarray:
    """``(..., 3)`` (pitch, roll, yaw) -> ``(..., 3, 3)`` ``Ry(yaw) @ Rz(roll) @ Rx(pitch)``."""
    cp, sp = np.cos(angles[..., 0]), np.sin(angles[..., 0])
    cr, sr = np.cos(angles[..., 1]), np.sin(angles[..., 1])
    cy, sy = np.cos(angles[..., 2]), np.sin(angles[..., 2])
    out = np.empty(angles.shape[:-1] + (3, 3))
    # Rz @ Rx
    a00, a01, a02 = cr, -sr * cp, sr * sp
    a10, a11, a12 = sr, cr * cp, -cr * sp
    a20, a21, a22 = 0.0, sp, cp
    # Ry @ (Rz @ Rx)
    out[..., 0, 0] = cy * a00 + sy * a20
    out[..., 0, 1] = cy * a01 + sy * a21
    out[..., 0, 2] = cy * a02 + sy * a22
    out[..., 1, 0] = a10
    out[..., 1, 1] = a11
    out[..., 1, 2] = a12
    out[..., 2, 0] = -sy * a00 + cy * a20
    out[..., 2, 1] = -sy * a01 + cy * a21
    out[..., 2, 2] = -sy * a02 + cy * a22
    return out


def forward_kinematics(
    body: Body, angles: np.ndarray, lift: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions and global joint rotations in the body frame.

    Args:
        body: the subject.
        angles: ``(T, 25, 3)`` local joint angles (radians); ``angles[:, SB]`` turns the whole body.
        lift: ``(T, 3)`` pelvis displacement added after the feet were put on the floor
            (a jump's height, a step back when pushed).

    Returns:
        ``(T, 25, 3)`` positions and ``(T, 25, 3, 3)`` global rotations, float64.
    """
    local = rotations(angles)
    t_n = angles.shape[0]
    pos = np.zeros((t_n, NUM_JOINTS, 3))
    rot = np.empty((t_n, NUM_JOINTS, 3, 3))
    rot[:, SB] = local[:, SB]
    for j in _ORDER[1:]:
        p = _PARENT[j]
        pos[:, j] = pos[:, p] + rot[:, p] @ body.offsets[j]
        rot[:, j] = rot[:, p] @ local[:, j]
    ground = np.minimum(
        pos[:, (AL, AR), 1].min(axis=1) - _ANKLE_Y, pos[:, (FL, FR), 1].min(axis=1) - _FOOT_Y
    )
    pos[..., 1] -= ground[:, None]
    pos += lift[:, None, :]
    return pos, rot
