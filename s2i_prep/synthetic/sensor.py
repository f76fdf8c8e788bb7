"""What a depth sensor does to clean joint positions: jitter and tracking dropouts.

The rates of every imperfection the writers add live in one :class:`Realism`, so tests can turn
a feature up to certainty and ``--no-noise`` can turn them all off.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .kinematics import (
    AL,
    AR,
    FL,
    FR,
    HEAD,
    HL,
    HR,
    HTL,
    HTR,
    KL,
    KR,
    NECK,
    SB,
    SM,
    SS,
    TL,
    TR,
    WL,
    WR,
)

__all__ = ["Realism", "jitter", "occlusions", "dropouts"]

#: Joint groups that lose tracking together (distal first), Kinect v2 indices.
_CHAINS = (
    (HL, HTL, TL),
    (HR, HTR, TR),
    (WL, HL, HTL, TL),
    (WR, HR, HTR, TR),
    (AL, FL),
    (AR, FR),
    (KL, AL, FL),
    (KR, AR, FR),
)


@dataclass(frozen=True)
class Realism:
    """Rates of sensor imperfections (probabilities per file unless stated)."""

    #: Scale of the per-joint jitter (1 = a few millimetres, more in depth).
    jitter: float = 1.0
    #: Joints hidden behind the torso are inferred, flattened onto it and noisy (0 = never).
    occlusion: float = 1.0
    #: Mean number of tracking dropouts per recording (joints inferred, positions jumping).
    dropouts: float = 1.5
    #: NTU: a leading run of frames without any body.
    leading_empty: float = 0.06
    #: NTU: no body in any frame (the official "missing skeleton" files).
    empty: float = 0.01
    #: NTU: an extra body flickering in for at most 11 frames.
    flicker: float = 0.08
    #: NTU: an extra wide, furniture-like body.
    furniture: float = 0.04
    #: NTU: the actor's tracking id changes mid-sequence.
    id_switch: float = 0.05
    #: NTU: per joint line, colour pixels snapped to bare integers.
    integer_pixels: float = 0.003
    #: NW-UCLA: a frame with a few joints at exactly (0, 0, 0).
    zero_joints: float = 0.05
    #: PKU-MMD: a short run of frames where the first body is lost (all zeros).
    lost_frames: float = 0.1

    @classmethod
    def off(cls) -> Realism:
        """Clean data: no jitter and no imperfection at all."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


def jitter(xyz: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``xyz`` (T, V, 3) plus Kinect-like noise: about 4 mm laterally, 8 mm in depth."""
    if scale <= 0:
        return xyz
    return xyz + rng.normal(0.0, 1.0, xyz.shape) * (scale * np.array([0.004, 0.004, 0.008]))


#: Torso joints (never hidden by the torso) and the occluder's half-width and thickness (m).
_TORSO = (SB, SM, SS, NECK, HEAD)
_HALF_WIDTH, _DEPTH = 0.2, 0.1


def occlusions(
    xyz: np.ndarray, strength: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Limb joints behind the torso as the camera sees it are inferred: a Kinect guesses them
    close to the body surface. This makes side views worse than front views, as in real data.

    Returns:
        the new ``(T, V, 3)`` positions and a ``(T, V)`` bool mask of the hidden joints.
    """
    if strength <= 0:
        return xyz, np.zeros(xyz.shape[:2], bool)
    centre = xyz[:, (SB, SM, SS)].mean(axis=1, keepdims=True)
    behind = xyz[..., 2] - centre[..., 2] > _DEPTH
    hidden = behind & (np.abs(xyz[..., 0] - centre[..., 0]) < _HALF_WIDTH)
    hidden[:, _TORSO] = False
    if not hidden.any():
        return xyz, hidden
    xyz = xyz.copy()
    guess = xyz[hidden]
    guess[:, 2] = np.broadcast_to(centre[..., 2], hidden.shape)[hidden] + 0.05
    xyz[hidden] = guess + rng.normal(0.0, 0.015 * strength, guess.shape)
    return xyz, hidden


def dropouts(
    xyz: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Tracking losses: a limb end is inferred for 3-20 frames and jumps around meanwhile.

    Returns:
        the new ``(T, V, 3)`` positions and a ``(T, V)`` bool mask of the inferred joints.
    """
    t_n = xyz.shape[0]
    inferred = np.zeros(xyz.shape[:2], bool)
    count = rng.poisson(rate) if rate > 0 else 0
    if count == 0:
        return xyz, inferred
    xyz = xyz.copy()
    for _ in range(count):
        chain = list(_CHAINS[rng.integers(len(_CHAINS))])
        length = int(rng.integers(3, 21))
        t0 = int(rng.integers(0, max(t_n - length, 0) + 1))
        sl = slice(t0, t0 + length)
        drift = rng.normal(0.0, 1.0, 3)
        drift *= rng.uniform(0.03, 0.15) / np.linalg.norm(drift)
        steps = drift + rng.normal(0.0, 0.02, (xyz[sl].shape[0], 1, 3))
        xyz[sl, chain] += steps
        inferred[sl, chain] = True
    return xyz, inferred
