"""NTU RGB+D ``.skeleton`` reader (reader name ``ntu_skeleton``).

The bytes are parsed by :func:`s2i_prep.kernels.parse_ntu.parse_ntu`; this module only turns its
flat body-frame records into a :class:`RawSkeleton` and its status codes into errors that name the
file, the line and column, the frame and body, what was expected and what was found.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ParseError, ReadError, SourceLocation, TruncatedError
from ..kernels import parse_ntu as K
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .rawfile import encoding_problem, line_ending_problem, read_bytes

__all__ = ["NtuSkeletonReader", "parse_ntu_bytes"]

_LINE_NAMES = {
    K.LINE_FRAME_COUNT: "frame count",
    K.LINE_BODY_COUNT: "body count",
    K.LINE_BODY_INFO: "body info",
    K.LINE_JOINT_COUNT: "joint count",
    K.LINE_JOINT: "joint",
    K.LINE_DONE: "end of file",
}
_BODY_INFO_FIELDS = ("bodyID", "clipedEdges", "handLeftConfidence", "handLeftState",
                     "handRightConfidence", "handRightState", "isResticted", "leanX", "leanY",
                     "trackingState")
_JOINT_FIELDS = K.JOINT_FLOAT_NAMES + ("trackingState",)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


_TOKEN = re.compile(rb"[^ \t\r\n]*")


def _full_token(buf: bytes, pos: int) -> str:
    """The whole token at ``pos`` (up to a blank or line end), however long."""
    return _TOKEN.match(buf, pos).group().decode("latin-1")


def _token_at(buf: bytes, pos: int, limit: int = 40) -> str:
    """The token at ``pos`` for a message, shortened to ``limit`` characters."""
    text = _full_token(buf[pos:pos + limit + 1], 0)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _line_column(data: bytes, pos: int) -> tuple[int, int]:
    """1-based line and column of byte ``pos`` (counted only when reporting an error)."""
    return data.count(b"\n", 0, pos) + 1, pos - (data.rfind(b"\n", 0, pos) + 1) + 1


def _apply_fixups(data: bytes, path: str, fix: np.ndarray, frame_of: np.ndarray,
                  jf: np.ndarray, blean: np.ndarray) -> None:
    """Convert the tokens the kernel cannot round exactly with Python's correctly rounded
    ``float()`` then float32, and store them (``fix`` rows: record, joint or -1, field, start).

    The kernel checked their grammar, so ``float()`` accepts them; only the range is left to
    check: a value that rounds to infinity in float32 is a located "value out of range".
    """
    tokens = [_full_token(data, start) for start in fix[:, 3].tolist()]
    with np.errstate(over="ignore"):
        values = np.array([float(t) for t in tokens]).astype(np.float32)
    over = np.flatnonzero(np.isinf(values))
    if len(over):
        rec, joint, field, start = (int(v) for v in fix[over[0]])
        line, column = _line_column(data, start)
        fname = ("leanX", "leanY")[field] if joint < 0 else K.JOINT_FLOAT_NAMES[field]
        token = tokens[over[0]]
        shown = token if len(token) <= 40 else token[:37] + "..."
        raise ParseError(
            SourceLocation(path, line, column, int(frame_of[rec])),
            f"value out of range: {fname} {shown!r} is beyond float32 (|x| <= {_FLOAT32_MAX:.7g})",
        )
    lean = fix[:, 1] < 0
    blean[fix[lean, 0], fix[lean, 2]] = values[lean]
    kept = ~lean & (fix[:, 2] < jf.shape[2])  # without fields="all" the others are only checked
    jf[fix[kept, 0], fix[kept, 1], fix[kept, 2]] = values[kept]


def _error(path: str, data: bytes, status: int, pos: int, info: np.ndarray,
           num_joints: int) -> ReadError:
    """Turn the kernel's status into an error with a location; line numbers are counted only now."""
    nframes, kind, field, found, frame, body = (int(info[k]) for k in (0, 4, 5, 6, 7, 8))
    line, column = _line_column(data, pos)
    in_frame = kind not in (K.LINE_FRAME_COUNT, K.LINE_DONE)
    in_body = kind in (K.LINE_BODY_INFO, K.LINE_JOINT_COUNT, K.LINE_JOINT)
    loc = SourceLocation(path, line, column, frame if in_frame else None, body if in_body else None)
    what = _LINE_NAMES[kind]
    if kind == K.LINE_BODY_INFO:
        fname = _BODY_INFO_FIELDS[min(field, 9)]
    elif kind == K.LINE_JOINT:
        fname = _JOINT_FIELDS[min(field, 11)]
    else:
        fname = what
    token = _token_at(data, pos)
    if status in (K.FIELD_COUNT, K.BAD_FLOAT, K.BAD_INT, K.BAD_ID, K.EOF_EARLY):
        cause = line_ending_problem(data, pos)
        if cause:
            line, column = _line_column(data, cause[0])
            return ParseError(SourceLocation(path, line, column), cause[1])
    if status == K.EOF_EARLY:
        if len(data) == 0:
            return TruncatedError(loc, "file is empty: expected the frame count on line 1")
        promised = f" (the header promised {nframes} frames)" if kind != K.LINE_FRAME_COUNT else ""
        return TruncatedError(loc, f"file ends early: expected a {what} line{promised}")
    if status == K.FIELD_COUNT:
        expected = K.LINE_FIELDS[kind]
        return ParseError(loc, f"expected {expected} field{'s' if expected > 1 else ''} on a {what} "
                               f"line, found {found}")
    if status == K.JOINT_COUNT:
        return ParseError(loc, f"expected {num_joints} joints per body (the spec's joint count), "
                               f"found {found}")
    if status == K.BAD_FLOAT:
        return ParseError(loc, f"expected a number for {fname}, found {token!r}")
    if status == K.NONFINITE:
        return ParseError(loc, f"{fname} is {token!r}: NaN and infinity are not accepted "
                               "(a corrupted file; see docs/READERS.md)")
    if status == K.BAD_INT:
        return ParseError(loc, f"expected an integer for {fname}, found {token!r}")
    if status == K.BAD_ID:
        return ParseError(loc, f"expected an unsigned 64-bit integer bodyID, found {token!r}")
    if status == K.DUPLICATE_BODY:
        return ParseError(loc, f"body id {token} appears twice in one frame")
    if status == K.NEGATIVE:
        return ParseError(loc, f"expected a non-negative {what}, found {found}")
    if status == K.TRAILING:
        return ParseError(loc, f"unexpected data after the last of {nframes} frames: {token!r}")
    return ParseError(loc, f"more body records than the file's size allows (status {status})")


