"""Hostile inputs to the readers (issue 9): exact values or clean located errors, never a wrong
value, a raw exception, a hang or unbounded memory. The seeded mutation sweep over the three
formats lives in ``test_reader_mutations.py``."""

from __future__ import annotations

import json
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


# ------------------------------------------------------------------ PKU and NW-UCLA builders

PKU = load_spec("pku25")
UCLA = load_spec("ucla20")


def _pku_text(rows: int = 4, eol: str = "\n") -> str:
    rng = np.random.default_rng(rows)
    return "".join(" ".join(f"{v:.6f}" for v in rng.uniform(-2, 4, 150)) + eol for _ in range(rows))


def _pku(root, text: str | bytes, labels: str | bytes | None = "1,0,3,1\n", video: str = "0007-L"):
    (root / "skeleton").mkdir(parents=True, exist_ok=True)
    path = root / "skeleton" / f"{video}.txt"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    if labels is not None:
        (root / "label").mkdir(exist_ok=True)
        label = root / "label" / f"{video}.txt"
        label.write_bytes(labels.encode() if isinstance(labels, str) else labels)
    return path


def _ucla_text(value: str = "0.5", label: str = "7", name: str = "a08_s03_e01_v02") -> str:
    frames = [[[0.25, -0.5, 3.0] for _ in range(20)] for _ in range(3)]
    text = json.dumps({"file_name": name, "skeletons": frames, "label": 0})
    text = text.replace('"label": 0', f'"label": {label}')
    return text.replace("3.0", value, 1) if value != "3.0" else text


def _ucla(tmp_path, text: str | bytes, name: str = "a08_s03_e01_v02"):
    path = tmp_path / f"{name}.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# ------------------------------------------------------------------ 2 (PKU, NW-UCLA), 10

@pytest.mark.parametrize("token,pattern", [
    ("1e999999999", r":3:\d+: value out of range: number 4 of the line, '1e999999999'"),
    ("-4e38", r":3:\d+: value out of range"),
    ("nan", r":3:\d+: number 4 of the line is 'nan': NaN and infinity are not accepted"),
    ("-Infinity", r":3:\d+: number 4 of the line is '-Infinity'"),
])
def test_pku_values_beyond_float32_and_nan_are_located_errors(tmp_path, token, pattern):
    lines = _pku_text().split("\n")
    tokens = lines[2].split(" ")
    tokens[3] = token
    lines[2] = " ".join(tokens)
    path = _pku(tmp_path, "\n".join(lines))
    with pytest.raises(ParseError, match=rf"^{re.escape(str(path))}{pattern}"):
        get_reader("pku_txt").read(path, PKU)


@pytest.mark.parametrize("value,pattern", [
    ("1e308", r":1:\d+: value out of range: skeletons: joint 0: 1e308 is beyond float32 .*\(frame 0\)$"),
    ("-1" + "0" * 50, r":1:\d+: value out of range: skeletons: joint 0: -10000000000"),
    ("3" * 5000, r":1:\d+: value out of range: skeletons: joint 0: 333"),
    ("4e38", r":1:\d+: value out of range"),
    ("340282356779733661637539395458142568448", r":1:\d+: value out of range"),
    ("NaN", r":1:\d+: NaN is not accepted: numbers must be finite"),
    ("-Infinity", r":1:\d+: -Infinity is not accepted"),
])
def test_ucla_values_beyond_float32_are_located_errors(tmp_path, value, pattern):
    path = _ucla(tmp_path, _ucla_text(value))
    with pytest.raises(ParseError, match=rf"^{re.escape(str(path))}{pattern}"):
        get_reader("ucla_json").read(path, UCLA)


def test_ucla_largest_values_inside_float32_read_exactly(tmp_path):
    for value in ("3.4028235677973362e38", str(2**127), "1e-50", "-0.0", "1" + "0" * 38):
        raw = get_reader("ucla_json").read(_ucla(tmp_path, _ucla_text(value)), UCLA)[0]
        assert raw.joints[0, 0, 0, 2].tobytes() == np.float32(float(value)).tobytes(), value


