"""The synthetic action catalogue: joint-angle trajectories and their real action ids.

Each action animates one or two people over a window of the recording and leaves them idling
(breathing sway, personal rest pose) outside it. Every sample varies speed, amplitude, start,
duration, number of repetitions and the acting hand, so a class is a family of motions rather
than one template. Classes map to real action ids (NTU ``A023`` is hand waving, PKU-MMD label 13,
...) so that names, labels and splits of the generated datasets behave like the real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .kinematics import EL, ER, HIPL, HIPR, KL, KR, NECK, NUM_JOINTS, SB, SL, SM, SR, SS

__all__ = ["Action", "ACTIONS", "actions_for", "Pose", "animate"]

_DEG = np.pi / 180.0
#: Mean number of unrelated fidgets per person and 100 frames.
FIDGETS_PER_100_FRAMES = 1.0
#: Kinect HandState values an action sets on its hands (lasso, 4, comes only from random flips).
OPEN, CLOSED = 2, 3


class Pose:
    """Angle and displacement tracks of one person, built up by adding motions (degrees in)."""

    def __init__(self, t_n: int) -> None:
        self.angles = np.zeros((t_n, NUM_JOINTS, 3))
        self.lift = np.zeros((t_n, 3))

    def arm(self, side: int, flex=0.0, abd=0.0, hab=0.0, elbow=0.0) -> None:
        """Shoulder flexion (forward), abduction (sideways), horizontal abduction, elbow flexion.

        ``side`` is -1 for the left arm, +1 for the right one.
        """
        sh, el = (SL, EL) if side < 0 else (SR, ER)
        self.angles[:, sh, 0] += np.multiply(flex, _DEG)
        self.angles[:, sh, 1] += np.multiply(abd, side * _DEG)
        self.angles[:, sh, 2] -= np.multiply(hab, side * _DEG)
        self.angles[:, el, 0] += np.multiply(elbow, _DEG)

    def leg(self, side: int, flex=0.0, abd=0.0, knee=0.0) -> None:
        """Hip flexion (thigh forward), hip abduction and knee flexion."""
        hip, kn = (HIPL, KL) if side < 0 else (HIPR, KR)
        self.angles[:, hip, 0] += np.multiply(flex, _DEG)
        self.angles[:, hip, 1] += np.multiply(abd, side * _DEG)
        self.angles[:, kn, 0] -= np.multiply(knee, _DEG)

    def spine(self, bend=0.0, side=0.0, twist=0.0) -> None:
        """Forward bend, side bend and twist, shared 60/40 by the lower and upper spine."""
        for joint, share in ((SM, 0.6), (SS, 0.4)):
            self.angles[:, joint, 0] -= np.multiply(bend, share * _DEG)
            self.angles[:, joint, 1] += np.multiply(side, share * _DEG)
            self.angles[:, joint, 2] += np.multiply(twist, share * _DEG)

    def head(self, nod=0.0, turn=0.0) -> None:
        self.angles[:, NECK, 0] -= np.multiply(nod, _DEG)
        self.angles[:, NECK, 2] += np.multiply(turn, _DEG)

    def body(self, lean=0.0, turn=0.0) -> None:
        """Whole-body forward lean and turn about the vertical (radians in degrees)."""
        self.angles[:, SB, 0] -= np.multiply(lean, _DEG)
        self.angles[:, SB, 2] += np.multiply(turn, _DEG)


# -- envelopes over the action phase u in [0, 1] ---------------------------------------------


def _seg(u: np.ndarray, a: float, b: float) -> np.ndarray:
    """Phase re-mapped to [0, 1] over [a, b] (clipped)."""
    return np.clip((u - a) / (b - a), 0.0, 1.0)


def _bump(u: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0, smooth at both ends."""
    return np.sin(np.pi * u) ** 2


def _step(u: np.ndarray) -> np.ndarray:
    """0 -> 1, smooth (smoothstep)."""
    return u * u * (3.0 - 2.0 * u)


