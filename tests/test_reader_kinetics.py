"""Kinetics-skeleton reader (``kinetics_json``, spec ``openpose18``): real files, generated files,
person ranking against a twin of st-gcn's feeder, the release layout and its label files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from s2i_prep.bodies import select_bodies
from s2i_prep.cli import cli
from s2i_prep.errors import EmptySampleError, ParseError, ReadError
from s2i_prep.readers import get_reader
from s2i_prep.specs import load_spec
from s2i_prep.synthetic import make_job, write_synthetic

SPEC = load_spec("openpose18")
REAL = ("cU1fyH2QssA", "kkwHdOvpCoc", "sAP-xS5P0Bw")


def stgcn_feeder_twin(doc: dict, people_in: int = 5, people_out: int = 2) -> np.ndarray:
    """st-gcn ``Feeder_kinetics.__getitem__`` without augmentation and centring, as numpy:
    (3, T, 18, people_out) with x, y, score; frame slot k holds frame_index k."""
    frames = max(f["frame_index"] for f in doc["data"]) + 1
    data = np.zeros((3, frames, 18, people_in))
    for frame in doc["data"]:
        k = frame["frame_index"]
        for m, person in enumerate(frame["skeleton"]):
            if m >= people_in:
                break
            data[0, k, :, m] = person["pose"][0::2]
            data[1, k, :, m] = person["pose"][1::2]
            data[2, k, :, m] = person["score"]
    data[0][data[2] == 0] = 0
    data[1][data[2] == 0] = 0
    order = (-data[2].sum(axis=1)).argsort(axis=1)
    for t, s in enumerate(order):
        data[:, t, :, :] = data[:, t, :, s].transpose((1, 2, 0))
    return data[:, :, :, :people_out]


def _compare_with_stgcn(doc: dict, skel) -> None:
    ref = stgcn_feeder_twin(doc)
    for i, t in enumerate(skel.frame_index):
        for m in range(ref.shape[3]):
            want_xy = ref[:2, t + 1, :, m].T.astype(np.float32)
            want_score = ref[2, t + 1, :, m]
            got = skel.joints[m, i] if m < skel.num_persons else np.full((18, 2), np.nan)
            known = want_score > 0
            np.testing.assert_array_equal(got[known], want_xy[known])
            assert np.isnan(got[~known]).all()
    # frames st-gcn fills for nobody are exactly the ones body selection drops
    anyone = ref[2, 1:].sum(axis=(1, 2)) > 0
    np.testing.assert_array_equal(np.flatnonzero(anyone), skel.frame_index)


# ------------------------------------------------------------------------------ real files


@pytest.mark.realdata
@pytest.mark.parametrize("stem", REAL)
def test_real_files_shapes_people_and_empty_frames(realdata, stem):
    path = realdata / "kinetics_skeleton" / "train" / f"{stem}.json"
    doc = json.loads(path.read_text())
    (raw,) = get_reader("kinetics_json").read(path, SPEC)
    frames = [f for f in doc["data"]]
    most = max(len(f["skeleton"]) for f in frames)
    assert raw.joints.shape == (min(most, 5), 299, 18, 2) and raw.joints.dtype == np.float32
    assert raw.joint_fields["score"].shape == raw.joints.shape[:3]
    assert raw.label == doc["label_index"] and raw.meta == {"part": 0}
    # empty frames stay in the raw skeleton, as frames where nobody is present
    empty = [f["frame_index"] - 1 for f in frames if not f["skeleton"]]
    assert not raw.present[:, empty].any()
    crowded = [f["frame_index"] - 1 for f in frames if len(f["skeleton"]) >= 2]
    if crowded:
        assert raw.present[1, crowded].all()
    # missing joints (score 0) are NaN, never the (0, 0) of the file
    score = raw.joint_fields["score"]
    assert np.isnan(raw.joints[score == 0]).all() and not np.isnan(raw.joints[score > 0]).any()
    skel = select_bodies(raw, SPEC)
    assert skel.num_persons == min(most, 2)
    _compare_with_stgcn(doc, skel)


@pytest.mark.realdata
def test_real_file_with_one_nonempty_frame(realdata):
    path = realdata / "kinetics_skeleton" / "train" / "sAP-xS5P0Bw.json"
    (raw,) = get_reader("kinetics_json").read(path, SPEC)
    skel = select_bodies(raw, SPEC)
    assert skel.joints.shape == (1, 1, 18, 2) and skel.frame_index.tolist() == [175]


@pytest.mark.realdata
def test_real_labels_agree_with_the_label_index(realdata):
    """Every class name's label_index in the files equals the one kinetics_val_label.json uses."""
    table = json.loads((realdata / "kinetics_skeleton/labels_trainval/kinetics_val_label.json").read_text())
    index_of = {}
    for entry in table.values():
        assert index_of.setdefault(entry["label"], entry["label_index"]) == entry["label_index"]
    assert len(index_of) == 400 and sorted(index_of.values()) == list(range(400))
    reader = get_reader("kinetics_json")
    for stem in REAL:
        path = realdata / "kinetics_skeleton" / "train" / f"{stem}.json"
        doc = json.loads(path.read_text())
        assert index_of[doc["label"]] == doc["label_index"] == reader.read(path, SPEC)[0].label