@pytest.mark.parametrize("label,pattern", [
    ("1" + "0" * 50, r"value out of range: label 1000"), ("9" * 5000, r"value out of range: label 999"),
    ("0", r"value out of range: label 0 is not a 1-based"), ("true", r"label: expected an integer, found true"),
    ("null", r"found null"), ('"7"', r'found "7"'), ("7.0", r"found 7\.0"),
])
def test_ucla_label_checks_show_json_values(tmp_path, label, pattern):
    with pytest.raises(ParseError, match=pattern):
        get_reader("ucla_json").read(_ucla(tmp_path, _ucla_text(label=label)), UCLA)


def test_ucla_joint_values_are_shown_as_json(tmp_path):
    text = _ucla_text().replace("[0.25, -0.5, 0.5]", "[true, null, 0.5]", 1)
    with pytest.raises(ParseError, match=r"joint 0: expected 3 numbers, found \[true, null, 0\.5\]"):
        get_reader("ucla_json").read(_ucla(tmp_path, text), UCLA)


def test_ucla_deep_nesting_is_a_located_error(tmp_path):
    text = '{"file_name": "a08_s03_e01_v02", "label": 7, "skeletons": ' + "[" * 1000 + "]" * 1000 + "}"
    with pytest.raises(ParseError, match=r":1:\d+: JSON nested more than 64 levels deep"):
        get_reader("ucla_json").read(_ucla(tmp_path, text), UCLA)


# ------------------------------------------------------------------ 4: ASCII digits in names

@pytest.mark.parametrize("spec,name", [
    (NTU, "S001C001P001R001A００２"), (NTU, "S001C001P001R001A\u0661\u0662\u0663"),
    (UCLA, "a\u0660\u0661_s01_e00_v01"), (UCLA, "a01_s０1_e00_v01"),
    (PKU, "\u0966\u0966\u0966\u0967-L_000"), (PKU, "A10N０8-L_000"),
])
def test_names_with_non_ascii_digits_do_not_match(spec, name):
    assert spec.parse_name(name) is None


def test_ascii_names_still_match():
    assert NTU.parse_name("S001C001P001R001A002")["action"] == 2
    assert UCLA.parse_name("a01_s01_e00_v01")["view"] == 1
    assert PKU.parse_name("A10N08-L_003")["subject"] == 8


def test_ucla_file_with_arabic_indic_digits_is_a_read_error(tmp_path):
    name = "a\u0660\u0668_s03_e01_v02"
    path = _ucla(tmp_path, _ucla_text(name=name), name=name)
    with pytest.raises(ReadError, match="does not match the spec's sample_name pattern"):
        get_reader("ucla_json").read(path, UCLA)


# ------------------------------------------------------------------ 5: PKU label rows

@pytest.mark.parametrize("row,pattern", [
    ("1" * 30 + ",0,3,1", r":1: value out of range: label 1{21}\.\.\. does not fit a 32-bit integer"),
    ("2,10,20,99999999999", r":1: value out of range: confidence 99999999999"),
    ("1,0,3,-2147483649", r"value out of range: confidence"),
    ("１,0,3,1", r":1: expected integers label,start,end,confidence"),
    ("1_0,0,3,1", r"expected integers"),
    ("1,0,3,1\n\n2,0,0x3,1", r":3: expected integers"),
])
def test_pku_label_rows_are_ascii_int32(tmp_path, row, pattern):
    path = _pku(tmp_path, _pku_text(), row + "\n")
    with pytest.raises(ParseError, match=pattern):
        get_reader("pku_txt").read(path, PKU)


