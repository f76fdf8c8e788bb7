"""PKU-MMD reader and the number-table kernel, on files generated in tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2i_prep.errors import EmptySampleError, ParseError, ReadError, S2IError, TruncatedError
from s2i_prep.kernels import parse_text
from s2i_prep.readers import get_reader
from s2i_prep.readers.pku_mmd import CLIP_BOUNDS, DEFAULT_CLIP_BOUNDS, read_pku_split_file
from s2i_prep.specs import load_spec

WIDTH = 150


@pytest.fixture(scope="module")
def spec():
    return load_spec("pku25")


def _frames(t: int, seed: int = 0, second: bool = True) -> np.ndarray:
    """(T, 150) values as the files print them (6 decimals), second body zero unless ``second``."""
    rng = np.random.default_rng(seed)
    a = np.round(rng.uniform(-2, 4, size=(t, WIDTH)), 6)
    if not second:
        a[:, 75:] = 0.0
    return a


def _text(a: np.ndarray, eol: str = "\n") -> str:
    return "".join(" ".join(f"{v:.6f}" for v in row) + eol for row in a)


def _expected(a: np.ndarray) -> np.ndarray:
    """(2, T, 25, 3) float32 as numpy's str -> float32 gives it, NaN for all-zero bodies."""
    tokens = np.array([f"{v:.6f}" for v in a.ravel()]).astype(np.float32).reshape(len(a), 2, 25, 3)
    out = tokens.transpose(1, 0, 2, 3).copy()
    out[(out == 0).all(axis=(2, 3))] = np.nan
    return out


def _write(
    root: Path, video: str, text: str | bytes, labels: str, layout=("skeleton", "label")
) -> Path:
    skel = root / layout[0]
    lab = root / layout[1]
    skel.mkdir(parents=True, exist_ok=True)
    lab.mkdir(parents=True, exist_ok=True)
    path = skel / f"{video}.txt"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    (lab / f"{video}.txt").write_text(labels)
    return path


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    return np.array_equal(x, y, equal_nan=True)


@pytest.mark.parametrize(
    ("bounds", "first", "stop"),
    [("half_open", 5, 15), ("one_based", 4, 15), ("closed", 5, 16)],
)
def test_clip_bounds_conventions(tmp_path, spec, bounds, first, stop):
    a = _frames(30)
    path = _write(tmp_path, "0002-L", _text(a), "3,5,15,1\n12,20,29,2\n")
    clips = get_reader("pku_txt", clip_bounds=bounds).read(path, spec)
    assert [c.name for c in clips] == ["0002-L_000", "0002-L_001"]
    full = _expected(a)
    assert _same(clips[0].joints, full[:, first:stop])
    assert clips[0].label == 2 and clips[1].label == 11
    assert dict(clips[0].meta) == {"start": 5, "end": 15, "confidence": 1, "clip": 0}
    assert clips[1].meta["confidence"] == 2 and clips[1].meta["clip"] == 1
    assert clips[0].body_ids == ("0", "1")
    assert clips[0].joints.dtype == np.float32 and clips[0].joints.flags.c_contiguous


def test_default_bounds_are_mamp_half_open(tmp_path, spec):
    assert DEFAULT_CLIP_BOUNDS == "half_open" and set(CLIP_BOUNDS) == {
        "half_open",
        "one_based",
        "closed",
    }
    a = _frames(12)
    path = _write(tmp_path, "A01N02-M", _text(a), "1,0,12,1\n")
    [clip] = get_reader("pku_txt").read(path, spec)
    assert clip.name == "A01N02-M_000"
    assert _same(clip.joints, _expected(a))


def test_unknown_clip_bounds_option():
    with pytest.raises(S2IError, match="clip_bounds must be one of"):
        get_reader("pku_txt", clip_bounds="inclusive")


def test_absent_second_body_is_nan(tmp_path, spec):
    a = _frames(20, second=False)
    a[4:9, 75:] = _frames(5, seed=3)[:, 75:]  # the second person appears for frames 4..8
    a[7, :75] = 0.0  # and the first one drops out in frame 7
    path = _write(tmp_path, "0003-R", _text(a), "5,0,20,1\n")
    [clip] = get_reader("pku_txt").read(path, spec)
    present = ~np.isnan(clip.joints[..., 0]).all(axis=-1)
    assert present[1].nonzero()[0].tolist() == [4, 5, 6, 7, 8]
    assert present[0].sum() == 19 and not present[0, 7]
    assert _same(clip.joints, _expected(a))