def _hold(u: np.ndarray, ramp: float = 0.25) -> np.ndarray:
    """Rise over the first ``ramp`` of the phase, hold 1, fall over the last ``ramp``."""
    return _step(np.clip(u / ramp, 0, 1)) * _step(np.clip((1.0 - u) / ramp, 0, 1))


def _osc(u: np.ndarray, cycles: float) -> np.ndarray:
    return np.sin(2.0 * np.pi * cycles * u)


@dataclass(frozen=True)
class _Params:
    amp: float  # amplitude scale, ~1
    cycles: float  # repetitions of cyclic motions
    side: int  # acting hand/foot: +1 right, -1 left


# -- single-person actions -------------------------------------------------------------------


def _wave(p: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.2)
    p.arm(
        k.side,
        flex=150 * h * k.amp,
        abd=(20 + 25 * _osc(u, k.cycles)) * h,
        elbow=(35 + 20 * _osc(u, k.cycles)) * h,
    )


def _kick(p: Pose, u, k: _Params) -> None:
    b = _bump(u)
    p.leg(k.side, flex=75 * b * k.amp, knee=80 * b - 60 * b**4)
    p.arm(-k.side, abd=20 * b)
    p.arm(k.side, abd=15 * b, hab=20 * b)
    p.spine(bend=-12 * b)


def _clap(p: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.2)
    spread = 0.5 + 0.5 * np.cos(2 * np.pi * k.cycles * u)
    for s in (-1, 1):
        p.arm(s, flex=70 * h * k.amp, hab=(-18 + 45 * spread) * h, elbow=45 * h)


def _squat(p: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.3) * k.amp
    for s in (-1, 1):
        p.leg(s, flex=100 * h, knee=125 * h, abd=8 * h)
        p.arm(s, flex=80 * h, elbow=10 * h)
    p.spine(bend=25 * h)


def _jump(p: Pose, u, k: _Params) -> None:
    crouch = _bump(_seg(u, 0.0, 0.45)) + _bump(_seg(u, 0.6, 0.95))
    air = np.sin(np.pi * _seg(u, 0.35, 0.65))
    for s in (-1, 1):
        p.leg(s, flex=45 * crouch, knee=80 * crouch)
        p.arm(s, flex=-30 * crouch + 150 * air * k.amp, elbow=20 * air)
    p.spine(bend=25 * crouch)
    p.lift[:, 1] += 0.28 * k.amp * air


def _bow(p: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.35)
    p.spine(bend=50 * h * k.amp)
    p.head(nod=15 * h)
    for s in (-1, 1):
        p.arm(s, flex=15 * h)


def _hands_up(p: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.2)
    for s in (-1, 1):
        p.arm(s, flex=165 * h * k.amp, abd=(25 + 10 * _osc(u, k.cycles)) * h, elbow=15 * h)
    p.head(nod=-10 * h)


def _sit(p: Pose, s: np.ndarray, u, k: _Params) -> None:
    for side in (-1, 1):
        p.leg(side, flex=90 * s, knee=90 * s, abd=5 * s)
        p.arm(side, flex=25 * s, elbow=40 * s)
    p.spine(bend=30 * _bump(u) * k.amp + 5 * s)


def _sit_down(p: Pose, u, k: _Params) -> None:
    _sit(p, _step(u), u, k)


def _stand_up(p: Pose, u, k: _Params) -> None:
    _sit(p, 1.0 - _step(u), u, k)


def _pick(p: Pose, u, k: _Params, sides: tuple[int, ...]) -> None:
    h = _hold(u, 0.3) * k.amp
    p.spine(bend=70 * h)
    p.head(nod=15 * h)
    for s in (-1, 1):
        p.leg(s, flex=25 * h, knee=40 * h)
    for s in sides:
        p.arm(s, flex=60 * h, hab=-10 * h, elbow=10 * h)


def _pick_up(p: Pose, u, k: _Params) -> None:
    _pick(p, u, k, (k.side,))


def _pick_up_two_hands(p: Pose, u, k: _Params) -> None:
    _pick(p, u, k, (-1, 1))