def test_dump_of_a_bad_label_is_an_error_not_an_object_array(tmp_path, capsys):
    from s2i_prep.cli import main

    path = _pku(tmp_path, _pku_text(), "1" * 30 + ",0,3,1\n")
    code = main(["dump", "--format", "pku25", str(path), "--stage", "selected",
                 "-o", str(tmp_path / "x.npz")])
    assert code == 1 and "value out of range" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


# ------------------------------------------------------------------ 18: dump raw without labels

def test_dump_raw_pku_recording_needs_no_label_file(tmp_path):
    from s2i_prep.cli import main

    path = _pku(tmp_path, _pku_text(5), labels=None)
    assert main(["dump", "--format", "pku25", str(path), "-o", str(tmp_path / "raw.npz")]) == 0
    with np.load(tmp_path / "raw.npz", allow_pickle=False) as raw:
        assert raw["joints"].shape == (2, 5, 25, 3) and "label" not in raw.files
    # clips still need the label file, and say so
    assert main(["dump", "--format", "pku25", str(path), "--stage", "selected",
                 "-o", str(tmp_path / "sel.npz")]) == 1


# ------------------------------------------------------------------ 8: only regular files

def _refused(path, pattern: str) -> None:
    for fmt, reader in (("ntu25", "ntu_skeleton"), ("pku25", "pku_txt"), ("ucla20", "ucla_json")):
        spec = load_spec(fmt)
        with pytest.raises(ReadError, match=pattern):
            if reader == "pku_txt":
                get_reader(reader).read_recording(path, spec)
            else:
                get_reader(reader).read(path, spec)


def _no_hang(fn, seconds: float = 20.0) -> None:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not return."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "reading hung"
    if errors:
        raise errors[0]


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "S001C001P001R001A001.skeleton"
    os.mkfifo(fifo)
    _no_hang(lambda: _refused(fifo, r"cannot read file: a FIFO \(named pipe\), not a regular file"))


def test_dev_zero_symlink_is_refused(tmp_path):
    link = tmp_path / "S001C001P001R001A001.skeleton"
    link.symlink_to("/dev/zero")
    _no_hang(lambda: _refused(link, "cannot read file: a character device, not a regular file"))


def test_dangling_links_loops_directories_and_size_are_named(tmp_path):
    from s2i_prep.readers.rawfile import read_bytes

    (tmp_path / "dangling.skeleton").symlink_to(tmp_path / "nowhere")
    _refused(tmp_path / "dangling.skeleton", "dangling symbolic link")
    (tmp_path / "loop.skeleton").symlink_to(tmp_path / "loop.skeleton")
    _refused(tmp_path / "loop.skeleton", "symbolic link loop")
    (tmp_path / "dir.skeleton").mkdir()
    _refused(tmp_path / "dir.skeleton", "a directory, not a regular file")
    _refused(tmp_path / "missing.skeleton", "cannot read file: No such file")
    big = tmp_path / "big.skeleton"
    big.write_bytes(b"0" * 1000)
    with pytest.raises(ReadError, match="1,000 bytes, more than the 999-byte limit"):
        read_bytes(big, limit=999)
    assert read_bytes(big, limit=1000) == b"0" * 1000
    (tmp_path / "link.skeleton").symlink_to(big)  # a link to a regular file is fine
    assert read_bytes(tmp_path / "link.skeleton") == b"0" * 1000


def test_dump_refuses_a_fifo_with_a_reason(tmp_path, capsys):
    from s2i_prep.cli import main

    fifo = tmp_path / "S001C001P001R001A001.skeleton"
    os.mkfifo(fifo)
    codes: list[int] = []
    _no_hang(lambda: codes.append(main(["dump", "--format", "ntu25", str(fifo),
                                        "-o", str(tmp_path / "x.npz")])))
    assert codes == [1] and "FIFO" in capsys.readouterr().err


# ------------------------------------------------------------------ 9: memory bounded by content