def parse_ntu_bytes(data: bytes, path: str, spec: JointSpec, fields: str = "all") -> RawSkeleton:
    """Parse the bytes of one ``.skeleton`` file into a :class:`RawSkeleton`.

    ``fields="all"`` keeps every joint and body field; ``"xyz"`` converts only the positions
    (the other joint fields are checked, not converted) and leaves ``joint_fields`` and
    ``body_fields`` empty.
    """
    V = spec.num_joints
    problem = encoding_problem(data)
    if problem:
        raise ParseError(SourceLocation(path, 1, 1), problem)
    status, pos, out = K.parse(np.frombuffer(data, np.uint8), V, fields == "all")
    if status != K.OK:
        raise _error(path, data, status, pos, out.info, V)
    T, nrec, B, nfix = (int(out.info[k]) for k in range(4))
    frame_of, body_of = out.frame_of[:nrec], out.body_of[:nrec]
    jf, js, bints, blean = out.jf[:nrec], out.js[:nrec], out.bints[:nrec], out.blean[:nrec]
    if nfix:
        _apply_fixups(data, path, out.fix[:nfix], frame_of, jf, blean)

    def scatter(values: np.ndarray, fill: float | int) -> np.ndarray:
        grid = np.full((B, T) + values.shape[1:], fill, values.dtype)
        grid[body_of, frame_of] = values
        return grid

    # Ids stay uint64 until they become decimal strings: a float would merge distinct people.
    body_ids = tuple(str(x) for x in out.ids[:B])
    if fields == "xyz":
        return RawSkeleton(name=Path(path).stem, source=path, joints=scatter(jf[..., :3], np.nan),
                           body_ids=body_ids)
    # Four scatters; the per-field arrays are views into them.
    floats, ints = scatter(jf, np.nan), scatter(bints, -1)
    joint_fields = {
        "depth": floats[..., 3:5],
        "color": floats[..., 5:7],
        "orientation": floats[..., 7:11],
        "tracking_state": scatter(js, -1),
    }
    body_fields = {name: ints[..., k] for k, name in enumerate(K.BODY_INT_NAMES)}
    body_fields["lean"] = scatter(blean, np.nan)
    return RawSkeleton(
        name=Path(path).stem,
        source=path,
        joints=floats[..., :3],
        body_ids=body_ids,
        joint_fields=joint_fields,
        body_fields=body_fields,
    )


@register_reader("ntu_skeleton")
class NtuSkeletonReader:
    """Reads NTU RGB+D 60/120 ``.skeleton`` files (LF or CRLF, any exponent case)."""

    name = "ntu_skeleton"

    def __init__(self, fields: str = "all") -> None:
        self.fields = check_fields(fields)

    def discover(self, root: Path) -> list[Path]:
        """Every ``*.skeleton`` under ``root`` (recursively), sorted by file name."""
        root = Path(root)
        if root.is_file():
            return [root]
        return sorted(root.rglob("*.skeleton"), key=lambda p: (p.name, str(p)))

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        return [parse_ntu_bytes(read_bytes(path), str(path), spec, self.fields)]