def _throw(p: Pose, u, k: _Params) -> None:
    windup = _bump(_seg(u, 0.0, 0.6))
    release = _bump(_seg(u, 0.4, 1.0))
    p.arm(k.side, flex=(160 * windup + 70 * release) * k.amp, abd=20 * windup, elbow=100 * windup)
    p.spine(twist=k.side * (25 * windup - 20 * release), bend=20 * release - 8 * windup)
    p.leg(-k.side, flex=20 * release, knee=10 * release)


def _drop(p: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.3)
    dip = _bump(_seg(u, 0.4, 0.7))
    p.arm(k.side, flex=(50 - 15 * dip) * h * k.amp, elbow=40 * h)
    p.spine(bend=(10 + 15 * dip) * h)
    p.head(nod=20 * h)


def _arm_circles(p: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.15)
    for s in (-1, 1):
        p.arm(
            s,
            abd=85 * h,
            flex=30 * _osc(u, k.cycles) * h * k.amp,
            hab=30 * np.cos(2 * np.pi * k.cycles * u) * h * k.amp,
        )


def _dress(p: Pose, u, k: _Params) -> None:
    """Getting into a jacket: one arm, then the other, goes back and up into a sleeve."""
    first, second = _bump(_seg(u, 0.0, 0.55)), _bump(_seg(u, 0.45, 1.0))
    for s, own, other in ((k.side, first, second), (-k.side, second, first)):
        p.arm(s, abd=65 * own * k.amp, flex=-35 * own + 45 * other, elbow=90 * (own + 0.5 * other))
    p.spine(twist=20 * k.side * (first - second), bend=10 * (first + second))


def _donning(p: Pose, u, k: _Params) -> None:
    _dress(p, u, k)


def _doffing(p: Pose, u, k: _Params) -> None:
    _dress(p, 1.0 - u, k)
    p.arm(-1, elbow=20 * _bump(u))
    p.arm(1, elbow=20 * _bump(u))
    p.head(nod=10 * _bump(u))


def _walk(p: Pose, u, k: _Params, turns: float, distance: float) -> None:
    heading = 360.0 * turns * u * k.side
    p.body(turn=heading)
    theta = heading * _DEG
    du = np.gradient(u)
    speed = distance * du
    p.lift[:, 0] += np.cumsum(-np.sin(theta) * speed)
    p.lift[:, 2] += np.cumsum(-np.cos(theta) * speed)
    moving = _hold(u, 0.1)
    gait = _osc(u, k.cycles)
    for s in (-1, 1):
        phase = gait * s
        p.leg(s, flex=25 * phase * moving, knee=40 * np.clip(-phase, 0, None) * moving + 5 * moving)
        p.arm(s, flex=-20 * phase * moving)


def _walk_around(p: Pose, u, k: _Params) -> None:
    _walk(p, u, k, turns=0.8, distance=2.5 * k.amp)


def _carry(p: Pose, u, k: _Params) -> None:
    _walk(p, u, k, turns=0.25, distance=1.8 * k.amp)
    h = _hold(u, 0.1)
    for s in (-1, 1):
        p.arm(s, flex=(55 + 20 * _osc(u, k.cycles) * s) * h, hab=-12 * h, elbow=75 * h)


# -- two-person actions (p acts, q reacts; they face each other) ----------------------------------


def _punch(p: Pose, q: Pose, u, k: _Params) -> None:
    hit = _bump(_seg(u, 0.25, 0.7))
    guard = _hold(u, 0.2)
    p.arm(k.side, flex=20 * guard + 70 * hit * k.amp, elbow=110 * guard * (1 - hit))
    p.arm(-k.side, flex=30 * guard, elbow=100 * guard)
    p.spine(twist=-k.side * 20 * hit, bend=10 * hit)
    p.lift[:, 2] -= 0.12 * hit
    recoil = _bump(_seg(u, 0.45, 0.9))
    q.spine(bend=-15 * recoil, side=10 * recoil)
    q.head(turn=25 * recoil)
    q.lift[:, 2] += 0.10 * recoil