@pytest.mark.slow
def test_pku_file_of_newlines_is_rejected_with_little_memory(tmp_path):
    """8,000,000 empty lines used to allocate ~6 GB before rejecting line 1."""
    import subprocess
    import sys
    from pathlib import Path

    path = _pku(tmp_path, b"\n" * 8_000_000)
    code = (
        "import resource, sys\n"
        "from s2i_prep.kernels import parse_text\n"
        "from s2i_prep.readers import get_reader\n"
        "from s2i_prep.specs import load_spec\n"
        "from s2i_prep.errors import ParseError\n"
        "parse_text.warm()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    get_reader('pku_txt').read_recording({str(path)!r}, load_spec('pku25'))\n"
        "except ParseError as exc:\n"
        "    print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         timeout=120, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr
    message, grown_mb = out.stdout.strip().splitlines()
    assert ":1:1: expected 150 numbers" in message
    assert int(grown_mb) < 100  # MB beyond the 8 MB file itself (was ~6,000)


# ------------------------------------------------------------------ 19: line ends and encodings

def test_cr_only_line_ends_are_named(tmp_path):
    ntu = skeleton_text([[(BASE_ID, person(np.random.default_rng(1)))]]).replace(b"\n", b"\r")
    with pytest.raises(ParseError, match=r":1:2: the file ends its lines with CR only"):
        parse_ntu_bytes(ntu, "t.skeleton", NTU)
    path = _pku(tmp_path, _pku_text(3, "\r"))
    with pytest.raises(ParseError, match=r":1:\d+: the file ends its lines with CR only"):
        get_reader("pku_txt").read_recording(path, PKU)
    path = _pku(tmp_path, _pku_text(3), "1,0,1,1\r2,1,2,1\r")
    with pytest.raises(ParseError, match=r"label/0007-L.txt:1:8: the file ends its lines with CR only"):
        get_reader("pku_txt").read(path, PKU)


@pytest.mark.parametrize("fields", ["all", "xyz"])
@pytest.mark.parametrize("field", [0, 4, 11])
def test_ntu_stray_cr_is_a_line_ending_error_in_both_paths(field, fields):
    data, column = _ntu_with("3.306044\r0.5", field)
    with pytest.raises(ParseError, match=rf"^t\.skeleton:5:{column + 8}: stray carriage return"):
        parse_ntu_bytes(data, "t.skeleton", NTU, fields)
    crlf = skeleton_text([[(BASE_ID, person(np.random.default_rng(1)))]], crlf=True)
    assert parse_ntu_bytes(crlf + b"\r", "t.skeleton", NTU, fields).joints.shape == (1, 1, 25, 3)


def test_stray_cr_is_named_at_its_place(tmp_path):
    lines = _pku_text().split("\n")
    tokens = lines[1].split(" ")
    tokens[5] = "3.306044\r0.5"
    lines[1] = " ".join(tokens)
    path = _pku(tmp_path, "\n".join(lines))
    column = sum(len(t) + 1 for t in tokens[:5]) + len("3.306044") + 1
    with pytest.raises(ParseError, match=rf":2:{column}: stray carriage return \(CR\) inside a line"):
        get_reader("pku_txt").read_recording(path, PKU)


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16 \\(little-endian\\)"),
                                           ("utf-16-be", "NUL bytes"),
                                           ("utf-32", "UTF-32 \\(little-endian\\)")])
def test_utf16_and_utf32_files_name_the_encoding(tmp_path, encoding, name):
    ntu = skeleton_text([[(BASE_ID, person(np.random.default_rng(1)))]]).decode()
    with pytest.raises(ParseError, match=rf":1:1: the file (is|holds) {name}"):
        parse_ntu_bytes(ntu.encode(encoding), "t.skeleton", NTU)
    path = _pku(tmp_path, _pku_text().encode(encoding))
    with pytest.raises(ParseError, match=rf":1:1: the file (is|holds) {name}"):
        get_reader("pku_txt").read_recording(path, PKU)
    path = _ucla(tmp_path, _ucla_text().encode(encoding))
    with pytest.raises(ParseError, match=rf":1:1: the file (is|holds) {name}"):
        get_reader("ucla_json").read(path, UCLA)


