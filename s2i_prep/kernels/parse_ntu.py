"""Byte-level parser of the NTU RGB+D ``.skeleton`` grammar (see docs/READERS.md).

One pass over the file's bytes, no Python objects. The parser is a single flat loop over tokens
with a small line-state machine (frame count, body count, body info, joint count, joint line).
The number scanner is written inline rather than shared with ``parse_text._scan_float``: measured
on synthetic NTU files, calling that scanner per token halves this kernel's throughput (214 vs
394 MB/s CPU time), and this is the hottest loop of a conversion. Numbers are read exactly:
integers (the 64-bit body id included) as integers, and decimal floats correctly rounded to
float64 and then cast to float32, the same double rounding as numpy's
``np.array(str_tokens, dtype=np.float32)`` that the reference pipelines use. A mantissa beyond
2**53 or a decimal exponent beyond 22 cannot be done with one exact operation, so such rare tokens
are handed back to Python (``fixups``) instead of being guessed; Python also checks that they fit
float32 (the fast path cannot overflow: 2**53 * 10**22 < 3.4e38).

Validity does not depend on ``full``: every token of every field is scanned with the same grammar
and range checks whether it is converted or not (only the conversion and the store are skipped),
so a file that ``dump`` rejects is rejected by ``convert`` too. ``nan``/``inf`` tokens are
recognised and rejected (NONFINITE): no dataset field may hold them.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

# Status codes returned by the kernel (the reader turns them into ParseError/TruncatedError).
OK = 0
EOF_EARLY = 1      # the file ended where more was promised
BAD_INT = 2        # expected an integer token
BAD_FLOAT = 3      # expected a decimal number token
FIELD_COUNT = 4    # a line has the wrong number of fields
JOINT_COUNT = 5    # jointCount differs from the spec's joint count
TRAILING = 6       # bytes after the last frame
NEGATIVE = 7       # a negative count
BAD_ID = 8         # body id is not an unsigned 64-bit integer
CAPACITY = 9       # more body records than the caller's capacity (cannot happen on real input)
DUPLICATE_BODY = 10  # one body id twice in one frame
MORE_FIXUPS = 11   # more slow-path tokens than ``fix`` holds: call again with a larger one
NONFINITE = 12     # a nan/inf token in a float field

# Line kinds: what the parser was reading (also the context of an error).
LINE_FRAME_COUNT = 0
LINE_BODY_COUNT = 1
LINE_BODY_INFO = 2
LINE_JOINT_COUNT = 3
LINE_JOINT = 4
LINE_DONE = 5

#: Fields per line kind.
LINE_FIELDS = (1, 1, 10, 1, 12, 0)
#: Float fields of a joint line, in file order (the 12th field, trackingState, is an integer).
JOINT_FLOAT_NAMES = ("x", "y", "z", "depth_x", "depth_y", "color_x", "color_y",
                     "orientation_w", "orientation_x", "orientation_y", "orientation_z")
#: Integer fields of a body-info line after the id (fields 2-7 and 10; leanX/leanY are floats).
BODY_INT_NAMES = ("clipped_edges", "hand_left_confidence", "hand_left_state",
                  "hand_right_confidence", "hand_right_state", "is_restricted", "body_tracking_state")

_POW10 = np.array([10.0 ** k for k in range(23)])
_TWO53 = 9007199254740992
_U64_TENTH = np.uint64(1844674407370955161)  # (2**64 - 1) // 10: the largest 20-digit uint64 prefix


@jit
def parse_ntu(buf, num_joints, pow10, full, frame_of, body_of, ids, bints, blean, jf, js,
              fix, info):
    """Parse a whole ``.skeleton`` file into caller-owned arrays (one row per body-frame record).

    Args:
        buf: the file's bytes, uint8.
        num_joints: joints per body the spec expects (25).
        pow10: ``_POW10``.
        full: convert every field. When False only x, y, z of the joint lines (and every body-info
            field) are converted and stored; the other joint fields are scanned and checked exactly
            as with ``full`` but neither converted nor stored (conversion needs only x, y, z).
        frame_of: (R,) int32 out, the frame of every record; R bounds the number of records.
        body_of: (R,) int32 out, the body of every record, numbered by first appearance.
        ids: (R,) uint64 out, the distinct body ids in order of first appearance.
        bints: (R, 7) int32 out, the integer body-info fields after the id (BODY_INT_NAMES).
        blean: (R, 2) float32 out, leanX and leanY.
        jf: (R, V, 11) float32 out, the float joint fields (JOINT_FLOAT_NAMES).
        js: (R, V) int8 out, joint tracking states.
        fix: (K, 4) int64 out, tokens only Python rounds exactly: (record, joint or -1 for lean,
            field, token start); without ``full`` this includes fields that are only checked.
        info: (9,) int64 out: frames, records, bodies, fixups; on error also the line kind, the
            field being read, a count or value the message needs, the frame and the body.

    Returns ``(status, byte offset)`` of the error, or ``(OK, len(buf))``.
    """
    n = buf.shape[0]
    V = num_joints
    R = frame_of.shape[0]
    last_frame = np.full(R, -1, np.int64)   # per distinct body: the frame it was last listed in
    status = OK
    epos = 0
    efound = 0
    nfix = 0
    nrec = 0
    nbodies = 0
    kind = LINE_FRAME_COUNT
    field = 0           # fields read on the current line
    nframes = 0
    f = 0               # current frame
    nb = 0              # bodies in the current frame
    b = 0               # current body within the frame
    j = 0               # current joint
    value = 0           # the single integer of a count line
    line_start = 0
    pos = 0
    if n >= 3 and buf[0] == 0xEF and buf[1] == 0xBB and buf[2] == 0xBF:
        pos = 3
        line_start = 3
    while True:
        # Blanks (space, tab) separate fields; a CR is a blank only before LF (CRLF reads like
        # LF) or at the end of the file. A stray CR starts a token and fails there, and the
        # reader names it as a line-ending fault (it may be a line end of a CR-only file).
        while pos < n and (buf[pos] == 32 or buf[pos] == 9
                           or (buf[pos] == 13 and (pos + 1 == n or buf[pos + 1] == 10))):
            pos += 1
        if pos >= n or buf[pos] == 10:
            # ---- end of a line: check its field count, then move the state machine on ----
            if field == 0 and (kind == LINE_DONE or pos >= n):
                if pos >= n:
                    break
                pos += 1
                line_start = pos
                continue
            if field < LINE_FIELDS[kind]:
                status, epos, efound = FIELD_COUNT, pos, field
                break
            if kind == LINE_FRAME_COUNT:
                nframes = value
                f = 0
                kind = LINE_BODY_COUNT if nframes > 0 else LINE_DONE
            elif kind == LINE_BODY_COUNT:
                nb = value
                b = 0
                if nb == 0:
                    f += 1
                    kind = LINE_BODY_COUNT if f < nframes else LINE_DONE
                else:
                    kind = LINE_BODY_INFO
            elif kind == LINE_BODY_INFO:
                kind = LINE_JOINT_COUNT
            elif kind == LINE_JOINT_COUNT:
                if value != V:
                    status, epos, efound = JOINT_COUNT, line_start, value
                    break
                j = 0
                kind = LINE_JOINT
            else:  # LINE_JOINT
                j += 1
                if j == V:
                    frame_of[nrec] = f
                    nrec += 1
                    b += 1
                    if b < nb:
                        kind = LINE_BODY_INFO
                    else:
                        f += 1
                        kind = LINE_BODY_COUNT if f < nframes else LINE_DONE
            field = 0
            if pos >= n:
                break
            pos += 1
            line_start = pos
            continue

        # ---- a token ----
        if kind == LINE_DONE:
            status, epos = TRAILING, pos
            break
        if field >= LINE_FIELDS[kind]:
            # Too many fields: count them all for the message.
            efound = field
            while pos < n and buf[pos] != 10:
                while pos < n and (buf[pos] == 32 or buf[pos] == 9 or buf[pos] == 13):
                    pos += 1
                if pos < n and buf[pos] != 10:
                    efound += 1
                    while pos < n and buf[pos] != 32 and buf[pos] != 9 and buf[pos] != 13 \
                            and buf[pos] != 10:
                        pos += 1
            status, epos = FIELD_COUNT, line_start
            break
        if kind == LINE_BODY_INFO and field == 0 and nrec >= R:
            status, epos = CAPACITY, pos
            break
        tok = pos
        if not full and kind == LINE_JOINT and 3 <= field < 11:
            # A float field convert does not need: the grammar without the arithmetic. Only
            # tokens that are surely valid and inside float32 (|v| < 10**(integer digits +
            # exponent) <= 1e38) are accepted here; anything else falls through to the full scan
            # below, so validity is exactly that of ``full`` (tested on mutated files).
            if buf[pos] == 45 or buf[pos] == 43:
                pos += 1
            start = pos
            while pos < n and 48 <= buf[pos] <= 57:
                pos += 1
            idig = pos - start
            fdig = 0
            if pos < n and buf[pos] == 46:
                pos += 1
                fstart = pos
                while pos < n and 48 <= buf[pos] <= 57:
                    pos += 1
                fdig = pos - fstart
            e = 0
            eok = idig + fdig > 0
            if eok and pos < n and (buf[pos] == 101 or buf[pos] == 69):
                pos += 1
                eneg = False
                if pos < n and (buf[pos] == 45 or buf[pos] == 43):
                    eneg = buf[pos] == 45
                    pos += 1
                estart = pos
                while pos < n and 48 <= buf[pos] <= 57 and pos - estart < 4:
                    e = e * 10 + (np.int64(buf[pos]) - 48)
                    pos += 1
                eok = pos > estart
                if eneg:
                    e = -e
            if eok and idig + e <= 38 and (pos >= n or buf[pos] == 32 or buf[pos] == 9
                                           or buf[pos] == 13 or buf[pos] == 10):
                field += 1
                continue
            pos = tok
        neg = False
        c = buf[pos]
        if c == 45 or c == 43:
            neg = c == 45
            pos += 1
        # Every digit goes into an int64 mantissa; more than 18 digits (leading zeros included)
        # could overflow it, and such rare tokens take a slow path instead of a branch per digit.
        mant = 0
        start = pos
        while pos < n:
            d = np.int64(buf[pos]) - 48
            if d < 0 or d > 9:
                break
            mant = mant * 10 + d
            pos += 1
        digits = pos - start
        exp10 = 0
        integral = True     # integer syntax: no point, no exponent
        if pos < n and buf[pos] == 46:
            integral = False
            pos += 1
            start = pos
            while pos < n:
                d = np.int64(buf[pos]) - 48
                if d < 0 or d > 9:
                    break
                mant = mant * 10 + d
                pos += 1
            exp10 = start - pos
            digits += pos - start
        seen = digits > 0
        lost = digits > 18  # mant is not the token's mantissa (slow path)
        is_special = False  # nan / inf / infinity
        ok = seen
        if seen and pos < n and (buf[pos] == 101 or buf[pos] == 69):
            integral = False
            pos += 1
            eneg = False
            if pos < n and (buf[pos] == 45 or buf[pos] == 43):
                eneg = buf[pos] == 45
                pos += 1
            estart = pos
            e = 0
            while pos < n:
                d = np.int64(buf[pos]) - 48
                if d < 0 or d > 9:
                    break
                if e < 100000:
                    e = e * 10 + d
                pos += 1
            ok = pos > estart
            exp10 += -e if eneg else e
        if not seen and pos < n and (np.int64(buf[pos]) | 32) in (105, 110):
            # nan / inf / infinity, any case
            word = 0
            k0 = pos
            while pos < n and pos - k0 < 8 and 97 <= (np.int64(buf[pos]) | 32) <= 122:
                word = word * 256 + (np.int64(buf[pos]) | 32)
                pos += 1
            integral = False
            # recognised only to be named in the error (NONFINITE); never stored
            is_special = word == 0x6E616E or word == 0x696E66 or word == 0x696E66696E697479
            ok = is_special
        if pos < n and buf[pos] != 32 and buf[pos] != 9 and buf[pos] != 13 and buf[pos] != 10:
            ok = False
        # ---- store the token where the grammar puts it ----
        lean = kind == LINE_BODY_INFO and (field == 7 or field == 8)
        if (kind == LINE_JOINT and field < 11) or lean:
            if not ok:
                status, epos = BAD_FLOAT, tok
                break
            if is_special:
                status, epos = NONFINITE, tok
                break
            v = 0.0
            if lost or mant > _TWO53 or exp10 > 22 or exp10 < -22:
                if nfix == fix.shape[0]:
                    status, epos = MORE_FIXUPS, tok
                    break
                fix[nfix, 0] = nrec
                fix[nfix, 1] = -1 if lean else j
                fix[nfix, 2] = field - 7 if lean else field
                fix[nfix, 3] = tok
                nfix += 1
            elif not full and not lean and field >= 3:
                field += 1   # checked, not needed
                continue
            elif exp10 >= 0:
                # exact: mant <= 2**53 and 10**exp10 <= 10**22 are both exact doubles
                v = float(mant) * pow10[exp10]
            else:
                v = float(mant) / pow10[-exp10]
            if neg:
                v = -v
            if lean:
                blean[nrec, field - 7] = v
            elif full or field < 3:
                jf[nrec, j, field] = v
        else:
            # An integer field.
            is_id = kind == LINE_BODY_INFO and field == 0
            uid = np.uint64(0)
            if is_id and ok and integral and not neg:
                # Body ids are unsigned 64-bit: re-read as uint64 with an overflow check.
                for q in range(start, start + digits):
                    d64 = np.uint64(np.int64(buf[q]) - 48)
                    if uid > _U64_TENTH or (uid == _U64_TENTH and d64 > np.uint64(5)):
                        ok = False
                    uid = uid * np.uint64(10) + d64
                lost = False
            if not ok or not integral or lost or (is_id and neg):
                status, epos = (BAD_ID if is_id else BAD_INT), tok
                break
            if is_id:
                k = 0
                while k < nbodies and ids[k] != uid:
                    k += 1
                if k == nbodies:
                    ids[k] = uid
                    nbodies += 1
                elif last_frame[k] == f:
                    status, epos = DUPLICATE_BODY, tok
                    break
                last_frame[k] = f
                body_of[nrec] = k
            elif mant > 2147483647:
                status, epos = BAD_INT, tok
                break
            else:
                iv = mant
                if neg:
                    iv = -iv
                if kind == LINE_JOINT:
                    if iv < -128 or iv > 127:
                        status, epos = BAD_INT, tok
                        break
                    if full:
                        js[nrec, j] = iv
                elif kind == LINE_BODY_INFO:
                    bints[nrec, field - 1 if field < 7 else 6] = iv
                elif iv < 0:
                    status, epos, efound = NEGATIVE, tok, iv
                    break
                else:
                    value = iv
        field += 1
    if status == OK and kind != LINE_DONE:
        status, epos, efound = EOF_EARLY, n, field
    elif status == OK:
        epos = n
    info[0] = nframes
    info[1] = nrec
    info[2] = nbodies
    info[3] = nfix
    info[4] = kind
    info[5] = field
    info[6] = efound
    info[7] = f
    info[8] = b
    return status, epos


class ParsedFile:
    """The kernel's outputs for one file, allocated here so the kernel never allocates.

    Capacity for records is ``nbytes // (line_bytes * V) + 1``: a body record takes at least V
    joint lines, and a joint line at least 24 bytes (12 one-character fields). Real lines are
    about 90 bytes, so a first try with 48 wastes less memory; a file that needs more gets a
    CAPACITY status and is parsed again with the safe bound. Without ``full`` only x, y, z are
    stored, so the joint arrays hold 3 fields instead of 11.
    """

    def __init__(self, nbytes: int, num_joints: int, full: bool, line_bytes: int,
                 fixups: int) -> None:
        R = nbytes // (line_bytes * num_joints) + 1
        self.frame_of = np.empty(R, np.int32)
        self.body_of = np.empty(R, np.int32)
        self.ids = np.empty(R, np.uint64)
        self.bints = np.empty((R, 7), np.int32)
        self.blean = np.empty((R, 2), np.float32)
        self.jf = np.empty((R, num_joints, 11 if full else 3), np.float32)
        self.js = np.empty((R if full else 0, num_joints), np.int8)
        self.fix = np.empty((max(16, fixups), 4), np.int64)
        self.info = np.zeros(9, np.int64)


def parse(buf: np.ndarray, num_joints: int, full: bool) -> tuple[int, int, ParsedFile]:
    """Run :func:`parse_ntu` on ``buf``: ``(status, byte offset, outputs)``."""
    n = buf.shape[0]
    line_bytes, fixups = 48, 2 * (n // (48 * num_joints) + 1)
    while True:
        out = ParsedFile(n, num_joints, full, line_bytes, fixups)
        status, pos = parse_ntu(buf, num_joints, _POW10, full, out.frame_of,
                                out.body_of, out.ids, out.bints, out.blean, out.jf, out.js,
                                out.fix, out.info)
        if status == CAPACITY and line_bytes > 24:
            line_bytes = 24          # unusually short lines: the bound that always holds
        elif status == MORE_FIXUPS:
            fixups = n // 2 + 16     # many numbers beyond the exact fast path: room for all
        else:
            return status, pos, out


def warm() -> None:
    """Compile (or load from cache) the parser on a tiny file before workers fork."""
    for full in (True, False):
        parse(np.frombuffer(b"1\n0\n", np.uint8), 25, full)