def test_crlf_equals_lf(tmp_path, spec):
    a = _frames(9)
    lf = _write(tmp_path / "lf", "0002-M", _text(a), "1,0,9,1\n")
    crlf = _write(tmp_path / "crlf", "0002-M", _text(a, "\r\n"), "1,0,9,1\r\n")
    [x] = get_reader("pku_txt").read(lf, spec)
    [y] = get_reader("pku_txt").read(crlf, spec)
    assert _same(x.joints, y.joints)


def test_missing_final_newline_and_tabs_are_fine(tmp_path, spec):
    a = _frames(4)
    text = _text(a).rstrip("\n").replace(" ", "\t", 3)
    path = _write(tmp_path, "0004-L", text + "  ", "2,0,4,1")
    [clip] = get_reader("pku_txt").read(path, spec)
    assert _same(clip.joints, _expected(a))


def test_truncated_file(tmp_path, spec):
    text = _text(_frames(6))
    cut = text[: text.index("\n", len(text) // 2) + 40]  # a download that stopped mid-line
    path = _write(tmp_path, "0005-L", cut, "1,0,3,1\n")
    with pytest.raises(TruncatedError) as info:
        get_reader("pku_txt").read(path, spec)
    loc = info.value.location
    assert loc.path == str(path) and loc.line == cut.count("\n") + 1
    assert "expected 150 numbers" in str(info.value) and "found" in str(info.value)


@pytest.mark.parametrize(("delta", "found"), [(-1, 149), (2, 152)])
def test_wrong_count_on_a_line(tmp_path, spec, delta, found):
    lines = _text(_frames(5)).splitlines()
    tokens = lines[2].split()
    lines[2] = " ".join(tokens[:delta] if delta < 0 else tokens + ["1.0"] * delta)
    path = _write(tmp_path, "0006-L", "\n".join(lines) + "\n", "1,0,5,1\n")
    with pytest.raises(ParseError) as info:
        get_reader("pku_txt").read(path, spec)
    assert not isinstance(info.value, TruncatedError)
    assert info.value.location.line == 3
    assert f"expected 150 numbers (2 bodies x 25 joints x 3), found {found}" in str(info.value)


def test_blank_line_is_an_error(tmp_path, spec):
    lines = _text(_frames(3)).splitlines()
    path = _write(tmp_path, "0006-M", lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n", "1,0,3,1\n")
    with pytest.raises(ParseError, match="found 0") as info:
        get_reader("pku_txt").read(path, spec)
    assert info.value.location.line == 2


@pytest.mark.parametrize("bad", ["1.2.3", "0,5", "--1", "1e", "abc"])
def test_bad_number_names_line_column_and_token(tmp_path, spec, bad):
    lines = _text(_frames(4)).splitlines()
    tokens = lines[3].split()
    tokens[10] = bad
    lines[3] = " ".join(tokens)
    path = _write(tmp_path, "0007-L", "\n".join(lines) + "\n", "1,0,4,1\n")
    with pytest.raises(ParseError) as info:
        get_reader("pku_txt").read(path, spec)
    loc = info.value.location
    assert loc.line == 4 and loc.column == len(" ".join(tokens[:10])) + 2
    assert "number 11 of the line" in str(info.value)
    assert repr(bad.split("\r")[0])[1:-1] in str(info.value)


def test_empty_skeleton_file(tmp_path, spec):
    path = _write(tmp_path, "0008-L", "", "1,0,1,1\n")
    with pytest.raises(EmptySampleError):
        get_reader("pku_txt").read(path, spec)


@pytest.mark.parametrize(
    ("labels", "line", "pattern"),
    [
        ("1,0,10,1\n2,5,21,1\n", 2, r"not inside the recording.*frames 5\.\.20.*frames 0\.\.19"),
        ("1,0,10,1\n2,15,15,1\n", 2, "not inside the recording"),
        ("1,0,10\n", 1, "expected 4 comma-separated integers"),
        ("1,0,x,1\n", 1, "expected integers"),
        ("0,0,10,1\n", 1, "1-based class label"),
        ("3,12,4,1\n", 1, "start 12 is after end 4"),
    ],
)
def test_bad_label_rows_name_label_file_and_line(tmp_path, spec, labels, line, pattern):
    path = _write(tmp_path, "0009-L", _text(_frames(20)), labels)
    with pytest.raises(ReadError, match=pattern) as info:
        get_reader("pku_txt").read(path, spec)
    assert info.value.location.path == str(tmp_path / "label" / "0009-L.txt")
    assert info.value.location.line == line


def test_empty_label_file(tmp_path, spec):
    path = _write(tmp_path, "0009-M", _text(_frames(3)), "\n")
    with pytest.raises(EmptySampleError, match="no action"):
        get_reader("pku_txt").read(path, spec)


def test_missing_label_file(tmp_path, spec):
    path = _write(tmp_path, "0010-L", _text(_frames(3)), "1,0,3,1\n")
    (tmp_path / "label" / "0010-L.txt").unlink()
    with pytest.raises(ReadError, match="no label file found") as info:
        get_reader("pku_txt").read(path, spec)
    assert "Train_Label_PKU_final" in str(info.value)


def test_discover_both_layouts(tmp_path, spec):
    official = tmp_path / "official"
    for video in ("0291-R", "0002-L"):
        _write(
            official,
            video,
            _text(_frames(2)),
            "1,0,2,1\n",
            layout=("PKU_Skeleton_Renew", "Train_Label_PKU_final"),
        )
    reader = get_reader("pku_txt")
    found = reader.discover(official)
    assert [p.name for p in found] == ["0002-L.txt", "0291-R.txt"]
    assert reader.read(found[0], spec)[0].name == "0002-L_000"
    plain = tmp_path / "plain"
    _write(plain, "A01N01-L", _text(_frames(2)), "1,0,2,1\n")
    assert [p.name for p in reader.discover(plain)] == ["A01N01-L.txt"]
    assert reader.discover(plain / "skeleton") == reader.discover(plain)


# ---------------------------------------------------------------------------------------------
# Official split files


def _split_text(train: list[str], test: list[str], eol: str = "\n") -> str:
    lists = (", ".join(train), ", ".join(test))
    return f"Training videos: {eol}{lists[0]}{eol}Validataion videos: {eol}{lists[1]},{eol}"


def _phase1_videos() -> list[str]:
    return [f"{v:04d}-{view}" for v in range(2, 365) for view in "LMR"]


def _phase2_videos() -> list[str]:
    return [
        f"A{g:02d}N{s:02d}-{view}" for g in range(1, 27) for s in range(1, 14) for view in "LMR"
    ]


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_split_file_parses_official_form(tmp_path, eol):
    path = tmp_path / "cross-view.txt"
    path.write_text(_split_text(["0002-M", "0002-R"], ["0002-L"], eol), newline="")
    assert read_pku_split_file(path) == (["0002-M", "0002-R"], ["0002-L"])


def test_split_file_errors(tmp_path):
    path = tmp_path / "cross-subject.txt"
    path.write_text("Training videos: 0002-L, 0003-L\n")
    with pytest.raises(ParseError, match="expected the headings"):
        read_pku_split_file(path)
    path.write_text(_split_text(["0002-L", "0003-L"], ["0003-L"]))
    with pytest.raises(ParseError, match="in both lists, e.g. '0003-L'"):
        read_pku_split_file(path)


def _names_and_meta(spec, videos):
    names = [f"{v}_000" for v in videos]
    rows = [spec.parse_name(n) for n in names]
    assert None not in rows
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


@pytest.mark.parametrize(
    ("split", "videos", "is_test"),
    [
        ("pku1-xsub", _phase1_videos(), lambda v: 291 <= int(v[:4]) <= 334),
        ("pku1-xview", _phase1_videos(), lambda v: v.endswith("-L")),
        ("pku2-xsub", _phase2_videos(), lambda v: v[4:6] in ("02", "03", "07")),
        ("pku2-xview", _phase2_videos(), lambda v: v.endswith("-L")),
    ],
)
def test_split_rules_match_split_files(tmp_path, spec, split, videos, is_test):
    """Each rule gives exactly the lists of a split file written from the documented definition."""
    path = tmp_path / "split.txt"
    path.write_text(
        _split_text([v for v in videos if not is_test(v)], [v for v in videos if is_test(v)])
    )
    train, test = read_pku_split_file(path)
    other = _phase2_videos() if split.startswith("pku1") else _phase1_videos()
    everything = videos + other  # the other phase's clips must fall in neither part
    meta = _names_and_meta(spec, everything)
    rule = next(r for r in spec.splits if r.name == split)
    tr, te = rule.indices(meta)
    assert [everything[i] for i in tr] == train
    assert [everything[i] for i in te] == test
    if split == "pku1-xsub":
        assert len({v[:4] for v in test}) * 3 == 132
    if split == "pku2-xsub":
        assert len(test) == 234


# ---------------------------------------------------------------------------------------------
# The number-table kernel


def _tokens(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) * 10.0 ** rng.integers(-45, 45, size=n)
    forms = [
        lambda v: f"{v:.6f}",
        lambda v: f"{v:.7E}",
        lambda v: f"{v:.17g}",
        lambda v: f"{v:.25e}",
        lambda v: repr(float(np.float32(v))) if abs(v) < 3e38 else "1e39",
        lambda v: f"{v:.3e}",
        lambda v: str(int(v)) if abs(v) < 1e30 else "-0",
        lambda v: f"{v:.30f}",
    ]
    return [forms[i % len(forms)](v) for i, v in enumerate(x)]


@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_bit_equal_to_numpy(seed):
    special = "-0.0 0e999 1e-400 .5 5. +.5e+1 3.4028235677973362e38 -1e-46"
    with np.errstate(over="ignore"):  # values beyond float32 are errors (tested below)
        toks = [t for t in _tokens(150 * 200, seed) if np.isfinite(np.float32(float(t)))]
    toks += special.split()
    toks += ["1"] * (-len(toks) % 10)
    text = "\n".join(" ".join(toks[i : i + 10]) for i in range(0, len(toks), 10)) + "\n"
    with np.errstate(over="ignore"):
        ref = np.array(toks).astype(np.float32).reshape(-1, 10)
    got = parse_text.parse_float_rows(text.encode(), 10)
    assert got.status == parse_text.OK and got.row == len(ref)
    assert np.array_equal(got.values.view(np.uint32), ref.view(np.uint32))


def test_kernel_double_rounding_like_numpy():
    # Just above the midpoint of 1 and the next float32: float64 rounds it onto the midpoint,
    # then ties-to-even gives 1.0 (a direct decimal -> float32 rounding would give the next float).
    token = "1.00000005960464477539062830872245021211069948563476827985141"
    assert parse_text.parse_float_rows(token.encode(), 1).values[0, 0] == np.float32(1.0)
    assert np.array([token]).astype(np.float32)[0] == np.float32(1.0)


@pytest.mark.parametrize(
    ("data", "status", "row", "found", "cut"),
    [
        (b"1 2 3\n1 2\n", parse_text.TOO_FEW, 1, 2, False),
        (b"1 2 3\n1 2", parse_text.TOO_FEW, 1, 2, True),
        (b"1 2 3\n1 2 3 4 5\n", parse_text.TOO_MANY, 1, 5, False),
        (b"1 2 x\n", parse_text.BAD_NUMBER, 0, 2, False),
        (b"1 2 3\n\n", parse_text.TOO_FEW, 1, 0, False),
        (b"1 2 nanx\n", parse_text.BAD_NUMBER, 0, 2, False),
        (b"1 2 3\n1 -nan 3\n", parse_text.NONFINITE, 1, 1, False),
        (b"inf 2 3\n", parse_text.NONFINITE, 0, 0, False),
        (b"1 2 3\n1 2 1e39\n", parse_text.OUT_OF_RANGE, 1, 2, False),
        (b"1 2 3\n1 -1e999999999 3\n1 2 3 4\n", parse_text.TOO_MANY, 2, 4, False),
        (b"1 2 3\n1 -1e999999999 3\n", parse_text.OUT_OF_RANGE, 1, 1, False),
    ],
)
def test_kernel_status(data, status, row, found, cut):
    got = parse_text.parse_float_rows(data, 3)
    assert (got.status, got.row, got.found, got.ends_mid_line) == (status, row, found, cut)


def test_kernel_offsets_point_at_the_problem():
    assert parse_text.parse_float_rows(b"1 2 3\n4 5 6 7 8\n", 3).offset == 12  # first extra token
    assert parse_text.parse_float_rows(b"1 2 3\n4 5\n", 3).offset == 9  # the line end
    assert parse_text.parse_float_rows(b"1 2 3\n4 5e 6\n", 3).offset == 8  # the bad token


def test_kernel_line_ends_and_bom():
    want = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    for data in (
        b"1 2 3\n4 5 6\n",
        b"1 2 3\r\n4 5 6\r\n",
        b"1 2 3\n4 5 6",
        b"\xef\xbb\xbf 1\t2 3 \n4 5 6\r",
        b"\xef\xbb\xbf1.000000000000000000000 2 3\n4 5 6e0000000000000000000000",  # slow path
    ):
        got = parse_text.parse_float_rows(data, 3)
        assert got.status == parse_text.OK and got.values.tolist() == want, data
    empty = parse_text.parse_float_rows(b"", 3)
    assert empty.status == parse_text.OK and empty.values.shape == (0, 3)
    assert parse_text.token_at(b"1 2.5x\xff 3", 2) == "2.5x\\xff"


# A slow, obvious twin of the kernel: str methods, a regex and Python's float().
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:nan|inf|infinity))")
_SPECIAL = re.compile(r"[+-]?(?i:nan|inf|infinity)")


def _reference_rows(data: bytes, ncols: int):
    text = data.decode("latin-1").removeprefix("\xef\xbb\xbf")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    rows = []
    for i, line in enumerate(lines):
        tokens = [t for t in re.split(r"[ \t]+", line.removesuffix("\r")) if t]
        for k, tok in enumerate(tokens):
            if k == ncols:
                return parse_text.TOO_MANY, i, len(tokens), None
            if not _NUMBER.fullmatch(tok):
                return parse_text.BAD_NUMBER, i, k, None
            if _SPECIAL.fullmatch(tok):
                return parse_text.NONFINITE, i, k, None
        if len(tokens) < ncols:
            return parse_text.TOO_FEW, i, len(tokens), None
        rows.append([np.float32(float(t)) for t in tokens])
    for i, row in enumerate(rows):  # range is checked once the grammar holds everywhere
        for k, value in enumerate(row):
            if np.isinf(value):
                return parse_text.OUT_OF_RANGE, i, k, None
    return parse_text.OK, len(rows), ncols, np.array(rows, np.float32).reshape(-1, ncols)


_WORDS = "0 1 7 25 . - + e E nan -nan inf x 1e400 123456789012345678901234"
_PIECES = [*_WORDS.split(), " ", "\t", "\n", "\r\n", "\r"]


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=40), ncols=st.integers(1, 4))
def test_kernel_equals_reference_twin(pieces, ncols):
    data = "".join(pieces).encode()
    with np.errstate(over="ignore"):
        status, row, found, values = _reference_rows(data, ncols)
        got = parse_text.parse_float_rows(data, ncols)
    assert (got.status, got.row, got.found) == (status, row, found)
    if status == parse_text.OK:
        assert np.array_equal(got.values, values, equal_nan=True)
        assert np.array_equal(np.signbit(got.values), np.signbit(values))


def test_cut_anywhere_is_a_read_error_or_a_shorter_recording(tmp_path, spec):
    """A file cut at any byte either still holds every labelled frame or fails with a location."""
    text = _text(_frames(3), "\r\n").encode()
    reader = get_reader("pku_txt")
    for cut in range(0, len(text), 7):
        path = _write(tmp_path / str(cut), "0011-L", text[:cut], "1,0,2,1\n")
        try:
            [clip] = reader.read(path, spec)
        except ReadError as err:
            assert err.location.path in (
                str(path),
                str(tmp_path / str(cut) / "label" / "0011-L.txt"),
            )
        else:
            assert clip.num_frames == 2 and not np.isnan(clip.joints).any()
