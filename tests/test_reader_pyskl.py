"""pyskl / mmaction2 annotation pickles: trust, restricted unpickling, the table-of-contents pickle,
2-D (generated COCO-17) and 3-D (NTU) input, inferred formats and the pickle's splits."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from s2i_prep.bodies import select_bodies
from s2i_prep.cli import cli, main
from s2i_prep.errors import ParseError, S2IError
from s2i_prep.readers import get_reader, reader_for_input
from s2i_prep.readers.pyskl_pickle import infer_format, pair_splits
from s2i_prep.specs import load_spec
from s2i_prep.synthetic import write_synthetic

COCO = load_spec("coco17")
NTU = load_spec("ntu25")


def _write(path: Path, obj) -> Path:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)
    return path


def _ann(name: str, label: int, kp: np.ndarray, **extra) -> dict:
    return {"frame_dir": name, "label": label, "keypoint": kp, "total_frames": kp.shape[1], **extra}


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    out = tmp_path_factory.mktemp("coco")
    write_synthetic("coco17", out, 16, seed=5, frames=(20, 30))
    return out / "coco17_2d.pkl"


def test_refused_without_trust_and_says_why(coco, tmp_path, capsys):
    with pytest.raises(S2IError, match="unpickling runs whatever code"):
        get_reader("pyskl_pickle").discover(coco)
    assert main(["convert", "--format", "coco17", str(coco), str(tmp_path / "c.zarr")]) == 1
    err = capsys.readouterr().err
    assert "refusing to load a pickle without --trust-pickle" in err and "take over" in err
    assert not (tmp_path / "c.zarr").exists()


def test_trusted_pickle_still_resolves_only_annotation_classes(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    path = _write(tmp_path / "evil.pkl", {"split": {}, "annotations": [Evil()]})
    with pytest.raises(ParseError, match=r"asks for (posix|nt)\.getcwd"):
        get_reader("pyskl_pickle", trust_pickle=True).discover(path)


@pytest.mark.realdata
def test_table_of_contents_pickle_names_what_is_missing(realdata, tmp_path, capsys):
    path = realdata / "mmaction2_pkl" / "sample.pkl"
    with pytest.raises(S2IError, match="no annotation has a 'keypoint' array") as exc:
        get_reader("pyskl_pickle", trust_pickle=True).discover(path)
    assert "frame_inds" in str(exc.value) and "table-of-contents" in str(exc.value)
    code = main(["convert", "--trust-pickle", "--format", "coco17", str(path), str(tmp_path / "k.zarr")])
    assert code == 1 and "'keypoint'" in capsys.readouterr().err


def test_generated_2d_pickle_reads_exactly(coco):
    with open(coco, "rb") as fh:
        doc = pickle.load(fh)
    reader = get_reader("pyskl_pickle", trust_pickle=True)
    raws = reader.read(coco, COCO)
    assert [r.name for r in raws] == [a["frame_dir"] for a in doc["annotations"]]
    for raw, ann in zip(raws, doc["annotations"]):
        score = ann["keypoint_score"]
        assert raw.joints.shape == ann["keypoint"].shape and raw.label == ann["label"]
        np.testing.assert_array_equal(raw.joints[score > 0], ann["keypoint"][score > 0])
        assert np.isnan(raw.joints[score == 0]).all()
        np.testing.assert_array_equal(raw.joint_fields["score"], score)
        h, w = ann["img_shape"]
        assert raw.meta == {"img_h": h, "img_w": w}
    assert infer_format(coco, True) == ("coco17", (17, 2))


@pytest.mark.slow
def test_generated_2d_pickle_converts_with_inferred_format_and_splits(coco, tmp_path):
    out = tmp_path / "c.zarr"
    res = CliRunner().invoke(cli, ["convert", "--trust-pickle", "--workers", "0", str(coco), str(out)])
    assert res.exit_code == 0, res.output
    assert "format coco17: inferred" in res.output
    g = zarr.open_group(str(out), mode="r")
    with open(coco, "rb") as fh:
        split = pickle.load(fh)["split"]
    ids = [str(s) for s in g["sample_id"][:]]
    assert sorted(ids) == sorted(split["train"] + split["test"])
    assert sorted(ids[i] for i in g["splits/default/train"][:]) == sorted(split["train"])
    assert sorted(ids[i] for i in g["splits/default/test"][:]) == sorted(split["test"])
    assert g.attrs["split_sources"]["default"].startswith("file")
    assert not np.asarray(g["s2i"][:, :, 2]).any()  # zero depth channel


def test_pair_splits():
    got = pair_splits({"xsub_train": ["a"], "xsub_val": ["b"], "xset_train": ["c"],
                       "xset_test": ["d"], "train": ["e"], "val": ["f"], "extra": ["g"]})
    assert got == {"xsub": (["a"], ["b"]), "xset": (["c"], ["d"]), "default": (["e"], ["f"]),
                   "extra": (["g"], [])}


def test_bad_annotations_name_the_annotation(tmp_path):
    reader = get_reader("pyskl_pickle", trust_pickle=True)
    kp = np.zeros((1, 4, 17, 2), np.float32) + 1
    cases = [
        (_ann("a", 0, np.zeros((1, 4, 25, 3), np.float32)), r"annotation 1 \(a\): keypoint has shape"),
        (_ann("a", -1, kp), "label: expected an integer >= 0"),
        (_ann("a", 0, np.where(np.arange(2)[None, None, None] == 0, np.inf, kp)), "not a finite"),
        (_ann("a", 0, kp, keypoint_score=np.ones((1, 3, 17))), "keypoint_score: expected shape"),
        ({"frame_dir": "a", "label": 0}, "no 'keypoint' array"),
    ]
    for i, (ann, pattern) in enumerate(cases):
        good = _ann("ok", 0, kp)
        path = _write(tmp_path / f"bad{i}.pkl", {"split": {}, "annotations": [good, ann]})
        with pytest.raises(ParseError, match=pattern):
            reader.read(path, COCO)
    path = _write(tmp_path / "wrong.pkl", [_ann("S001C001P001R001A002", 5, np.ones((1, 3, 25, 3)))])
    with pytest.raises(ParseError, match="label 5 disagrees with the name"):
        reader.read(path, NTU)


def _ntu_raw(tmp_path: Path):
    raw_dir = tmp_path / "raw"
    write_synthetic("ntu25", raw_dir, 9, seed=2, frames=(30, 45))
    return raw_dir


@pytest.mark.slow
def test_3d_pickle_gives_the_samples_of_the_raw_files(tmp_path):
    """A pyskl-style 3-D pickle made from the selected actors of raw NTU files (absent = zeros, as
    pyskl pads, empty frames dropped) converts to exactly the S2I samples of the raw files."""
    raw_dir = _ntu_raw(tmp_path)
    reader = get_reader("ntu_skeleton")
    annotations = []
    for path in reader.discover(raw_dir):
        for raw in reader.read(path, NTU):
            try:
                skel = select_bodies(raw, NTU)
            except S2IError:
                continue
            kp = np.nan_to_num(skel.joints, nan=0.0)
            meta = NTU.parse_name(raw.name)
            annotations.append(_ann(raw.name, NTU.label_of(meta), kp))
    names = [a["frame_dir"] for a in annotations]
    pkl = _write(tmp_path / "ntu_3danno.pkl", {
        "split": {"xsub_train": names[::2], "xsub_val": names[1::2]}, "annotations": annotations})
    assert reader_for_input(pkl, NTU)[0] == "pyskl_pickle"
    runner = CliRunner()
    for src, out, extra in ((raw_dir, "raw.zarr", []), (pkl, "pkl.zarr", ["--trust-pickle"])):
        res = runner.invoke(cli, ["convert", "--format", "ntu25", "--workers", "0", "-q", *extra,
                                  str(src), str(tmp_path / out)])
        assert res.exit_code in (0, 3), res.output
    a = zarr.open_group(str(tmp_path / "raw.zarr"), mode="r")
    b = zarr.open_group(str(tmp_path / "pkl.zarr"), mode="r")
    assert list(a["sample_id"][:]) == list(b["sample_id"][:]) == sorted(names)
    np.testing.assert_array_equal(np.asarray(a["s2i"][:]), np.asarray(b["s2i"][:]))
    np.testing.assert_array_equal(a["label"][:], b["label"][:])
    assert "xsub" in b["splits"] and "ntu60-xsub" in b["splits"]
    assert "body_selection: first" in b.attrs["spec"]
