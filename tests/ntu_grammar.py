"""A tiny, strict NTU ``.skeleton`` grammar checker written from FORMATS.md section 1.

It shares no code with the project's reader on purpose: a generator and a reader built on the
same misunderstanding would agree with each other and still be wrong about the real files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})\.skeleton")
INT = re.compile(r"-?\d+")
UINT = re.compile(r"\d+")
#: C# float.ToString(): at most 7 significant digits, uppercase 2-digit exponent, bare integers.
FLOAT = re.compile(r"-?\d+(\.\d+)?(E[+-]\d{2})?")
JOINTS = 25
BODY_FIELDS = 10
JOINT_FIELDS = 12
#: Joints whose orientation is always 0 0 0 0 (Head, FootLeft, FootRight, hand tips and thumbs).
LEAVES = (3, 15, 19, 21, 22, 23, 24)


class GrammarError(AssertionError):
    """The bytes break the NTU grammar; the message names the line."""


@dataclass
class NtuFile:
    """What the checker saw: line ending, bodies per frame, body ids and some field values."""

    crlf: bool
    bodies_per_frame: list[int] = field(default_factory=list)
    body_ids: list[int] = field(default_factory=list)
    joint_states: set[int] = field(default_factory=set)
    hand_states: set[int] = field(default_factory=set)
    has_upper_exponent: bool = False
    has_bare_integer_pixel: bool = False


def _fail(line_no: int, problem: str) -> GrammarError:
    return GrammarError(f"line {line_no}: {problem}")


def _significant_digits(token: str) -> int:
    mantissa = token.lstrip("-").split("E")[0].replace(".", "").lstrip("0")
    return len(mantissa)


def check_name(name: str) -> tuple[int, int, int, int, int]:
    """Setup, camera, performer, replication, action of a file name; raises on a bad name."""
    m = NAME.fullmatch(name)
    if m is None:
        raise GrammarError(f"bad file name {name!r}")
    s, c, p, r, a = (int(g) for g in m.groups())
    if not (1 <= s <= 32 and 1 <= c <= 3 and 1 <= p <= 106 and 1 <= r <= 2 and 1 <= a <= 120):
        raise GrammarError(f"file name {name!r} has a field out of range")
    return s, c, p, r, a


def check_ntu(data: bytes) -> NtuFile:
    """Check a whole file; returns what it found or raises :class:`GrammarError`."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise GrammarError("file starts with a BOM")
    if not data.endswith(b"\n"):
        raise GrammarError("file does not end with a newline")
    crlf = data.endswith(b"\r\n")
    text = data.decode("ascii")
    lines = text.split("\r\n" if crlf else "\n")[:-1]
    out = NtuFile(crlf)
    for no, line in enumerate(lines, 1):
        if "\r" in line or "\n" in line:
            raise _fail(no, "mixed line endings")
        if not line or line != line.strip() or "  " in line:
            raise _fail(no, "blank line or stray whitespace")

    pos = 0

    def take(expected: int, what: str) -> list[str]:
        nonlocal pos
        if pos >= len(lines):
            raise _fail(pos + 1, f"file ended, expected {what}")
        tokens = lines[pos].split(" ")
        if len(tokens) != expected:
            raise _fail(pos + 1, f"expected {expected} fields for {what}, found {len(tokens)}")
        pos += 1
        return tokens

    def integer(token: str, what: str, pattern: re.Pattern[str] = UINT) -> int:
        if not pattern.fullmatch(token):
            raise _fail(pos, f"{what} must be an integer, found {token!r}")
        return int(token)

    def number(token: str, what: str) -> float:
        if not FLOAT.fullmatch(token) or _significant_digits(token) > 7:
            raise _fail(pos, f"{what} must be a float with at most 7 digits, found {token!r}")
        out.has_upper_exponent |= "E" in token
        return float(token)

    frames = integer(take(1, "frameCount")[0], "frameCount")
    for _ in range(frames):
        bodies = integer(take(1, "bodyCount")[0], "bodyCount")
        out.bodies_per_frame.append(bodies)
        for _ in range(bodies):
            info = take(BODY_FIELDS, "bodyInfo")
            out.body_ids.append(integer(info[0], "bodyID"))
            ints = [integer(t, "bodyInfo flag") for t in info[1:7]]
            out.hand_states.update((ints[2], ints[4]))
            if not (ints[1] in (0, 1) and ints[3] in (0, 1) and max(ints[2], ints[4]) <= 4):
                raise _fail(pos, "hand confidence must be 0/1 and hand state 0-4")
            for t in info[7:9]:
                if not -1.0 <= number(t, "lean") <= 1.0:
                    raise _fail(pos, f"lean out of [-1, 1]: {t}")
            integer(info[9], "trackingState")
            if integer(take(1, "jointCount")[0], "jointCount") != JOINTS:
                raise _fail(pos, f"jointCount must be {JOINTS}")
            for j in range(JOINTS):
                tokens = take(JOINT_FIELDS, f"joint {j}")
                values = [number(t, "joint field") for t in tokens[:11]]
                out.has_bare_integer_pixel |= any(
                    UINT.fullmatch(t.lstrip("-")) for t in tokens[5:7]
                )
                if j in LEAVES and tokens[7:11] != ["0", "0", "0", "0"]:
                    raise _fail(pos, f"leaf joint {j} must have orientation 0 0 0 0")
                if j not in LEAVES and abs(sum(v * v for v in values[7:11]) - 1.0) > 1e-5:
                    raise _fail(pos, "orientation must be a unit quaternion")
                state = integer(tokens[11], "joint trackingState")
                if state not in (0, 1, 2):
                    raise _fail(pos, f"joint trackingState must be 0-2, found {state}")
                out.joint_states.add(state)
    if pos != len(lines):
        raise _fail(pos + 1, f"{len(lines) - pos} lines after the last frame")
    return out
