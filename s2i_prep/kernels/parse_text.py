"""Byte-level parser of whitespace-separated ASCII number tables (one record per line).

Used by the PKU-MMD reader (150 numbers a line) and meant for any text grammar that is "a fixed
number of decimals per line". Numbers come out exactly as numpy's ``str -> float32`` gives them:
correctly rounded to float64, then rounded to float32 (the double rounding the reference
pipelines do with ``np.array(tokens, dtype=np.float32)``). The fast path is exact only while the
mantissa fits 2**53 and the decimal exponent is within +-22 (one exact multiplication or division,
Clinger's fast path); rarer tokens are reported back (``slow``) and converted in Python by
``float()``, never approximated. The fast path cannot leave float32 (2**53 * 10**22 < 3.4e38);
a slow token beyond it is reported as OUT_OF_RANGE, and ``nan``/``inf`` tokens as NONFINITE:
no dataset value may be non-finite.

Memory is bounded by the content: the output table holds at most one row per ``2 * ncols`` bytes
(the shortest valid line), however many line ends the file has.

Kernels never raise: they return a status and the byte offset where they stopped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ._jit import jit

__all__ = [
    "OK",
    "BAD_NUMBER",
    "TOO_FEW",
    "TOO_MANY",
    "NONFINITE",
    "OUT_OF_RANGE",
    "NUMBER_OK",
    "NUMBER_BAD",
    "NUMBER_SLOW",
    "NUMBER_NONFINITE",
    "FloatRows",
    "parse_float_rows",
    "token_at",
    "warm",
]

# Table status codes (parse_float_rows).
OK = 0
BAD_NUMBER = 1  # a token is not a decimal number; offset = its first byte
TOO_FEW = 2  # a line ends early; offset = the line end, found = numbers read on it
TOO_MANY = 3  # a line holds more numbers; offset = the first extra token, found = all numbers on it
NONFINITE = 4  # a nan/inf token; offset = its first byte, found = its index on the line
OUT_OF_RANGE = 5  # a number beyond float32; offset = its first byte, found = its index on the line

# Single-token status codes (_scan_float).
NUMBER_OK = 0
NUMBER_BAD = 1
NUMBER_SLOW = 2  # grammatical, but only Python's float() rounds it exactly
NUMBER_NONFINITE = 3  # nan, inf or infinity (value set, for callers that accept them)

_POW10 = np.array([10.0**k for k in range(23)])
_TWO53 = 9007199254740992
_MAX_DIGITS = 18  # significant digits that always fit an int64 mantissa


# Speed notes (numba 0.68, measured here): a helper that returns `a or b` ran about 20x slower
# than the same test written as `if` branches, and an array variable reassigned inside the token
# loop cost a third of the run time (reference counting), hence the shapes below. Bytes are
# widened with int() before arithmetic so the kernels also run unjitted (NUMBA_DISABLE_JIT=1),
# where numpy's uint8 would wrap around.


@jit(inline="always")
def _token_ends_at(buf, pos, n):
    """True at a blank, LF, CR LF, a CR that ends the buffer, or the end of the buffer."""
    if pos >= n:
        return True
    c = buf[pos]
    if c == 32 or c == 9 or c == 10 or (c == 13 and (pos + 1 >= n or buf[pos + 1] == 10)):
        return True
    return False


@jit(inline="always")
def _scan_float(buf, pos, n):
    """Read one number starting at ``pos``: ``(value, end, status)``.

    Grammar: ``[+-] (digits [. digits] | . digits) [(e|E) [+-] digits]``, or ``[+-]`` and
    ``nan``/``inf``/``infinity`` in any case; then a blank, a line end or the end of the buffer.
    ``status`` is NUMBER_OK (value exact), NUMBER_BAD, or NUMBER_SLOW (value 0; use ``float()``).
    """
    neg = False
    if pos < n and (buf[pos] == 45 or buf[pos] == 43):
        neg = buf[pos] == 45
        pos += 1
    mant = 0
    exp10 = 0
    body = pos
    start = pos
    while pos < n and 48 <= buf[pos] <= 57:
        mant = mant * 10 + (int(buf[pos]) - 48)
        pos += 1
    digits = pos - start
    if pos < n and buf[pos] == 46:
        pos += 1
        start = pos
        while pos < n and 48 <= buf[pos] <= 57:
            mant = mant * 10 + (int(buf[pos]) - 48)
            pos += 1
        exp10 = start - pos
        digits += pos - start
    if digits == 0:
        # not a decimal: nan, inf or infinity (any case), or a bad token
        if pos != body:
            return 0.0, body, NUMBER_BAD  # a lone "."
        word = 0
        start = pos
        while pos - start < 9 and not _token_ends_at(buf, pos, n):
            word = word * 256 + (int(buf[pos]) | 32)
            pos += 1
        if _token_ends_at(buf, pos, n):
            if word == 0x6E616E:  # nan; numpy keeps the sign bit of "-nan"
                return math.copysign(np.nan, -1.0 if neg else 1.0), pos, NUMBER_NONFINITE
            if word == 0x696E66 or word == 0x696E66696E697479:  # inf, infinity
                return (-np.inf if neg else np.inf), pos, NUMBER_NONFINITE
        return 0.0, start, NUMBER_BAD
    if pos < n and (buf[pos] == 101 or buf[pos] == 69):  # e or E
        pos += 1
        eneg = False
        if pos < n and (buf[pos] == 45 or buf[pos] == 43):
            eneg = buf[pos] == 45
            pos += 1
        start = pos
        e = 0
        while pos < n and 48 <= buf[pos] <= 57:
            if e < 100000:
                e = e * 10 + (int(buf[pos]) - 48)
            pos += 1
        if pos == start:
            return 0.0, pos, NUMBER_BAD
        exp10 += -e if eneg else e
    if not _token_ends_at(buf, pos, n):
        return 0.0, pos, NUMBER_BAD
    if mant == 0 and digits <= _MAX_DIGITS:
        return (-0.0 if neg else 0.0), pos, NUMBER_OK
    # Leading zeros count as digits here, so a long zero-padded token takes the (exact) slow path.
    if digits > _MAX_DIGITS or mant > _TWO53 or exp10 > 22 or exp10 < -22:
        return 0.0, pos, NUMBER_SLOW
    value = float(mant)
    if exp10 >= 0:
        value = value * _POW10[exp10]
    else:
        value = value / _POW10[-exp10]
    return (-value if neg else value), pos, NUMBER_OK


@jit
def _parse_float_rows(buf, ncols):
    """Parse ``buf`` as lines of exactly ``ncols`` numbers.

    Returns ``(status, offset, row, found, values (capacity, ncols) float32, slow (capacity,
    ncols) bool, nslow)``; ``slow`` marks the tokens left to Python, and on OK the first ``row``
    rows are the table. (A growing list of slow positions would be reassigned inside the loop,
    which costs numba a reference-count round trip per token.)
    """
    n = buf.shape[0]
    pos = 0
    if n >= 3 and buf[0] == 0xEF and buf[1] == 0xBB and buf[2] == 0xBF:
        pos = 3  # a UTF-8 byte-order mark some Windows editors add
    rows = 0
    for i in range(pos, n):
        if buf[i] == 10:
            rows += 1
    if n > pos and buf[n - 1] != 10:
        rows += 1
    # A valid line takes at least 2 * ncols bytes (one-byte numbers, blanks, the LF; the last
    # line one less), so more rows than this cannot all be valid: the parse stops at a bad one
    # before the table fills, and 8 million empty lines cost kilobytes, not gigabytes.
    capacity = min(rows, (n - pos + 1) // (2 * ncols) + 1)
    values = np.empty((capacity, ncols), np.float32)
    slow = np.zeros((capacity, ncols), np.bool_)
    nslow = 0
    for row in range(rows):
        if row == capacity:  # unreachable by the bound above; kept as the memory guarantee
            return TOO_FEW, pos, row, 0, values, slow, nslow
        col = 0
        while True:
            while pos < n and (buf[pos] == 32 or buf[pos] == 9):
                pos += 1
            if pos >= n:
                break
            c = buf[pos]
            if c == 10 or (c == 13 and (pos + 1 >= n or buf[pos + 1] == 10)):
                break
            if col == ncols:
                extra = pos
                found = col
                while pos < n and buf[pos] != 10:
                    c = buf[pos]
                    if c == 13 and (pos + 1 >= n or buf[pos + 1] == 10):
                        break
                    if (
                        c != 32
                        and c != 9
                        and (pos == extra or buf[pos - 1] == 32 or buf[pos - 1] == 9)
                    ):
                        found += 1
                    pos += 1
                return TOO_MANY, extra, row, found, values, slow, nslow
            value, end, status = _scan_float(buf, pos, n)
            if status == NUMBER_BAD:
                return BAD_NUMBER, pos, row, col, values, slow, nslow
            if status == NUMBER_NONFINITE:
                return NONFINITE, pos, row, col, values, slow, nslow
            if status == NUMBER_SLOW:
                slow[row, col] = True
                nslow += 1
            values[row, col] = value
            col += 1
            pos = end
        if col < ncols:
            return TOO_FEW, pos, row, col, values, slow, nslow
        if pos < n and buf[pos] == 13:
            pos += 1
        pos += 1  # the LF (or one past the end)
    return OK, min(pos, n), rows, ncols, values, slow, nslow


def _token_bytes(buf: np.ndarray, offset: int) -> bytes:
    """The bytes of the token starting at ``offset`` (up to a blank, CR or LF)."""
    width = 64
    while True:
        raw = bytes(buf[offset : offset + width])
        cut = min((i for i in (raw.find(c) for c in b" \t\r\n") if i >= 0), default=-1)
        if cut >= 0 or offset + width >= len(buf):
            return raw if cut < 0 else raw[:cut]
        width *= 4


def token_at(data: bytes | np.ndarray, offset: int, limit: int = 40) -> str:
    """The token starting at ``offset``, shortened and ASCII-escaped, for error messages."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    text = ascii(_token_bytes(buf, offset).decode("latin-1"))[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class FloatRows:
    """Result of :func:`parse_float_rows`.

    Attributes:
        status: OK, BAD_NUMBER, TOO_FEW, TOO_MANY, NONFINITE or OUT_OF_RANGE.
        offset: byte offset where parsing stopped (see the status codes).
        row: 0-based line of the problem (the number of lines when OK).
        found: numbers on that line (see the status codes).
        values: ``(rows, ncols)`` float32; only when ``status == OK`` (else empty).
        ends_mid_line: the problem is a short last line without a line end, i.e. a cut-off file.
    """

    status: int
    offset: int
    row: int
    found: int
    values: np.ndarray
    ends_mid_line: bool


