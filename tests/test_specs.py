"""Joint specs: the shipped files, the validation messages, split rules, names and labels."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from s2i_prep.errors import SpecError, UnknownFormatError
from s2i_prep.readers import list_readers
from s2i_prep.specs import PART_NAMES, list_specs, load_spec, spec_dir

DOCS = Path(__file__).resolve().parents[1] / "docs" / "SPECS.md"

# FORMATS.md 1.6: the NTU-60 training performers, and those NTU-120 adds.
NTU60_TRAIN = [1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38]
NTU120_EXTRA = [
    45,
    46,
    47,
    49,
    50,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    70,
    74,
    78,
    80,
    81,
    82,
    83,
    84,
    85,
    86,
    89,
    91,
    92,
    93,
    94,
    95,
    97,
    98,
    100,
    103,
]


def _raw(name: str) -> dict:
    return yaml.safe_load((spec_dir() / f"{name}.yaml").read_text())


def _load(tmp_path: Path, raw: dict):
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_spec(path)


@pytest.mark.parametrize("name", ["ntu25", "pku25", "ucla20"])
def test_shipped_specs_load(name):
    spec = load_spec(name)
    assert name in list_specs() and spec.format == name
    assert spec.reader in list_readers()
    assert sorted(spec.column_order.tolist()) == list(range(spec.num_joints))
    assert len(spec.parts) == len(PART_NAMES)
    assert spec.parents.count(-1) == 1 and spec.splits


def test_pku25_shares_the_ntu_skeleton():
    ntu, pku = load_spec("ntu25"), load_spec("pku25")
    for attr in ("joints", "parents", "parts", "centre", "align_spine", "align_shoulders", "dims"):
        assert getattr(pku, attr) == getattr(ntu, attr), attr
    assert (pku.reader, pku.body_selection, pku.max_persons) == ("pku_txt", "first", 2)
    assert pku.label_rule == {"source": "reader"}
    assert {"start", "end", "confidence", "clip"} <= set(pku.fields)
    assert [s.name for s in pku.splits] == ["pku1-xsub", "pku1-xview", "pku2-xsub", "pku2-xview"]


def test_unknown_format_suggests_the_closest():
    with pytest.raises(UnknownFormatError, match="Did you mean 'ntu25'"):
        load_spec("ntu26")


def test_user_spec_by_path_and_yaml_round_trip(tmp_path):
    raw = _raw("ucla20")
    raw["format"] = "my20"
    spec = _load(tmp_path, raw)
    assert spec.format == "my20" and spec.source == str(tmp_path / "my.yaml")
    again = tmp_path / "again.yaml"
    again.write_text(spec.to_yaml_text())
    assert load_spec(again).digest() == spec.digest()
    assert load_spec("ucla20").digest() != spec.digest()


# ---------------------------------------------------------------------------------------------
# Validation: each message names the key and the problem.


def _parent(name):
    def edit(raw):
        for j in raw["joints"]:
            if j["name"] == name[0]:
                j["parent"] = name[1]

    return edit


CASES = {
    "unknown joint name": (
        _parent(("head", "nek")),
        "joints[3].parent",
        "unknown joint name 'nek'",
    ),
    "unknown joint in a part": (
        lambda r: r["parts"]["torso"].__setitem__(0, "heda"),
        "parts.torso[0]",
        "unknown joint name 'heda'",
    ),
    "part misses a joint": (
        lambda r: r["parts"]["right_leg"].remove("foot_right"),
        "parts",
        "joints in no part: foot_right",
    ),
    "part repeats a joint": (
        lambda r: r["parts"]["left_arm"].append("head"),
        "parts.left_arm[6]",
        "joint 'head' repeats (already in torso)",
    ),
    "cycle in parents": (
        lambda r: (_parent(("spine_base", "hip_left"))(r), _parent(("hip_left", "spine_base"))(r)),
        "joints[0].parent",
        "cycle in parents",
    ),
    "no root": (
        _parent(("spine_shoulder", "neck")),
        "joints",
        "expected exactly one root",
    ),
    "split over an unknown field": (
        lambda r: r["splits"]["ntu60-xview"]["train"].__setitem__("cam", [2, 3]),
        "splits.ntu60-xview.train.cam",
        "unknown field 'cam'",
    ),
    "split value of the wrong kind": (
        lambda r: r["splits"]["ntu120-xset"]["train"].__setitem__("setup", "evens"),
        "splits.ntu120-xset.train.setup",
        "expected 'even', 'odd'",
    ),
    "unknown top-level key": (
        lambda r: r.__setitem__("colour", "red"),
        "colour",
        "unknown key",
    ),
    "missing required key": (
        lambda r: r.pop("centre"),
        "centre",
        "missing required key",
    ),
    "bad regex": (
        lambda r: r["sample_name"].__setitem__("pattern", r"S(?P<setup>\d{3}C(?P<camera>\d{3})"),
        "sample_name.pattern",
        "invalid regular expression",
    ),
    "label over an unknown field": (
        lambda r: r["sample_name"].__setitem__("label", {"field": "actoin", "offset": -1}),
        "sample_name.label.field",
        "unknown field 'actoin'",
    ),
    "parts out of order": (
        lambda r: r.__setitem__("parts", dict(reversed(list(r["parts"].items())))),
        "parts",
        "in this order",
    ),
    "bad body selection": (
        lambda r: r.__setitem__("body_selection", "largest"),
        "body_selection",
        "expected one of",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validation_errors_name_key_and_problem(tmp_path, case):
    edit, key, problem = CASES[case]
    raw = _raw("ntu25")
    edit(raw)
    with pytest.raises(SpecError) as info:
        _load(tmp_path, raw)
    err = info.value
    assert err.key == key
    assert problem in err.problem
    assert str(err) == f"{tmp_path / 'my.yaml'}: {key}: {err.problem}"


def test_invalid_yaml_and_non_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("format: [ntu25\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(path)


# ---------------------------------------------------------------------------------------------
# Split rules on a synthetic metadata table


@pytest.fixture(scope="module")
def ntu_table():
    """Every setup, camera and performer of NTU-120 with a few actions on both sides of 60."""
    rows = np.array(
        list(itertools.product(range(1, 33), range(1, 4), range(1, 107), [1], [1, 59, 60, 61, 120]))
    )
    return dict(zip(["setup", "camera", "subject", "replication", "action"], rows.T, strict=True))


def _expected_ntu(split: str, m: dict) -> tuple[np.ndarray, np.ndarray]:
    ntu60 = (m["setup"] <= 17) & (m["action"] <= 60)
    if split == "ntu60-xsub":
        train = np.isin(m["subject"], NTU60_TRAIN)
        return ntu60 & train, ntu60 & ~train
    if split == "ntu60-xview":
        return ntu60 & (m["camera"] != 1), ntu60 & (m["camera"] == 1)
    if split == "ntu120-xsub":
        train = np.isin(m["subject"], NTU60_TRAIN + NTU120_EXTRA)
        return train, ~train
    assert split == "ntu120-xset"
    return m["setup"] % 2 == 0, m["setup"] % 2 == 1


@pytest.mark.parametrize("split", ["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset"])
def test_ntu_split_partitions(ntu_table, split):
    rule = next(r for r in load_spec("ntu25").splits if r.name == split)
    train, test = rule.indices(ntu_table)
    want_train, want_test = _expected_ntu(split, ntu_table)
    assert np.array_equal(train, np.flatnonzero(want_train))
    assert np.array_equal(test, np.flatnonzero(want_test))
    assert not np.intersect1d(train, test).size
    if split.startswith("ntu120"):
        assert train.size + test.size == len(ntu_table["setup"])  # NTU-120 splits cover everything
    else:
        assert not np.isin(np.flatnonzero(ntu_table["setup"] > 17), np.r_[train, test]).any()


def test_ntu120_xsub_has_53_training_performers():
    rule = next(r for r in load_spec("ntu25").splits if r.name == "ntu120-xsub")
    subjects = np.arange(1, 107)
    train, test = rule.indices(
        {k: subjects for k in ("setup", "camera", "subject", "replication", "action")}
    )
    assert train.size == 53 and test.size == 53


def test_ucla_split():
    spec = load_spec("ucla20")
    names = [f"a{a:02d}_s{s:02d}_e00_v{v:02d}" for a in (1, 12) for s in (1, 10) for v in (1, 2, 3)]
    rows = [spec.parse_name(n) for n in names]
    meta = {k: np.array([r[k] for r in rows]) for k in spec.fields}
    [rule] = spec.splits
    train, test = rule.indices(meta)
    assert [names[i][-3:] for i in train] == ["v01", "v02"] * 4
    assert [names[i][-3:] for i in test] == ["v03"] * 4


# ---------------------------------------------------------------------------------------------
# Names and labels


def test_ntu_names_and_labels():
    spec = load_spec("ntu25")
    meta = spec.parse_name("S001C002P003R002A013")
    assert meta == {"setup": 1, "camera": 2, "subject": 3, "replication": 2, "action": 13}
    assert spec.label_of(meta) == 12
    assert spec.label_of(spec.parse_name("S032C003P106R002A120")) == 119
    for bad in ("S001C002P003R002A13", "S001C002P003R002A013_x", "s001c002p003r002a013"):
        assert spec.parse_name(bad) is None


def test_ucla_label_map():
    spec = load_spec("ucla20")
    labels = [spec.label_of(spec.parse_name(f"a{a:02d}_s01_e00_v01")) for a in range(1, 13)]
    assert labels == [0, 1, 2, 3, 4, 5, None, 6, 7, None, 8, 9]


def test_pku_names_both_phases():
    spec = load_spec("pku25")
    assert spec.parse_name("0002-L_004") == {
        "video": 2,
        "group": -1,
        "subject": -1,
        "view": 1,
        "clip": 4,
    }
    assert spec.parse_name("A10N08-R_012") == {
        "video": -1,
        "group": 10,
        "subject": 8,
        "view": 3,
        "clip": 12,
    }
    assert spec.parse_name("0364-M_000")["view"] == 2
    for bad in ("0002-L", "0002-X_004", "A10N08-L_12", "B10N08-L_012"):
        assert spec.parse_name(bad) is None
    assert spec.label_of(spec.parse_name("0002-L_004"), reader_label=13) == 13


# ---------------------------------------------------------------------------------------------
# docs/SPECS.md


def test_documented_example_loads(tmp_path):
    """The annotated example in docs/SPECS.md is a valid spec."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert blocks, "docs/SPECS.md has no ```yaml block"
    path = tmp_path / "example.yaml"
    path.write_text(blocks[0])
    spec = load_spec(path)
    assert spec.num_joints > 0 and spec.splits


def test_docs_list_every_shipped_spec_and_split():
    text = DOCS.read_text()
    for name in list_specs():
        assert f"`{name}`" in text
        for rule in load_spec(name).splits:
            assert f"`{rule.name}`" in text
