"""Float-to-text kernels for the synthetic data writers.

A synthetic NTU file holds ~30,000 numbers; formatting them with Python's ``%`` operator costs
more than everything else the generator does, so whole files are rendered here into one ``uint8``
buffer. Three number styles are needed, one per dataset:

* ``G`` style (NTU, C#'s ``float.ToString()``): ``precision`` significant digits, trailing zeros
  dropped, a bare integer when nothing is left after the point, scientific with an uppercase
  ``E`` and a two-digit signed exponent (``9.496876E-05``) when the exponent is below -4 or at
  least ``precision`` -- the same switch as C's ``%.7G``.
* ``F`` style (PKU-MMD): fixed ``decimals`` digits after the point (``%.6f``).
* ``R`` style (NW-UCLA, Python's ``repr`` of a value rounded to 6 digits): like ``G`` with a
  lowercase ``e``, but integral values keep a ``.0`` (``0.0``, ``3.0``).

Rounding (half to even, like C) goes through one float64 scaling by an exact power of ten, which
is within one unit of the last printed digit of the correctly rounded text: ample for synthetic
data, and deterministic.
Negative zero and values that round to zero are printed without a sign; NaN and magnitudes below
1e-15 (never produced by the generator) print as zero, because kernels never raise.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

__all__ = ["format_ntu", "format_rows_fixed", "format_ucla_skeletons"]

_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
#: "00" "01" ... "99" as bytes, for two digits per division.
_PAIRS = np.frombuffer("".join(f"{k:02d}" for k in range(100)).encode(), dtype=np.uint8).copy()
_IPOW10 = np.array([10**k for k in range(19)], dtype=np.int64)
_MINUS, _DOT, _SPACE, _CR, _LF = 45, 46, 32, 13, 10
_ZERO = 48
_STYLE_G, _STYLE_R = 0, 1
#: Magnitudes below this print as zero, keeping every power of ten used inside the table.
_TINY = 1e-15
#: Upper bound of the bytes one number takes: sign, 17 digits, point, exponent.
_MAX_NUMBER = 32


@jit
def _put_digits(buf, pos, value, width):
    """``value`` (>= 0) as exactly ``width`` digits, zero-padded; returns the new position."""
    v = np.uint64(value)  # unsigned: division without Python's floor-semantics fix-ups
    k = pos + width - 1
    while k > pos:  # two digits per division
        r = v % np.uint64(100)
        v //= np.uint64(100)
        buf[k] = _PAIRS[2 * r + 1]
        buf[k - 1] = _PAIRS[2 * r]
        k -= 2
    if k == pos:
        buf[k] = _ZERO + np.uint8(v % np.uint64(10))
    return pos + width


@jit
def _put_pointed(buf, pos, m, nd, whole):
    """The ``nd`` digits of ``m`` with a point after the first ``whole`` (``whole < nd``).

    Writes all digits, then shifts the fraction one place right: cheaper than dividing by a
    variable power of ten.
    """
    end = _put_digits(buf, pos, m, nd)
    for k in range(end, pos + whole, -1):
        buf[k] = buf[k - 1]
    buf[pos + whole] = _DOT
    return end + 1


@jit
def _put_int(buf, pos, value):
    """Decimal integer; returns the new write position."""
    if value < 0:
        buf[pos] = _MINUS
        pos += 1
        value = -value
    width = 1
    while width < 19 and value >= _IPOW10[width]:
        width += 1
    return _put_digits(buf, pos, value, width)


@jit
def _scaled(a, k):
    """``a * 10**k`` with an exact power of ten (|k| <= 22)."""
    if k >= 0:
        return a * _POW10[k]
    return a / _POW10[-k]


@jit
def _put_general(buf, pos, value, precision, style):
    """``value`` with ``precision`` significant digits in the G or R style (see module doc)."""
    a = abs(value)
    if not a >= _TINY:  # zero, NaN and values no sensor reports
        buf[pos] = _ZERO
        pos += 1
        if style == _STYLE_R:
            buf[pos] = _DOT
            buf[pos + 1] = _ZERO
            pos += 2
        return pos
    # Decimal exponent by comparison: cheaper than log10 for the small magnitudes written here.
    e = np.int64(0)
    if a >= 1.0:
        while e < 22 and a >= _POW10[e + 1]:
            e += 1
    else:
        e = -1
        while e > -22 and a * _POW10[-e] < 1.0:
            e -= 1
    m = np.int64(np.rint(_scaled(a, precision - 1 - e)))
    if m >= _IPOW10[precision]:
        e += 1
        m = np.int64(np.rint(_scaled(a, precision - 1 - e)))
    elif m < _IPOW10[precision - 1]:
        e -= 1
        m = np.int64(np.rint(_scaled(a, precision - 1 - e)))
    if m >= _IPOW10[precision]:  # rounding carried into a new digit: 9.9999999 -> 10
        e += 1
        m //= 10
    if value < 0:
        buf[pos] = _MINUS
        pos += 1
    if -4 <= e < precision:
        if e < 0:
            buf[pos] = _ZERO
            buf[pos + 1] = _DOT
            pos += 2
            for _ in range(-e - 1):
                buf[pos] = _ZERO
                pos += 1
            end = _put_digits(buf, pos, m, precision)
            while end > pos + 1 and buf[end - 1] == _ZERO:
                end -= 1
            return end
        # digits one place right of where they go, then the integer part moves left over the gap
        end = _put_digits(buf, pos + 1, m, precision)
        for k in range(e + 1):
            buf[pos + k] = buf[pos + 1 + k]
        point = pos + e + 1
        while end > point + 1 and buf[end - 1] == _ZERO:
            end -= 1
        if end == point + 1:  # nothing after the point
            if style == _STYLE_R:
                buf[point] = _DOT
                buf[point + 1] = _ZERO
                return point + 2
            return point
        buf[point] = _DOT
        return end
    nd = precision
    while nd > 1 and np.uint64(m) % np.uint64(10) == 0:
        m = np.int64(np.uint64(m) // np.uint64(10))
        nd -= 1
    pos = _put_pointed(buf, pos, m, nd, 1) if nd > 1 else _put_digits(buf, pos, m, 1)
    buf[pos] = 69 if style == _STYLE_G else 101  # "E" / "e"
    buf[pos + 1] = 43 if e >= 0 else _MINUS  # "+" / "-"
    ae = abs(e)
    return _put_digits(buf, pos + 2, ae, 2 if ae < 100 else 3)


@jit
def _put_fixed(buf, pos, value, decimals):
    """``value`` with exactly ``decimals`` digits after the point (``%.{decimals}f``)."""
    m = np.int64(np.rint(_scaled(abs(value), decimals))) if value == value else 0
    if value < 0 and m > 0:
        buf[pos] = _MINUS
        pos += 1
    pos = _put_int(buf, pos, m // _IPOW10[decimals])
    if decimals > 0:
        buf[pos] = _DOT
        pos = _put_digits(buf, pos + 1, m % _IPOW10[decimals], decimals)
    return pos


@jit
def _put_newline(buf, pos, crlf):
    if crlf:
        buf[pos] = _CR
        pos += 1
    buf[pos] = _LF
    return pos + 1


@jit
def format_ntu(bodies_per_frame, body_ids, body_ints, lean, joint_values, joint_state, crlf):
    """Render a whole NTU ``.skeleton`` file.

    Args:
        bodies_per_frame: ``(T,)`` int64, bodies listed in each frame.
        body_ids: ``(N,)`` int64, id of every body entry (N = sum of bodies_per_frame), in
            file order.
        body_ints: ``(N, 7)`` int64: clipedEdges, handLeftConfidence, handLeftState,
            handRightConfidence, handRightState, isResticted, trackingState.
        lean: ``(N, 2)`` float64 leanX, leanY.
        joint_values: ``(N, J, 11)`` float64: x y z depthX depthY colorX colorY W X Y Z.
        joint_state: ``(N, J)`` int64 joint tracking states.
        crlf: end lines with CR LF instead of LF.

    Returns:
        ``uint8`` array with the file's bytes.
    """
    n, nj, nv = joint_values.shape
    size = (
        32
        + 8 * bodies_per_frame.shape[0]
        + n * (16 + 12 * _MAX_NUMBER + nj * (nv + 2) * _MAX_NUMBER)
    )
    buf = np.empty(size, np.uint8)
    pos = _put_int(buf, 0, bodies_per_frame.shape[0])
    pos = _put_newline(buf, pos, crlf)
    b = 0
    for t in range(bodies_per_frame.shape[0]):
        pos = _put_int(buf, pos, bodies_per_frame[t])
        pos = _put_newline(buf, pos, crlf)
        for _ in range(bodies_per_frame[t]):
            pos = _put_int(buf, pos, body_ids[b])
            for k in range(6):
                buf[pos] = _SPACE
                pos = _put_int(buf, pos + 1, body_ints[b, k])
            for k in range(2):
                buf[pos] = _SPACE
                pos = _put_general(buf, pos + 1, lean[b, k], 7, _STYLE_G)
            buf[pos] = _SPACE
            pos = _put_int(buf, pos + 1, body_ints[b, 6])
            pos = _put_newline(buf, pos, crlf)
            pos = _put_int(buf, pos, nj)
            pos = _put_newline(buf, pos, crlf)
            for j in range(nj):
                for k in range(nv):
                    pos = _put_general(buf, pos, joint_values[b, j, k], 7, _STYLE_G)
                    buf[pos] = _SPACE
                    pos += 1
                pos = _put_int(buf, pos, joint_state[b, j])
                pos = _put_newline(buf, pos, crlf)
            b += 1
    return buf[:pos].copy()


@jit
def format_rows_fixed(values, decimals, crlf):
    """Render a ``(T, K)`` float64 table, one space-separated row per line, ``%.{decimals}f``."""
    t_n, k_n = values.shape
    buf = np.empty(t_n * (k_n * (_MAX_NUMBER + decimals) + 2) + 1, np.uint8)
    pos = 0
    for t in range(t_n):
        for k in range(k_n):
            if k:
                buf[pos] = _SPACE
                pos += 1
            pos = _put_fixed(buf, pos, values[t, k], decimals)
        pos = _put_newline(buf, pos, crlf)
    return buf[:pos].copy()


@jit
def format_ucla_skeletons(values):
    """Render ``(T, V, C)`` float64 as the JSON list ``[[[x, y, z], ...], ...]`` (R style)."""
    t_n, v_n, c_n = values.shape
    buf = np.empty(2 + t_n * (4 + v_n * (4 + c_n * (_MAX_NUMBER + 2))), np.uint8)
    buf[0] = 91  # "["
    pos = 1
    for t in range(t_n):
        if t:
            buf[pos] = 44  # ","
            buf[pos + 1] = _SPACE
            pos += 2
        buf[pos] = 91
        pos += 1
        for v in range(v_n):
            if v:
                buf[pos] = 44
                buf[pos + 1] = _SPACE
                pos += 2
            buf[pos] = 91
            pos += 1
            for c in range(c_n):
                if c:
                    buf[pos] = 44
                    buf[pos + 1] = _SPACE
                    pos += 2
                pos = _put_general(buf, pos, values[t, v, c], 6, _STYLE_R)
            buf[pos] = 93  # "]"
            pos += 1
        buf[pos] = 93
        pos += 1
    buf[pos] = 93
    return buf[: pos + 1].copy()