def _push(p: Pose, q: Pose, u, k: _Params) -> None:
    shove = _bump(_seg(u, 0.15, 0.65))
    for s in (-1, 1):
        p.arm(s, flex=85 * shove * k.amp, elbow=90 - 80 * shove)
    p.spine(bend=15 * shove)
    p.lift[:, 2] -= 0.2 * _step(_seg(u, 0.1, 0.5))
    back = _step(_seg(u, 0.4, 0.7))
    stumble = _bump(_seg(u, 0.4, 0.9))
    q.lift[:, 2] += 0.35 * back * k.amp
    q.spine(bend=-15 * stumble)
    for s in (-1, 1):
        q.arm(s, abd=35 * stumble)
        q.leg(s, flex=15 * stumble * s)


def _handshake(p: Pose, q: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.3)
    shake = 8 * _osc(u, k.cycles) * _hold(u, 0.4)
    for person in (p, q):
        person.arm(1, flex=(55 * k.amp + shake) * h, hab=-10 * h, elbow=25 * h)
        person.lift[:, 2] -= 0.15 * h


def _hug(p: Pose, q: Pose, u, k: _Params) -> None:
    h = _hold(u, 0.3)
    for person, abd in ((p, 25), (q, 5)):
        for s in (-1, 1):
            person.arm(s, flex=80 * h * k.amp, abd=abd * h, hab=-35 * h, elbow=70 * h)
        person.spine(bend=10 * h)
        person.lift[:, 2] -= 0.28 * h


def _kick_other(p: Pose, q: Pose, u, k: _Params) -> None:
    _kick(p, u, k)
    hurt = _bump(_seg(u, 0.4, 0.9))
    q.spine(bend=30 * hurt)
    for s in (-1, 1):
        q.arm(s, flex=40 * hurt, elbow=60 * hurt)
    q.lift[:, 2] += 0.12 * hurt


@dataclass(frozen=True)
class Action:
    """One class: its motion, how many people it takes, and its ids in each real dataset."""

    name: str
    persons: int
    motion: Callable[..., None]
    ntu: int | None
    pku: int | None
    ucla: int | None
    hand: int
    #: Repetitions of cyclic parts, (min, max).
    cycles: tuple[float, float] = (1.0, 1.0)

    def real_id(self, dataset: str) -> int | None:
        return getattr(self, dataset)


#: Catalogue order decides which classes ``--classes K`` keeps (the first K of a dataset).
ACTIONS: tuple[Action, ...] = (
    Action("wave", 1, _wave, 23, 13, None, OPEN, (2, 4)),
    Action("kick", 1, _kick, 24, 19, None, CLOSED),
    Action("clap", 1, _clap, 10, 6, None, OPEN, (3, 6)),
    Action("punch", 2, _punch, 50, 26, None, CLOSED),
    Action("squat", 1, _squat, 80, None, None, OPEN),
    Action("jump", 1, _jump, 27, 17, None, OPEN),
    Action("bow", 1, _bow, 35, 1, None, OPEN),
    Action("push", 2, _push, 52, 27, None, OPEN),
    Action("hands_up", 1, _hands_up, 95, 5, None, OPEN, (1, 3)),
    Action("sit_down", 1, _sit_down, 8, 33, 5, OPEN),
    Action("handshake", 2, _handshake, 58, 14, None, CLOSED, (2, 4)),
    Action("pick_up", 1, _pick_up, 6, 22, 1, CLOSED),
    Action("throw", 1, _throw, 7, 41, 11, CLOSED),
    Action("hug", 2, _hug, 55, 16, None, OPEN),
    Action("stand_up", 1, _stand_up, 9, 34, 6, OPEN),
    Action("kick_other", 2, _kick_other, 51, 18, None, CLOSED),
    Action("arm_circles", 1, _arm_circles, 97, None, None, OPEN, (2, 4)),
    Action("drop", 1, _drop, 5, 9, 3, OPEN),
    Action("donning", 1, _donning, 14, 48, 8, CLOSED),
    Action("doffing", 1, _doffing, 15, 37, 9, CLOSED),
    Action("pick_up_two_hands", 1, _pick_up_two_hands, None, None, 2, CLOSED),
    Action("walk_around", 1, _walk_around, None, None, 4, OPEN, (3, 5)),
    Action("carry", 1, _carry, None, None, 12, CLOSED, (3, 5)),
)


