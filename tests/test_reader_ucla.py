"""NW-UCLA reader: real all_sqe files (when present) and generated variants in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from s2i_prep.errors import EmptySampleError, ParseError, ReadError
from s2i_prep.readers import get_reader
from s2i_prep.specs import load_spec, spec_dir


@pytest.fixture(scope="module")
def spec():
    return load_spec("ucla20")


@pytest.fixture()
def reader():
    return get_reader("ucla_json")


def _doc(name: str = "a08_s03_e01_v02", frames: int = 5, label: int = 7) -> dict:
    rng = np.random.default_rng(frames)
    skel = np.round(rng.normal(size=(frames, 20, 3)), 7).tolist()
    return {"file_name": name, "skeletons": skel, "label": label}


def _write(tmp_path: Path, doc, name: str | None = None, text: str | None = None) -> Path:
    name = name or (doc["file_name"] if isinstance(doc, dict) else "a01_s01_e00_v01")
    path = tmp_path / f"{name}.json"
    path.write_bytes((text if text is not None else json.dumps(doc)).encode())
    return path


@pytest.mark.realdata
def test_real_files_equal_their_json(realdata, reader, spec):
    files = reader.discover(realdata / "nw_ucla")
    assert len(files) >= 5
    for path in files:
        raw = json.loads(path.read_text())
        [sample] = reader.read(path, spec)
        want = np.array(raw["skeletons"], dtype=np.float32)
        assert sample.joints.shape == (1, *want.shape) and sample.joints.dtype == np.float32
        assert np.array_equal(sample.joints[0], want)
        assert sample.name == path.stem == raw["file_name"]
        assert sample.label == raw["label"] - 1 == spec.label_of(spec.parse_name(path.stem))
        assert sample.body_ids == ("0",)


def test_generated_file(tmp_path, reader, spec):
    doc = _doc()
    [sample] = reader.read(_write(tmp_path, doc), spec)
    assert np.array_equal(sample.joints[0], np.array(doc["skeletons"], dtype=np.float32))
    assert sample.label == 6 and sample.num_frames == 5


def test_whitespace_crlf_and_bom_variants(tmp_path, reader, spec):
    doc = _doc(frames=3)
    compact = reader.read(_write(tmp_path, doc), spec)[0].joints
    pretty = json.dumps(doc, indent=2).replace("\n", "\r\n") + "\r\n"
    for i, text in enumerate(
        [pretty, "\ufeff" + json.dumps(doc) + "\n", json.dumps(doc, separators=(",", ":"))]
    ):
        sub = tmp_path / str(i)
        sub.mkdir()
        got = reader.read(_write(sub, doc, text=text), spec)[0].joints
        assert np.array_equal(got, compact)


def test_lowercase_and_uppercase_exponents(tmp_path, reader, spec):
    doc = _doc(frames=1)
    doc["skeletons"][0][0][0] = 123456.0
    doc["skeletons"][0][1][0] = 654321.0
    text = json.dumps(doc).replace("123456.0", "-7.19968e-05").replace("654321.0", "1.5E+00")
    [sample] = reader.read(_write(tmp_path, doc, text=text), spec)
    assert sample.joints[0, 0, 0, 0] == np.float32(-7.19968e-05)
    assert sample.joints[0, 0, 1, 0] == np.float32(1.5)


def test_discover_sorted_recursive(tmp_path, reader):
    (tmp_path / "sub").mkdir()
    for name in ("a02_s01_e00_v01", "a01_s01_e00_v01"):
        _write(tmp_path / "sub", _doc(name))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in reader.discover(tmp_path)] == [
        "a01_s01_e00_v01.json",
        "a02_s01_e00_v01.json",
    ]


def test_malformed_json_names_line_and_column(tmp_path, reader, spec):
    text = json.dumps(_doc(), indent=1)
    lines = text.splitlines()
    lines[6] = lines[6].rstrip(",")  # drop a comma between two numbers
    path = _write(tmp_path, None, name="a08_s03_e01_v02", text="\n".join(lines))
    with pytest.raises(ParseError, match="not valid JSON") as info:
        reader.read(path, spec)
    assert info.value.location.line == 8 and info.value.location.column is not None


def test_truncated_json(tmp_path, reader, spec):
    text = json.dumps(_doc())
    with pytest.raises(ParseError, match="not valid JSON"):
        reader.read(
            _write(tmp_path, None, name="a08_s03_e01_v02", text=text[: len(text) // 2]), spec
        )


def _mutate(doc: dict, frame: int, fn) -> dict:
    doc = json.loads(json.dumps(doc))
    fn(doc["skeletons"][frame])
    return doc


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda f: f.pop(), r"expected 20 joints x 3 numbers, found 19 joints \(frame 3\)"),
        (lambda f: f.append([0, 0, 0]), "found 21 joints"),
        (lambda f: f[4].pop(), "joint 4: expected 3 numbers"),
        (lambda f: f[4].append(1.0), "joint 4: expected 3 numbers"),
        (lambda f: f[4].__setitem__(1, "0.5"), "joint 4: expected 3 numbers"),
        (lambda f: f[4].__setitem__(1, None), "joint 4: expected 3 numbers"),
        (lambda f: f[4].__setitem__(1, True), "joint 4: expected 3 numbers"),
        (lambda f: f.__setitem__(slice(None), [1.0] * 20), "joint 0: expected 3 numbers"),
    ],
)
def test_wrong_shapes_name_the_frame(tmp_path, reader, spec, change, pattern):
    doc = _mutate(_doc(), 3, change)
    path = _write(tmp_path, doc)
    with pytest.raises(ParseError, match=pattern) as info:
        reader.read(path, spec)
    assert info.value.location.path == str(path) and info.value.location.frame == 3


def test_frame_that_is_not_a_list(tmp_path, reader, spec):
    doc = _doc()
    doc["skeletons"][2] = {"x": 1}
    with pytest.raises(ParseError, match="frame 2"):
        reader.read(_write(tmp_path, doc), spec)


@pytest.mark.parametrize(
    ("edit", "error", "pattern"),
    [
        (lambda d: d.pop("label"), ParseError, "missing label"),
        (lambda d: d.__setitem__("skeletons", {}), ParseError, "expected a list of frames"),
        (lambda d: d.__setitem__("skeletons", []), EmptySampleError, "no frame"),
        (lambda d: d.__setitem__("label", "7"), ParseError, "label: expected an integer"),
        (
            lambda d: d.__setitem__("label", 8),
            ReadError,
            "label 8 disagrees with the name.*label 7",
        ),
        (
            lambda d: d.__setitem__("file_name", "a08_s03_e01_v03"),
            ReadError,
            "does not match the file name",
        ),
    ],
)
def test_key_and_label_checks(tmp_path, reader, spec, edit, error, pattern):
    doc = _doc()
    edit(doc)
    with pytest.raises(error, match=pattern):
        reader.read(_write(tmp_path, doc, name="a08_s03_e01_v02"), spec)


def test_name_outside_the_label_map(tmp_path, reader, spec):
    doc = _doc(name="a07_s01_e00_v01", label=7)  # there is no action a07 in NW-UCLA
    raw = reader.read(_write(tmp_path, doc), spec)[0]  # convert skips it as no_label
    assert raw.label == 6 and spec.label_of(spec.parse_name(raw.name), raw.label) is None
    doc = _doc(name="walk_1", label=1)
    with pytest.raises(ReadError, match="sample_name pattern"):
        reader.read(_write(tmp_path, doc), spec)


def test_top_level_not_an_object(tmp_path, reader, spec):
    with pytest.raises(ParseError, match="expected a JSON object, found array"):
        reader.read(_write(tmp_path, None, name="a01_s01_e00_v01", text="[1, 2]"), spec)


def test_cut_anywhere_is_a_parse_error(tmp_path, reader, spec):
    text = json.dumps(_doc(frames=1))
    for cut in range(0, len(text), 5):
        path = _write(tmp_path, None, name="a08_s03_e01_v02", text=text[:cut])
        with pytest.raises(ParseError) as info:
            reader.read(path, spec)
        assert info.value.location.path == str(path)


def test_spec_taking_the_label_from_the_file(tmp_path, reader):
    raw = yaml.safe_load((spec_dir() / "ucla20.yaml").read_text())
    raw["sample_name"]["label"] = {"source": "reader"}
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "data").mkdir()
    [sample] = reader.read(_write(tmp_path / "data", _doc(label=3)), load_spec(path))
    assert sample.label == 2
