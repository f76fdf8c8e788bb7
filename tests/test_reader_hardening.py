"""Hostile inputs to the readers (issue 9): exact values or clean located errors, never a wrong
value, a raw exception, a hang or unbounded memory. The seeded mutation sweep over the three
formats lives in ``test_reader_mutations.py``."""

from __future__ import annotations

import os
import re
import threading

import numpy as np
import pytest

from s2i_prep.errors import ParseError, ReadError
from s2i_prep.readers import get_reader
from s2i_prep.readers.ntu import parse_ntu_bytes
from s2i_prep.specs import load_spec
from tests.ntu_files import BASE_ID, person, skeleton_text

NTU = load_spec("ntu25")


def _ntu_with(token: str, field: int, line: int = 4) -> tuple[bytes, int]:
    """A one-frame NTU file with ``token`` as field ``field`` of its first joint line (0-based
    line index ``line``), and the 1-based column of that token."""
    text = skeleton_text([[(BASE_ID, person(np.random.default_rng(2)))]]).decode().split("\n")
    tokens = text[line].split(" ")
    column = sum(len(t) + 1 for t in tokens[:field]) + 1
    tokens[field] = token
    text[line] = " ".join(tokens)
    return "\n".join(text).encode(), column


# ------------------------------------------------------------------ 1: tokens of any length

@pytest.mark.parametrize("fields", ["all", "xyz"])
@pytest.mark.parametrize("token", [
    "1.00000000000000000000000e5", "0.000000000000000000000000000001", "000000000000000000000007.20",
    "1.000000000000000000000e+10", "-0." + "0" * 300 + "17", "3." + "1415926535" * 40, "7" * 38,
    "1" + "0" * 50 + "e-45", ".5e-50", "+12345678901234567890123e-20", "0e999999999999",
    "1e-999999999", "-1e-46", "3.4028235677973362e38",
])
def test_long_and_extreme_tokens_read_exactly_like_python_float(token, fields):
    for field in (0, 2):
        data, _ = _ntu_with(token, field)
        raw = parse_ntu_bytes(data, "t.skeleton", NTU, fields)
        got = raw.joints[0, 0, 0, field]
        assert got.tobytes() == np.float32(float(token)).tobytes(), token
    # the same token in a field xyz only checks, and in leanX: accepted, exact where kept
    data, _ = _ntu_with(token, 5)
    raw = parse_ntu_bytes(data, "t.skeleton", NTU, fields)
    if fields == "all":
        assert raw.joint_fields["color"][0, 0, 0, 0].tobytes() == np.float32(float(token)).tobytes()
    data, _ = _ntu_with(token, 7, line=2)
    raw = parse_ntu_bytes(data, "t.skeleton", NTU, fields)
    if fields == "all":
        assert raw.body_fields["lean"][0, 0, 0].tobytes() == np.float32(float(token)).tobytes()


# ------------------------------------------------------------------ 2: out of float32 range

@pytest.mark.parametrize("fields", ["all", "xyz"])
@pytest.mark.parametrize("token", ["1e39", "-3.5e38", "1e999999999", "9" * 39, "4" + "0" * 38 + ".5",
                                   "0.0000000000000000000000000000000000001e76"])
@pytest.mark.parametrize("field,line", [(0, 4), (2, 4), (3, 4), (10, 4), (8, 2)])
def test_values_beyond_float32_are_located_errors(token, field, line, fields):
    data, column = _ntu_with(token, field, line)
    with pytest.raises(ParseError, match=rf"^t\.skeleton:{line + 1}:{column}: value out of range"):
        parse_ntu_bytes(data, "t.skeleton", NTU, fields)


def test_largest_float32_rounding_boundary():
    # just below the halfway point between FLT_MAX and 2**128 rounds to FLT_MAX; the halfway
    # point itself rounds (to even) to 2**128, i.e. inf
    data, _ = _ntu_with("340282356779733623858607532500980858880", 0)
    assert parse_ntu_bytes(data, "t.skeleton", NTU).joints[0, 0, 0, 0] == np.finfo(np.float32).max
    data, _ = _ntu_with("340282356779733661637539395458142568448", 0)
    with pytest.raises(ParseError, match="value out of range"):
        parse_ntu_bytes(data, "t.skeleton", NTU)


# ------------------------------------------------------------------ 3: validity never depends on fields

@pytest.mark.parametrize("token,field,message", [
    ("tiny", 3, "expected a number for depth_x, found 'tiny'"),
    ("fanny", 8, "expected a number for orientation_x, found 'fanny'"),
    ("128", 11, "expected an integer for trackingState, found '128'"),
    ("-129", 11, "expected an integer for trackingState"),
    ("1e5", 11, "expected an integer for trackingState"),
    ("nan", 7, "orientation_w is 'nan': NaN and infinity are not accepted"),
    ("1e40", 6, "value out of range: color_y '1e40'"),
    ("1.2.3", 4, "expected a number for depth_y"),
    ("+-1", 5, "expected a number for color_x"),
    ("1e", 9, "expected a number for orientation_y"),
    (".", 10, "expected a number for orientation_z"),
    ("1e+99999", 3, "value out of range"),
])
def test_fields_xyz_rejects_exactly_what_fields_all_rejects(token, field, message):
    data, column = _ntu_with(token, field)
    for fields in ("all", "xyz"):
        with pytest.raises(ParseError, match=rf"^t\.skeleton:5:{column}: {re.escape(message)}"):
            parse_ntu_bytes(data, "t.skeleton", NTU, fields)