def _release(tmp_path: Path, realdata: Path, entries: dict) -> Path:
    """A st-gcn release layout holding the real files as kinetics_val/ and a label file."""
    root = tmp_path / "kinetics-skeleton"
    (root / "kinetics_val").mkdir(parents=True)
    for stem in REAL:
        shutil.copy(realdata / "kinetics_skeleton" / "train" / f"{stem}.json", root / "kinetics_val")
    (root / "kinetics_val_label.json").write_text(json.dumps(entries))
    return root


def _entries(realdata: Path) -> dict:
    out = {}
    for stem in REAL:
        doc = json.loads((realdata / "kinetics_skeleton/train" / f"{stem}.json").read_text())
        out[stem] = {"has_skeleton": True, "label": doc["label"], "label_index": doc["label_index"]}
    return out


@pytest.mark.realdata
def test_release_layout_converts_with_its_split(tmp_path, realdata):
    root = _release(tmp_path, realdata, _entries(realdata))
    out = tmp_path / "k.zarr"
    res = CliRunner().invoke(cli, ["convert", "--format", "openpose18", "--workers", "0", "-q",
                                   str(root), str(out)])
    assert res.exit_code == 0, res.output
    import zarr

    g = zarr.open_group(str(out), mode="r")
    assert g.attrs["report"]["counts"]["samples"] == 3
    assert list(np.asarray(g["splits/kinetics/test"][:])) == [0, 1, 2]
    assert len(g["splits/kinetics/train"][:]) == 0


@pytest.mark.realdata
@pytest.mark.parametrize(
    "edit, error, pattern",
    [
        (lambda e: e.pop("kkwHdOvpCoc"), ReadError, "not listed in kinetics_val_label.json"),
        (lambda e: e["kkwHdOvpCoc"].update(has_skeleton=False), EmptySampleError, "has_skeleton"),
        (lambda e: e["kkwHdOvpCoc"].update(label_index=7), ReadError, "disagrees"),
    ],
)
def test_label_file_is_checked(tmp_path, realdata, edit, error, pattern):
    entries = _entries(realdata)
    edit(entries)
    root = _release(tmp_path, realdata, entries)
    reader = get_reader("kinetics_json")
    reader.discover(root)
    with pytest.raises(error, match=pattern):
        reader.read(root / "kinetics_val" / "kkwHdOvpCoc.json", SPEC)


@pytest.mark.realdata
def test_class_name_with_another_index_in_the_label_file(tmp_path, realdata):
    entries = _entries(realdata)
    entries["other"] = {"has_skeleton": True, "label": "dining", "label_index": 5}
    entries = {"other": entries.pop("other"), **entries}
    root = _release(tmp_path, realdata, entries)
    with pytest.raises(ReadError, match="class 'dining' has label_index 91 here but 5"):
        get_reader("kinetics_json").read(root / "kinetics_val" / "cU1fyH2QssA.json", SPEC)


# ------------------------------------------------------------------------------ generated files


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("kinetics")
    summary = write_synthetic("openpose18", out, 24, seed=3, frames=(20, 40))
    return out, summary


