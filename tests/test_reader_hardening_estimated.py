"""The issue-9 standard for the estimated-pose readers (Kinetics-skeleton, Toyota Smarthome):
located errors with JSON-shown values and JSON paths, out-of-float32 and NaN/inf by the common
rule, bounded memory for hostile sizes, and a batch conversion that keeps the good files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from s2i_prep.cli import cli
from s2i_prep.errors import ParseError, ReadError
from s2i_prep.readers import get_reader
from s2i_prep.readers.persongrid import MAX_GRID_JOINTS
from s2i_prep.specs import load_spec
from s2i_prep.synthetic import write_synthetic

KINETICS = load_spec("openpose18")
TOYOTA = load_spec("toyota13")
POSE = ", ".join(["0.5"] * 36)
SCORE = ", ".join(["0.9"] * 18)


def _kinetics(tmp_path: Path, frames: str, label: str = "7", name: str = "vid") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text('{"data": [' + frames + '],\n "label": "x", "label_index": ' + label + "}")
    return path


def _person(pose: str = POSE, score: str = SCORE) -> str:
    return '{"pose": [' + pose + '], "score": [' + score + "]}"


def _frame(k: int | str, *people: str) -> str:
    return '{"frame_index": ' + str(k) + ', "skeleton": [' + ", ".join(people) + "]}"


def _read_kinetics(path: Path, **options):
    return get_reader("kinetics_json", **options).read(path, KINETICS)


@pytest.mark.parametrize(
    ("pose", "message"),
    [
        ("1e39", r"value out of range: data\[1\]\.skeleton\[0\]\.pose\[3\] 1e\+39 is beyond float32"),
        ("1e999", r"value out of range: data\[1\]\.skeleton\[0\]\.pose\[3\] \(a literal beyond float64\)"),
        ("-3.4028235677973366e38", r"value out of range: data\[1\]\.skeleton\[0\]\.pose\[3\]"),
        ("1" + "0" * 50, r":2:\d+: value out of range: data\[1\]\.skeleton\[0\]\.pose\[3\] 1000"),
        ("9" * 5000, r":2:\d+: value out of range: data\[1\]\.skeleton\[0\]\.pose\[3\] 9999"),
        ("NaN", r":2:\d+: NaN is not accepted: numbers must be finite"),
        ("-Infinity", r":2:\d+: -Infinity is not accepted"),
        ("true", r"data\[1\]\.skeleton\[0\]\.pose\[3\]: expected a number, found true"),
        ("null", r"pose\[3\]: expected a number, found null"),
        ('"7"', r'pose\[3\]: expected a number, found "7"'),
    ],
)
def test_kinetics_values_are_checked_with_json_paths(tmp_path, pose, message):
    values = ["0.5"] * 36
    values[3] = pose
    path = _kinetics(tmp_path, _frame(1) + ",\n" + _frame(2, _person(", ".join(values))))
    with pytest.raises(ParseError, match=message) as err:
        _read_kinetics(path)
    assert str(err.value).startswith(str(path))
    # the largest float32 and the values that round to it are accepted exactly
    values[3] = "3.4028235677973362e38"
    path = _kinetics(tmp_path, _frame(1, _person(", ".join(values))))
    assert _read_kinetics(path)[0].joints[0, 0, 1, 1] == np.finfo(np.float32).max


@pytest.mark.parametrize(
    ("frames", "label", "message"),
    [
        (_frame(1, _person()), "true", r":2:\d+: label_index: expected an integer in 0\.\.2147483647, found true"),
        (_frame(1, _person()), "-1", r"label_index: expected an integer .* found -1"),
        (_frame(1, _person()), "2147483648", r"found 2147483648"),
        (_frame(10**12, _person()), "7", r"data\[0\]\.frame_index: expected an integer in 1\.\.100000 "
                                         r"\(1-based\), found 1000000000000"),
        (_frame("1.0", _person()), "7", r"data\[0\]\.frame_index: .* found 1\.0"),
        (_frame(1, "[1, 2]"), "7", r'data\[0\]\.skeleton\[0\]: expected an object with "pose", found \[1, 2\]'),
        (_frame(1, '{"pose": null, "score": []}'), "7", r"data\[0\]\.skeleton\[0\]\.pose: expected an "
                                                         r"array of 36 numbers, found null"),
        (_frame(1, '{"score": []}'), "7", r'data\[0\]\.skeleton\[0\]: missing "pose"'),
        (_frame(1, _person(score=SCORE + ", 1")), "7", r"skeleton\[0\]\.score: expected an array of 18 "
                                                        r"numbers, found 19 items"),
        ('{"frame_index": 1, "skeleton": {}}', "7", r"data\[0\]\.skeleton: expected an array of people, found \{\}"),
        ('"frame"', "7", r'data\[0\]: expected \{"frame_index", "skeleton"\}, found "frame"'),
    ],
)
def test_kinetics_messages_show_json_and_name_the_place(tmp_path, frames, label, message):
    path = _kinetics(tmp_path, frames, label)
    with pytest.raises(ParseError, match=message) as err:
        _read_kinetics(path)
    assert str(err.value).startswith(str(path))
    assert not any(word in str(err.value) for word in ("None", "True", "found list", "found dict"))


def test_hostile_sizes_are_bounded_located_errors(tmp_path):
    crowd = ", ".join([_person()] * 3000)
    # thousands of people in one frame: st-gcn keeps 5; file order keeps them all (1 frame: small)
    path = _kinetics(tmp_path, _frame(1, crowd))
    assert _read_kinetics(path)[0].joints.shape == (5, 1, 18, 2)
    assert _read_kinetics(path, person_order="file")[0].joints.shape == (3000, 1, 18, 2)
    # ... but not across 100,000 frames: a grid of 5.4 G joints is never allocated
    path = _kinetics(tmp_path, _frame(1, crowd) + ", " + _frame(100_000), name="crowd")
    with pytest.raises(ReadError, match=r"3000 people in one frame \(data\[0\] lists 3000\) x 100000 "
                                        r"frames is a grid of 5,400,000,000 joints, beyond the bound"):
        _read_kinetics(path, person_order="file")
    assert 5 * 100_000 * 18 > MAX_GRID_JOINTS  # st-gcn's 5 slots over 100,000 frames: refused too
    with pytest.raises(ReadError, match="beyond the bound"):
        _read_kinetics(path)
    # 100,000 frames with one person fit (real long videos): 1.8 M joints
    path = _kinetics(tmp_path, _frame(1, _person()) + ", " + _frame(100_000), name="long")
    assert _read_kinetics(path)[0].joints.shape == (1, 100_000, 18, 2)


def test_memory_of_a_sparse_long_clip_is_its_grid(tmp_path):
    """The grid is the only large allocation: absent joints are set without index arrays (a
    boolean index cost 24 bytes per joint, 132 MB for this file, before the fix)."""
    import tracemalloc

    path = _kinetics(tmp_path, _frame(1, _person(), _person(), _person()) + ", " + _frame(69_000))
    _read_kinetics(_kinetics(tmp_path, _frame(1, _person()), name="warm"))
    tracemalloc.start()
    try:
        (raw,) = _read_kinetics(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    grid = raw.joints.nbytes + raw.joint_fields["score"].nbytes  # 3 x 69,000 x 18: 45 MB
    assert peak < 1.25 * grid, (peak, grid)


def test_label_files_show_json(tmp_path):
    root = tmp_path / "release"
    (root / "kinetics_train").mkdir(parents=True)
    _kinetics(root / "kinetics_train", _frame(1, _person()))
    (root / "kinetics_train_label.json").write_text(
        '{"vid": {"has_skeleton": true, "label": "x", "label_index": 7},\n'
        ' "other": {"has_skeleton": null, "label": "y", "label_index": 3}}'
    )
    with pytest.raises(ParseError, match=r'_label\.json:2:\d+: "other": expected .* found \{"has_skeleton": null'):
        get_reader("kinetics_json").discover(root)


def _toyota(tmp_path: Path, det: str, name: str = "Cook.Cut_p02_r00_v02_c03") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text('{"njts": 13,\n "frames": [[], [' + det + "]]}")
    return path


@pytest.mark.parametrize(
    ("pose", "score", "message"),
    [
        ("1e39", "1.0", r"value out of range: frames\[1\]\[0\]\.pose3d\[3\] 1e\+39 is beyond float32"),
        ("0.5", "1e39", r"value out of range: frames\[1\]\[0\]\.cumscore 1e\+39"),
        ("0.5", '"x"', r'frames\[1\]\[0\]\.cumscore: expected a number, found "x"'),
        ("0.5", "1" + "0" * 60, r":2:\d+: frames\[1\]\[0\]\.cumscore: expected a number, found 1000"),
        ("NaN", "1.0", r":2:\d+: NaN is not accepted"),
        ("false", "1.0", r"frames\[1\]\[0\]\.pose3d\[3\]: expected a number, found false"),
    ],
)
def test_toyota_values_are_checked_with_json_paths(tmp_path, pose, score, message):
    values = ["0.5"] * 39
    values[3] = pose
    det = '{"pose3d": [' + ", ".join(values) + '], "pose2d": [], "cumscore": ' + score + "}"
    path = _toyota(tmp_path, det)
    with pytest.raises(ParseError, match=message) as err:
        get_reader("toyota_json").read(path, TOYOTA)
    assert str(err.value).startswith(str(path))


def test_toyota_shape_messages_show_json(tmp_path):
    reader = get_reader("toyota_json")
    for det, message in [
        ("null", r'frames\[1\]\[0\]: expected an object with "pose3d", found null'),
        ('{"pose2d": []}', r'frames\[1\]\[0\]: missing "pose3d"'),
        ('{"pose3d": [1, 2]}', r"frames\[1\]\[0\]\.pose3d: expected an array of 39 numbers, found 2 items"),
    ]:
        with pytest.raises(ParseError, match=message):
            reader.read(_toyota(tmp_path, det), TOYOTA)
    path = tmp_path / "n.json"
    path.write_text('{"njts": true, "frames": []}')
    with pytest.raises(ParseError, match=r":1:\d+: njts: expected 13, found true"):
        reader.read(path, TOYOTA)


@pytest.mark.slow
def test_convert_keeps_good_kinetics_files_and_reports_each_bad_one(tmp_path):
    """End to end: a release folder with broken files among good ones converts the good ones
    and names every bad file with its reason (file, place, what was found)."""
    from s2i_prep.store.validation import inspect_dataset

    raw = tmp_path / "kinetics"
    write_synthetic("openpose18", raw, 8, seed=11, frames=(10, 20))
    files = sorted(p for p in raw.rglob("*.json") if not p.name.endswith("_label.json"))
    good = files[:]
    breakage = {
        "invalid JSON": (lambda t: t[: len(t) // 2], "not valid JSON"),
        "NaN": (lambda t: t.replace("0.", "NaN, 0.", 1) if "0." in t else t, "NaN is not accepted"),
        "out of range": (lambda t: _set_first_pose(t, 1e39), "value out of range"),
        "frame_index": (lambda t: t.replace('"frame_index": 1,', '"frame_index": 1000000000000,', 1),
                        "found 1000000000000"),
        "label": (lambda t: t.replace('"label_index": ', '"label_index": true, "x": ', 1), "found true"),
    }
    bad = {}
    for (what, (edit, reason)), path in zip(breakage.items(), files[::-1]):
        text = path.read_text()
        path.write_text(edit(text))
        bad[path.stem] = (what, reason)
        good.remove(path)
    out = tmp_path / "k.zarr"
    res = CliRunner().invoke(cli, ["convert", "--format", "openpose18", "--workers", "0",
                                   str(raw), str(out)])
    assert res.exit_code in (0, 3), res.output
    assert "Traceback" not in res.output
    info = inspect_dataset(out)
    assert info["num_samples"] == len(good) == len(files) - len(bad)
    skipped = {Path(r["path"]).stem: r for r in info["skipped"]}
    assert set(skipped) == set(bad), skipped
    for stem, (what, reason) in bad.items():
        record = skipped[stem]
        assert reason in record["reason"], (what, record)
        assert record["kind"] == "ParseError", (what, record)
        assert stem in record["path"]
        # every reason is also shown to the user
        assert stem in res.output, res.output


def _set_first_pose(text: str, value: float) -> str:
    doc = json.loads(text)
    for frame in doc["data"]:
        if frame["skeleton"]:
            frame["skeleton"][0]["pose"][0] = value
            return json.dumps(doc)
    return text.replace('"skeleton": []', '"skeleton": [{"pose": [' + str(value) + ", " + ", ".join(
        ["0.5"] * 35) + '], "score": [' + SCORE + "]}]", 1)
