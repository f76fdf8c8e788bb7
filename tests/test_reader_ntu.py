"""NTU .skeleton reader: real-file conformance, grammar edge cases, exact numbers, actionable errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2i_prep.errors import ParseError, ReadError, TruncatedError
from s2i_prep.readers import get_reader
from s2i_prep.readers.ntu import parse_ntu_bytes
from s2i_prep.specs import load_spec
from tests.ntu_files import BASE_ID, compose, person, skeleton_text, track
from tests.reference.ntu_ref import read_plain

SPEC = load_spec("ntu25")
READER = get_reader("ntu_skeleton")


def parse(data: bytes, name: str = "S001C001P001R001A001.skeleton"):
    return parse_ntu_bytes(data, name, SPEC)


# ---------------------------------------------------------------- real files

@pytest.mark.realdata
def test_real_files_equal_golden_ctrgcn_parse_bit_for_bit(realdata):
    golden = np.load(realdata / "ntu_golden_ctrgcn" / "ctrgcn_raw_bodies.npz")
    index = json.loads((realdata / "ntu_golden_ctrgcn" / "index.json").read_text())
    assert index
    for name, info in index.items():
        raw = READER.read(realdata / "ntu" / f"{name}.skeleton", SPEC)[0]
        assert list(raw.body_ids) == info["bodies"]
        valid = raw.present.any(axis=0)
        vindex = np.cumsum(valid) - 1
        assert int(valid.sum()) == info["num_frames"]
        for b, body_id in enumerate(info["bodies"]):
            frames = np.flatnonzero(raw.present[b])
            ours = raw.joints[b, frames].reshape(-1, 3)
            theirs = golden[f"{name}/{body_id}/joints"]
            assert ours.dtype == theirs.dtype == np.float32
            assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)), (name, body_id)
            assert np.array_equal(vindex[frames], golden[f"{name}/{body_id}/interval"])


@pytest.mark.realdata
def test_every_real_file_equals_plain_python_parse(realdata):
    files = sorted((realdata / "ntu").glob("*.skeleton"))
    assert len(files) >= 9
    for path in files:
        raw = READER.read(path, SPEC)[0]
        ref = read_plain(str(path))
        assert raw.num_frames == ref["num_frames"]
        assert list(raw.body_ids) == list(ref["bodies"])
        for b, body in enumerate(ref["bodies"].values()):
            assert np.array_equal(np.flatnonzero(raw.present[b]), body["frames"])
            assert np.array_equal(raw.joints[b, body["frames"]], body["joints"])


@pytest.mark.realdata
def test_lf_and_crlf_copies_read_identically(realdata):
    for name in ("S001C001P001R001A006", "S001C001P001R001A050"):
        data = (realdata / "ntu" / f"{name}.skeleton").read_bytes()
        lf = data.replace(b"\r\n", b"\n")
        crlf = lf.replace(b"\n", b"\r\n")
        a, b = parse(lf), parse(crlf)
        assert np.array_equal(a.joints, b.joints, equal_nan=True)
        for key in a.joint_fields:
            assert np.array_equal(a.joint_fields[key], b.joint_fields[key], equal_nan=True)
        for key in a.body_fields:
            assert np.array_equal(a.body_fields[key], b.body_fields[key], equal_nan=True)
    assert b"\r\n" in (realdata / "ntu" / "S001C001P001R001A006.skeleton").read_bytes()


@pytest.mark.realdata
def test_all_fields_kept(realdata):
    raw = READER.read(realdata / "ntu" / "S001C001P001R001A001.skeleton", SPEC)[0]
    # first joint line of the file: 0.2181153 0.1725972 3.785547 277.419 191.8218 1036.233 519.1677
    #                               -0.2059419 0.05349901 0.9692109 -0.1239193 2
    assert raw.joint_fields["depth"][0, 0, 0].tolist() == np.float32([277.419, 191.8218]).tolist()
    assert raw.joint_fields["color"][0, 0, 0].tolist() == np.float32([1036.233, 519.1677]).tolist()
    assert raw.joint_fields["orientation"][0, 0, 0].tolist() == \
        np.float32([-0.2059419, 0.05349901, 0.9692109, -0.1239193]).tolist()
    assert raw.joint_fields["tracking_state"][0, 0, 0] == 2
    # leaf joints carry orientation 0 0 0 0 (Head = 3)
    assert not raw.joint_fields["orientation"][0, :, 3].any()
    # body line: 72057594037931101 0 1 1 1 1 0 0.02764709 0.05745083 2
    assert [int(raw.body_fields[k][0, 0]) for k in
            ("clipped_edges", "hand_left_confidence", "hand_left_state", "hand_right_confidence",
             "hand_right_state", "is_restricted", "body_tracking_state")] == [0, 1, 1, 1, 1, 0, 2]
    assert raw.body_fields["lean"][0, 0].tolist() == np.float32([0.02764709, 0.05745083]).tolist()


# ---------------------------------------------------------------- edge cases

def test_colliding_64bit_ids_stay_distinct():
    rng = np.random.default_rng(0)
    a, b = 72057594037944738, 72057594037944734          # equal after float()
    assert float(a) == float(b)
    data = skeleton_text(compose(3, track(rng, 3, body_id=a), track(rng, 3, body_id=b)))
    raw = parse(data)
    assert raw.body_ids == (str(a), str(b))


def test_largest_uint64_id_is_exact_and_larger_is_an_error():
    rng = np.random.default_rng(0)
    big = 2**64 - 1
    raw = parse(skeleton_text(compose(1, track(rng, 1, body_id=big))))
    assert raw.body_ids == (str(big),)
    with pytest.raises(ParseError, match="bodyID"):
        parse(skeleton_text(compose(1, track(rng, 1, body_id=2**64))))


def test_empty_frames_leading_run_and_middle():
    rng = np.random.default_rng(1)
    frames = compose(40, track(rng, 20, start=15))
    frames[25] = []
    raw = parse(skeleton_text(frames))
    assert raw.num_frames == 40
    assert raw.joints.shape == (1, 40, 25, 3)
    assert np.flatnonzero(raw.present[0]).tolist() == list(range(15, 25)) + list(range(26, 35))


def test_every_frame_empty_reads_as_zero_bodies():
    raw = parse(b"71\n" + b"0\n" * 71)
    assert raw.joints.shape == (0, 71, 25, 3)
    assert raw.body_ids == ()


def test_zero_frames():
    raw = parse(b"0\n")
    assert raw.joints.shape == (0, 0, 25, 3)


@pytest.mark.parametrize("token,expected", [
    ("9.496876E-05", 9.496876e-05), ("9.496876e-05", 9.496876e-05), ("243", 243.0),
    ("-0", -0.0), ("+1.5", 1.5), (".5", 0.5), ("5.", 5.0), ("1E+02", 100.0),
    ("0.1234567890123456789012", 0.1234567890123456789012), ("1e30", 1e30), ("-2.5e-30", -2.5e-30),
    ("123456789012345678901234", 123456789012345678901234.0),
])
def test_number_forms_are_exact(token, expected):
    joints = person(np.random.default_rng(2))
    text = skeleton_text([[(BASE_ID, joints)]]).decode().split("\n")
    fields = text[4].split(" ")
    fields[0] = token
    text[4] = " ".join(fields)
    raw = parse("\n".join(text).encode())
    got = raw.joints[0, 0, 0, 0]
    assert got.tobytes() == np.float32(expected).tobytes()


@pytest.mark.parametrize("fields", ["all", "xyz"])
@pytest.mark.parametrize("token,field", [("nan", 1), ("-nan", 1), ("NaN", 4), ("inf", 1),
                                         ("-inf", 8), ("-Infinity", 1), ("+INF", 10)])
def test_nan_and_inf_tokens_are_located_errors_in_both_paths(token, field, fields):
    joints = person(np.random.default_rng(2))
    text = skeleton_text([[(BASE_ID, joints)]]).decode().split("\n")
    tokens = text[4].split(" ")
    column = sum(len(t) + 1 for t in tokens[:field]) + 1
    tokens[field] = token
    text[4] = " ".join(tokens)
    with pytest.raises(ParseError, match=rf"^x\.skeleton:5:{column}: .* is '{re.escape(token)}': "
                                         "NaN and infinity are not accepted"):
        parse_ntu_bytes("\n".join(text).encode(), "x.skeleton", SPEC, fields)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=75, max_size=75),
       st.sampled_from(["%.7g", "%.6f", "%.9e", "%.3E", "%r", "%.17g"]),
       st.booleans())
def test_random_values_parse_like_python_float(values, fmt, crlf):
    joints = np.array(values, np.float32).reshape(25, 3)
    pyfmt = "%s" if fmt == "%r" else fmt
    data = skeleton_text([[(BASE_ID, joints)]], fmt=pyfmt, crlf=crlf)
    raw = parse(data)
    expected = np.array([[np.float32(float(pyfmt % float(v))) for v in row] for row in joints])
    assert raw.joints[0, 0].tobytes() == expected.tobytes()


# ---------------------------------------------------------------- errors

def _small_file(crlf: bool = False) -> bytes:
    rng = np.random.default_rng(3)
    return skeleton_text(compose(3, track(rng, 3), track(rng, 2, body_id=BASE_ID + 7)), crlf=crlf)


@pytest.mark.parametrize("crlf", [False, True])
def test_truncation_at_every_line_boundary_is_a_located_error(crlf):
    data = _small_file(crlf)
    eol = b"\r\n" if crlf else b"\n"
    cuts = [i + len(eol) for i in range(len(data)) if data.startswith(eol, i)][:-1]
    assert len(cuts) > 100
    for cut in [0] + cuts:
        with pytest.raises(ReadError) as info:
            parse(data[:cut], "cut.skeleton")
        err = info.value
        assert err.location.path == "cut.skeleton"
        assert err.location.line is not None
        assert isinstance(err, TruncatedError)


def test_truncation_inside_a_line_names_field_count():
    data = _small_file()
    with pytest.raises(ReadError, match=r"expected 12 fields on a joint line, found \d+"):
        parse(data[: data.index(b"\n", 400) - 20])


@pytest.mark.parametrize("edit,pattern,exc", [
    (lambda t: t.replace("\n25\n", "\n24\n", 1), r":4:1: expected 25 joints per body .*found 24 \(frame 0, body 0\)", ParseError),
    (lambda t: t.replace("0.9692109 -0.1239193 2\n", "0.9692109 -0.1239193 2 7\n", 1), r":5:\d+: expected 12 fields on a joint line, found 13", ParseError),
    (lambda t: t.replace("277.419", "27x.419", 1), r":5:\d+: expected a number for depth_x, found '27x.419'", ParseError),
    (lambda t: t.replace("0.02764709", "0.0276.4709", 1), r":3:\d+: expected a number for leanX", ParseError),
    (lambda t: t.replace(" 2\n25", " 2.5\n25", 1), r":3:\d+: expected an integer for trackingState", ParseError),
    (lambda t: "3\n" + t.split("\n", 1)[1], r"file ends early: expected a body count line \(the header promised 3 frames\)", TruncatedError),
    (lambda t: "1\n" + t.split("\n", 1)[1], r"unexpected data after the last of 1 frames", ParseError),
    (lambda t: "-1\n", r"expected a non-negative frame count, found -1", ParseError),
    (lambda t: "", r"file is empty", TruncatedError),
    (lambda t: "\x89PNG\r\n\x1a\n\x00\x00", r":1:1: the file holds NUL bytes \(byte 8\): a binary file", ParseError),
    (lambda t: t.replace("\n25\n", "\n\n25\n", 1), r":4:1: expected 1 field on a joint count line, found 0", ParseError),
])
def test_malformed_files_give_actionable_errors(edit, pattern, exc):
    rng = np.random.default_rng(4)
    text = skeleton_text(compose(2, track(rng, 2))).decode("latin-1")
    with pytest.raises(exc, match=pattern) as info:
        parse(edit(text).encode("latin-1"), "bad.skeleton")
    assert str(info.value).startswith("bad.skeleton:")


def test_same_id_twice_in_one_frame_is_an_error():
    rng = np.random.default_rng(5)
    j = person(rng)
    with pytest.raises(ParseError, match="appears twice in one frame"):
        parse(skeleton_text([[(BASE_ID, j), (BASE_ID, j)]]))


def test_unreadable_path_is_a_read_error(tmp_path):
    with pytest.raises(ReadError, match="cannot read file"):
        READER.read(tmp_path / "missing.skeleton", SPEC)


def test_discover_is_sorted_and_recursive(tmp_path):
    (tmp_path / "b").mkdir()
    for p in ["b/S001C001P001R001A002.skeleton", "S001C001P001R001A001.skeleton", "notes.txt"]:
        (tmp_path / p).write_bytes(b"0\n")
    found = [p.name for p in READER.discover(tmp_path)]
    assert found == ["S001C001P001R001A001.skeleton", "S001C001P001R001A002.skeleton"]


@pytest.mark.realdata
def test_xyz_fields_mode_gives_the_same_positions(realdata):
    fast = get_reader("ntu_skeleton", fields="xyz")
    for path in sorted((realdata / "ntu").glob("*.skeleton")):
        a, b = READER.read(path, SPEC)[0], fast.read(path, SPEC)[0]
        assert a.joints.tobytes() == b.joints.tobytes() and a.body_ids == b.body_ids
        assert not b.joint_fields and not b.body_fields


def test_xyz_fields_mode_still_checks_the_skipped_fields():
    rng = np.random.default_rng(4)
    text = skeleton_text(compose(2, track(rng, 2))).decode()
    with pytest.raises(ParseError, match="expected a number for orientation_w, found 'x0.2'"):
        parse_ntu_bytes(text.replace("-0.2059419", "x0.2", 1).encode(), "bad.skeleton", SPEC, "xyz")
    with pytest.raises(ParseError, match="expected 12 fields on a joint line, found 11"):
        parse_ntu_bytes(text.replace(" -0.1239193 2\n", " 2\n", 1).encode(), "bad.skeleton", SPEC,
                        "xyz")


def test_reader_options_are_checked():
    from s2i_prep.errors import S2IError

    with pytest.raises(S2IError, match="fields must be one of"):
        get_reader("ntu_skeleton", fields="some")
    with pytest.raises(S2IError, match="reader 'ucla_json' has no option 'clip_bounds'"):
        get_reader("ucla_json", clip_bounds="closed")


def test_bench_read_quick_runs():
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(repo / "benchmarks" / "bench_read.py"), "--quick"],
                         capture_output=True, text=True, cwd=repo, timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["files"] == 12 and res["reference_mb_s"] > 0 and res["s2i_parse_select_mb_s"] > 0


@pytest.mark.parametrize("fields", ["all", "xyz"])
def test_shortest_possible_lines_take_the_capacity_retry(fields):
    # one-character fields make records smaller than the first capacity guess assumes
    body = "1 0 1 1 1 1 0 0 0 2\n25\n" + "0 0 0 0 0 0 0 0 0 0 0 2\n" * 25
    frames = 40
    data = (f"{frames}\n" + ("1\n" + body) * frames).encode()
    raw = parse_ntu_bytes(data, "short.skeleton", SPEC, fields)
    assert raw.joints.shape == (1, frames, 25, 3) and not raw.joints.any()