# ------------------------------------------------------------------ the same verdicts in convert

def test_convert_skips_bad_values_with_normal_kinds_and_keeps_good_samples(tmp_path):
    """Item 2/10/19 through ``convert``: located ParseErrors and ``no_label``, never "unexpected"."""
    from s2i_prep.cli import main
    from s2i_prep.store.validation import inspect_dataset

    raw = tmp_path / "raw"
    raw.mkdir()
    good = {"a01_s01_e00_v01": "1", "a02_s01_e00_v01": "2", "a08_s03_e01_v02": "7"}
    for name, label in good.items():
        _ucla(raw, _ucla_text(label=label, name=name), name=name)
    nested = '{"file_name": "a06_s01_e00_v01", "label": 6, "skeletons": ' + "[" * 1000 + "]" * 1000 + "}"
    bad = {
        "a03_s01_e00_v01": (_ucla_text("1e308", "3", "a03_s01_e00_v01"), "value out of range"),
        "a04_s01_e00_v01": (_ucla_text("1" + "0" * 50, "4", "a04_s01_e00_v01"), "value out of range"),
        "a05_s01_e00_v01": (_ucla_text("7" * 5000, "5", "a05_s01_e00_v01"), "value out of range"),
        "a06_s01_e00_v01": (nested, "nested more than"),
        "a09_s01_e00_v01": (_ucla_text("NaN", "8", "a09_s01_e00_v01"), "NaN is not accepted"),
    }
    for name, (text, _) in bad.items():
        _ucla(raw, text, name=name)
    _ucla(raw, _ucla_text(label="7", name="a07_s01_e00_v01"), name="a07_s01_e00_v01")
    out = tmp_path / "out.zarr"
    code = main(["convert", "--format", "ucla20", str(raw), str(out), "--workers", "0", "-q"])
    assert code in (0, 3)
    info = inspect_dataset(out)
    assert info["num_samples"] == len(good)
    kinds = {os.path.basename(r["path"])[:-5]: r for r in info["skipped"]}
    assert kinds["a07_s01_e00_v01"]["kind"] == "no_label"
    for name, (_, reason) in bad.items():
        assert kinds[name]["kind"] == "ParseError", kinds[name]
        assert reason in kinds[name]["reason"] and "line 1, column" in kinds[name]["reason"]


# ------------------------------------------------------------------ 19: a small synthetic PKU run

def test_small_synthetic_pku_run_has_test_videos_and_no_empty_splits(tmp_path):
    from s2i_prep.cli import main
    from s2i_prep.store.validation import inspect_dataset
    from s2i_prep.synthetic import write_synthetic

    write_synthetic("pku25", tmp_path / "raw", 100)
    out = tmp_path / "pku.zarr"
    assert main(["convert", "--format", "pku25", str(tmp_path / "raw"), str(out), "--workers", "0",
                 "-q"]) in (0, 3)
    splits = inspect_dataset(out)["splits"]
    assert set(splits) == {"pku1-xsub", "pku1-xview"}  # phase-2 rules select nothing
    for parts in splits.values():
        assert parts["train"] > 0 and parts["test"] > 0, splits


def test_convert_skips_a_fifo_and_a_device_link_with_reasons(tmp_path):
    from s2i_prep.cli import main
    from s2i_prep.store.validation import inspect_dataset
    from s2i_prep.synthetic import write_synthetic

    raw = tmp_path / "raw"
    write_synthetic("ntu25", raw, 3)
    os.mkfifo(raw / "S001C001P001R001A060.skeleton")
    (raw / "S001C001P001R001A059.skeleton").symlink_to("/dev/zero")
    out = tmp_path / "out.zarr"
    codes: list[int] = []
    _no_hang(lambda: codes.append(main(["convert", "--format", "ntu25", str(raw), str(out),
                                        "--workers", "0", "-q"])), seconds=120)
    info = inspect_dataset(out)
    assert info["num_samples"] == 3
    # The readers name what each path is; convert's planning may also leave such paths out
    # before any reader sees them, with its own wording.
    reasons = {os.path.basename(r["path"]): r["reason"] for r in info["skipped"]}
    for name, what in (("S001C001P001R001A060.skeleton", "FIFO"),
                       ("S001C001P001R001A059.skeleton", "device")):
        if name in reasons:
            assert what in reasons[name] or "regular file" in reasons[name], reasons[name]