def actions_for(
    dataset: str, classes: int | None = None, max_persons: int = 2
) -> tuple[Action, ...]:
    """The classes a dataset (``ntu``, ``pku``, ``ucla``) holds: the first ``classes`` of them."""
    avail = tuple(a for a in ACTIONS if a.real_id(dataset) is not None and a.persons <= max_persons)
    if classes is None:
        return avail
    if not 1 <= classes <= len(avail):
        raise ValueError(f"--classes must be 1..{len(avail)} for {dataset}, found {classes}")
    return avail[:classes]


def _idle(p: Pose, rng: np.random.Generator, t_n: int) -> None:
    """Personal rest pose and a slow breathing/weight-shift sway."""
    t = np.arange(t_n) / 30.0
    sway = np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 2 * np.pi))
    p.spine(side=1.5 * sway, bend=rng.normal(3, 2))
    p.head(nod=rng.normal(0, 5), turn=rng.normal(0, 5))
    for s in (-1, 1):
        p.arm(
            s,
            abd=rng.uniform(4, 12) + 1.0 * sway * s,
            flex=rng.normal(5, 4),
            elbow=rng.uniform(5, 20),
        )
        p.leg(s, abd=rng.uniform(2, 6), flex=rng.normal(0, 2))
    p.lift[:, 0] += 0.01 * sway


def _fidget(p: Pose, rng: np.random.Generator, t_n: int) -> None:
    """An unrelated small movement (scratching, looking around, shifting weight) at a random time.

    Real performers fidget; without it a class would be one template plus noise and raw
    coordinates would classify too easily.
    """
    length = int(rng.integers(10, 41))
    b = _bump(np.clip((np.arange(t_n) - rng.integers(-length // 2, t_n)) / length, 0.0, 1.0))
    side = int(rng.choice([-1, 1]))
    kind = int(rng.integers(4))
    amp = rng.uniform(10.0, 40.0)
    if kind == 0:
        p.arm(side, flex=amp * 2 * b, elbow=amp * 2.5 * b, hab=-amp * b)
    elif kind == 1:
        p.head(nod=rng.normal(0, 1) * amp * b, turn=rng.normal(0, 1) * amp * b)
    elif kind == 2:
        p.spine(twist=side * amp * b, side=0.3 * side * amp * b)
    else:
        p.leg(side, flex=0.4 * amp * b, knee=0.6 * amp * b)
        p.lift[:, 0] += 0.05 * side * b


def animate(
    persons: int, t_n: int, segments: list[tuple[Action, int, int]], rng: np.random.Generator
) -> list[Pose]:
    """Angle tracks of ``persons`` people over ``t_n`` frames performing ``segments`` in turn.

    Each segment ``(action, start, length)`` runs over frames ``[start, start + length)``, with its
    own speed profile, amplitude, repetitions and acting hand; the people idle and fidget
    in between and meanwhile.
    """
    poses = [Pose(t_n) for _ in range(persons)]
    for p in poses:
        _idle(p, rng, t_n)
        for _ in range(rng.poisson(FIDGETS_PER_100_FRAMES * t_n / 100)):
            _fidget(p, rng, t_n)
    frames = np.arange(t_n)
    for action, start, length in segments:
        u = np.clip((frames - start) / max(length - 1, 1), 0.0, 1.0)
        u = u ** np.exp(rng.normal(0.0, 0.25))  # uneven speed: fast start or slow finish
        params = _Params(
            amp=float(np.clip(rng.normal(1.0, 0.15), 0.6, 1.4)),
            cycles=float(rng.uniform(*action.cycles)),
            side=1 if rng.random() < 0.85 else -1,
        )
        action.motion(*poses[: action.persons], u, params)
    return poses