def parse_float_rows(data: bytes | np.ndarray, ncols: int) -> FloatRows:
    """Parse text whose every line holds exactly ``ncols`` decimal numbers; never raises.

    Blanks are spaces and tabs; lines end in LF or CRLF; the last line end is optional.
    """
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    status, offset, row, found, values, slow, nslow = _parse_float_rows(buf, ncols)
    if status != OK:
        n = len(buf)
        cut = status == TOO_FEW and offset == n and n > 0 and buf[-1] != 10  # a cut-off last line
        return FloatRows(int(status), int(offset), int(row), int(found), values[:0], bool(cut))
    values = values[:row]
    if nslow:
        bad = _convert_slow(buf, values, slow[:row])
        if bad is not None:
            return FloatRows(OUT_OF_RANGE, bad[0], bad[1], bad[2], values[:0], False)
    return FloatRows(OK, int(offset), int(row), int(found), values, False)


def _convert_slow(
    buf: np.ndarray, values: np.ndarray, slow: np.ndarray
) -> tuple[int, int, int] | None:
    """Fill the tokens the kernel left to Python with ``float()`` (correctly rounded) -> float32.

    Returns ``(offset, row, column)`` of the first token beyond float32, or None.
    """
    data = buf.tobytes()
    bom = 3 if data[:3] == b"\xef\xbb\xbf" else 0
    line_starts = np.r_[bom, np.flatnonzero(buf == 10) + 1]
    for r in np.flatnonzero(slow.any(axis=1)):  # each line is tokenised once
        start = int(line_starts[r])
        end = int(line_starts[r + 1]) if r + 1 < len(line_starts) else len(data)
        tokens = list(_TOKEN.finditer(data, start, end))
        cols = np.flatnonzero(slow[r])
        with np.errstate(over="ignore"):
            row = np.array([float(tokens[c].group()) for c in cols]).astype(np.float32)
        inf = np.flatnonzero(np.isinf(row))  # the kernel let no inf token through: overflow
        if len(inf):
            c = int(cols[inf[0]])
            return tokens[c].start(), int(r), c
        values[r, cols] = row
    return None


_TOKEN = re.compile(rb"[^ \t\r\n]+")


def warm() -> None:
    """Compile (or load from the cache) the kernel on a tiny input before workers fork."""
    parse_float_rows(b"1 2\n", 2)