def test_generated_release_layout_and_labels(synthetic):
    out, summary = synthetic
    reader = get_reader("kinetics_json", person_order="file")
    paths = reader.discover(out)
    assert len(paths) == 24 and not any(p.name.endswith("_label.json") for p in paths)
    job = make_job("openpose18", 24, seed=3, frames=(20, 40))
    for info in summary.samples[:8]:
        truth = job.render(summary.samples.index(info))
        (raw,) = reader.read(out / info.path, SPEC)
        assert raw.name == info.name and raw.label == info.label
        assert raw.meta["part"] == (info.path.startswith("kinetics_val"))
        # file order: slot k of frame t is the k-th person the file lists
        for p in range(truth.order.shape[1]):
            for t in np.flatnonzero(truth.order[:, p] >= 0):
                k = truth.order[t, p]
                seen = np.where(truth.score[p, t] > 0, True, False)
                np.testing.assert_allclose(raw.joints[k, t][seen], truth.xy[p, t][seen], atol=6e-4)
                assert np.isnan(raw.joints[k, t][~seen]).all()


def test_person_orders(synthetic):
    out, summary = synthetic
    crowded = [s for s in summary.samples if "bystander" in s.features or "shuffled_people" in s.features]
    assert crowded
    path = out / crowded[0].path
    doc = json.loads(path.read_text())
    by = {o: get_reader("kinetics_json", person_order=o).read(path, SPEC)[0]
          for o in ("stgcn", "clip", "file")}
    score = {o: r.joint_fields["score"].sum(axis=2) for o, r in by.items()}
    # stgcn: within every frame, slots are ranked by summed score
    assert (np.diff(score["stgcn"], axis=0) <= 1e-6).all()
    _compare_with_stgcn(doc, select_bodies(by["stgcn"], SPEC))
    # clip: slots are file positions ranked by their score over the clip
    totals = score["clip"].sum(axis=1)
    assert (np.diff(totals) <= 1e-3).all()
    assert sorted(totals.tolist()) == sorted(score["file"].sum(axis=1).tolist())


def test_bad_option_and_bad_files(tmp_path):
    with pytest.raises(ReadError, match="person_order must be one of stgcn, clip, file"):
        get_reader("kinetics_json", person_order="best")
    reader = get_reader("kinetics_json")
    cases = {
        "nodata": ('{"label": "x", "label_index": 1}', ParseError, "missing data"),
        "zero": ('{"data": [{"frame_index": 0, "skeleton": []}], "label_index": 1}', ParseError,
                 "1-based"),
        "twice": ('{"data": [{"frame_index": 1, "skeleton": []}, {"frame_index": 1, "skeleton": []}],'
                  ' "label_index": 1}', ParseError, "frame_index 1 repeats"),
        "short": ('{"data": [{"frame_index": 1, "skeleton": [{"pose": [0.1, 0.2], "score": [1]}]}],'
                  ' "label_index": 1}', ParseError, "expected 36 numbers"),
        "empty": ('{"data": [], "label_index": 1}', EmptySampleError, "no frame"),
        "huge": ('{"data": [{"frame_index": 100000000, "skeleton": []}], "label_index": 1}',
                 ParseError, r"1\.\.100000"),
        "text": ('{"data": [], "label_index": "3"}', ParseError, "label_index"),
    }
    for stem, (text, error, pattern) in cases.items():
        path = tmp_path / f"{stem}.json"
        path.write_text(text)
        with pytest.raises(error, match=pattern):
            reader.read(path, SPEC)
    # every frame empty: read succeeds, body selection reports it
    path = tmp_path / "nobody.json"
    path.write_text('{"data": [{"frame_index": 1, "skeleton": []}], "label_index": 1}')
    (raw,) = reader.read(path, SPEC)
    with pytest.raises(EmptySampleError, match="no skeleton"):
        select_bodies(raw, SPEC)


def test_align_is_refused_for_2d(tmp_path, synthetic):
    out, _ = synthetic
    res = CliRunner().invoke(cli, ["convert", "--format", "openpose18", "--align", str(out),
                                   str(tmp_path / "x.zarr")])
    assert res.exit_code == 2
    assert "spec 'openpose18' is 2-D" in res.output and "--align cannot be used" in res.output