def test_every_registered_reader_refuses_a_fifo_and_a_device(tmp_path):
    """The safe read is shared: a reader added later inherits it (or this test names it)."""
    from s2i_prep.specs import list_specs

    fifo = tmp_path / "fifo_input"
    os.mkfifo(fifo)
    (tmp_path / "zero_input").symlink_to("/dev/zero")
    checked = set()
    for fmt in list_specs():
        spec = load_spec(fmt)
        if spec.reader in checked:
            continue
        checked.add(spec.reader)
        options = {"trust_pickle": True} if spec.reader == "pyskl_pickle" else {}
        reader = get_reader(spec.reader, **options)
        for path, what in ((fifo, "FIFO"), (tmp_path / "zero_input", "character device")):
            def attempt(reader=reader, path=path, spec=spec, what=what):
                with pytest.raises(ReadError, match=what):
                    reader.read(path, spec)
            _no_hang(attempt)
    assert {"ntu_skeleton", "pku_txt", "ucla_json"} <= checked


def test_a_broken_pku_split_file_does_not_lose_the_conversion(tmp_path):
    from s2i_prep.cli import main
    from s2i_prep.store.validation import inspect_dataset
    from s2i_prep.synthetic import write_synthetic

    raw = tmp_path / "raw"
    write_synthetic("pku25", raw, 30)
    (raw / "split" / "cross-view.txt").write_bytes("Training videos: 0002-L".encode("utf-16"))
    out = tmp_path / "out.zarr"
    with pytest.warns(UserWarning, match=r"cross-view.txt: .*UTF-16.*pku1-xview follows the spec"):
        assert main(["convert", "--format", "pku25", str(raw), str(out), "--workers", "0",
                     "-q"]) in (0, 3)
    info = inspect_dataset(out)
    assert info["num_samples"] == 30
    assert info["split_sources"]["pku1-xview"] == "rule"
    assert info["split_sources"]["pku1-xsub"].startswith("file split/cross-subject.txt")


@pytest.mark.parametrize("fmt,token", [("ntu25", "1e39"), ("pku25", "1e999999999")])
def test_convert_skips_out_of_range_ntu_and_pku_values_with_their_location(tmp_path, fmt, token):
    from s2i_prep.cli import main
    from s2i_prep.store.validation import inspect_dataset
    from s2i_prep.synthetic import write_synthetic

    raw = tmp_path / "raw"
    write_synthetic(fmt, raw, 6)
    files = sorted(get_reader(load_spec(fmt).reader).discover(raw))
    bad = files[0]
    lines = bad.read_bytes().split(b"\n")
    k = 4 if fmt == "ntu25" else 1  # a joint line / the second frame
    tokens = lines[k].split(b" ")
    tokens[1] = token.encode()
    lines[k] = b" ".join(tokens)
    bad.write_bytes(b"\n".join(lines))
    out = tmp_path / "out.zarr"
    assert main(["convert", "--format", fmt, str(raw), str(out), "--workers", "0", "-q"]) == 3
    info = inspect_dataset(out)
    rows = [r for r in info["skipped"] if r["path"] == str(bad)]
    assert rows and all(r["kind"] == "ParseError" for r in rows)
    assert all(f"line {k + 1}, column" in r["reason"] and "value out of range" in r["reason"]
               for r in rows)
    assert info["num_samples"] > 0
