"""``s2i-prep export``: convert -> export -> the peers' own loading logic (test twins) reads the
skeletons s2i selected; pickles exported from a dataset convert back to the same samples."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from s2i_prep.bodies import select_bodies
from s2i_prep.cli import cli, main
from s2i_prep.errors import S2IError
from s2i_prep.export import export
from s2i_prep.readers import get_reader
from s2i_prep.specs import load_spec
from s2i_prep.synthetic import write_synthetic
from tests.reference.peer_loaders import ctrgcn_load, pyskl_format_gcn_input, pyskl_load

NTU = load_spec("ntu25")


def _convert(src: Path, out: Path, fmt: str, *extra: str) -> Path:
    res = CliRunner().invoke(cli, ["convert", "--format", fmt, "--workers", "0", "-q", *extra,
                                   str(src), str(out)])
    assert res.exit_code in (0, 3), res.output
    return out


@pytest.fixture(scope="module")
def ntu(tmp_path_factory):
    root = tmp_path_factory.mktemp("ntu_export")
    write_synthetic("ntu25", root / "raw", 12, seed=8, frames=(30, 45))
    return root, _convert(root / "raw", root / "ntu.zarr", "ntu25")


def _selected(raw_dir: Path) -> dict:
    reader = get_reader("ntu_skeleton")
    out = {}
    for path in reader.discover(raw_dir):
        for raw in reader.read(path, NTU):
            try:
                out[raw.name] = select_bodies(raw, NTU)
            except S2IError:
                pass
    return out


@pytest.mark.slow
def test_pyskl_round_trip_ntu(ntu, tmp_path):
    root, dataset = ntu
    pkl = tmp_path / "ntu_3danno.pkl"
    assert main(["export", "--to", "pyskl", "-q", str(dataset), str(pkl)]) == 0
    g = zarr.open_group(str(dataset), mode="r")
    ids = [str(s) for s in g["sample_id"][:]]
    selected = _selected(root / "raw")
    for split in ("ntu60-xsub", "ntu60-xview"):
        for part, suffix in (("train", "train"), ("test", "val")):
            anns = pyskl_load(pkl, f"{split}_{suffix}")
            want = [ids[i] for i in g[f"splits/{split}/{part}"][:]]
            assert [a["frame_dir"] for a in anns] == want
            for a in anns:
                skel = selected[a["frame_dir"]]
                np.testing.assert_array_equal(a["keypoint"], np.nan_to_num(skel.joints, nan=0.0))
                assert a["total_frames"] == skel.num_frames and a["label"] == NTU.label_of(
                    NTU.parse_name(a["frame_dir"]))
                x = pyskl_format_gcn_input(a, num_person=2)
                assert x.shape == (1, 2, skel.num_frames, 25, 3)
    # the exported pickle converts back to the very same S2I samples
    back = _convert(pkl, tmp_path / "back.zarr", "ntu25", "--trust-pickle")
    b = zarr.open_group(str(back), mode="r")
    assert [str(s) for s in b["sample_id"][:]] == ids
    np.testing.assert_array_equal(np.asarray(b["s2i"][:]), np.asarray(g["s2i"][:]))
    np.testing.assert_array_equal(b["splits/ntu60-xsub/train"][:], g["splits/ntu60-xsub/train"][:])
    # the pyskl split lists come back as splits named after the dataset's
    np.testing.assert_array_equal(b["splits/ntu60-xview/test"][:], g["splits/ntu60-xview/test"][:])


@pytest.mark.slow
def test_ctrgcn_round_trip_ntu(ntu, tmp_path):
    root, dataset = ntu
    out = tmp_path / "ctrgcn"
    assert main(["export", "--to", "ctrgcn", "--split", "ntu60-xview", "-q", str(dataset), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ntu60-xview.npz"]
    g = zarr.open_group(str(dataset), mode="r")
    ids = [str(s) for s in g["sample_id"][:]]
    selected = _selected(root / "raw")
    for part in ("train", "test"):
        data, label, valid = ctrgcn_load(out / "ntu60-xview.npz", part, 2, 25, 3)
        idx = g[f"splits/ntu60-xview/{part}"][:]
        names = list(np.load(out / "ntu60-xview.npz")[f"name_{part}"])
        assert names == [ids[i] for i in idx]
        np.testing.assert_array_equal(label, g["label"][:][idx])
        assert data.shape[1:] == (3, 300, 25, 2)
        for n, name in enumerate(names):
            skel = selected[name]
            kp = np.nan_to_num(skel.joints, nan=0.0)  # (M, T, V, C)
            want = np.zeros((3, 300, 25, 2), np.float32)
            want[:, : kp.shape[1], :, : kp.shape[0]] = kp.transpose(3, 1, 2, 0)
            np.testing.assert_array_equal(data[n], want)
            assert valid[n] == skel.num_frames


@pytest.mark.slow
def test_pyskl_round_trip_kinetics_2d(tmp_path):
    write_synthetic("openpose18", tmp_path / "kin", 12, seed=9, frames=(20, 30))
    dataset = _convert(tmp_path / "kin", tmp_path / "kin.zarr", "openpose18")
    pkl = tmp_path / "k.pkl"
    export(dataset, pkl, "pyskl")
    anns = {a["frame_dir"]: a for a in pyskl_load(pkl, "kinetics_train") + pyskl_load(pkl, "kinetics_val")}
    reader = get_reader("kinetics_json")
    spec = load_spec("openpose18")
    for path in reader.discover(tmp_path / "kin"):
        (raw,) = reader.read(path, spec)
        skel = select_bodies(raw, spec)
        a = anns[raw.name]
        assert a["img_shape"] == (256, 340)
        seen = ~np.isnan(skel.joints)
        np.testing.assert_array_equal(a["keypoint"][seen], (skel.joints * np.float32([340, 256]))[seen])
        assert (a["keypoint"][~seen] == 0).all()
        # scores are the file's scores of the selected people, 0 where absent
        assert ((a["keypoint_score"] > 0) == seen[..., 0]).all()
        x = pyskl_format_gcn_input(a, num_person=2)
        assert x.shape == (1, 2, skel.num_frames, 18, 3)
    # and back: the same images up to float rounding of the pixel scaling
    back = _convert(pkl, tmp_path / "back.zarr", "openpose18", "--trust-pickle")
    a = np.asarray(zarr.open_group(str(dataset), mode="r")["s2i"][:], np.float32)
    b = np.asarray(zarr.open_group(str(back), mode="r")["s2i"][:], np.float32)
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_export_verifies_the_raw_input(tmp_path):
    write_synthetic("ucla20", tmp_path / "raw", 6, seed=1, frames=(10, 15))
    dataset = _convert(tmp_path / "raw", tmp_path / "u.zarr", "ucla20")
    victim = sorted((tmp_path / "raw").glob("*.json"))[0]
    text = victim.read_text()
    victim.write_text(text.replace("0.1", "0.2", 1) if "0.1" in text else text.replace("1", "2", 1))
    with pytest.raises(S2IError, match=f"sample {victim.stem} read now does not give the sample stored"):
        export(dataset, tmp_path / "u.pkl", "pyskl")
    export(dataset, tmp_path / "u.pkl", "pyskl", verify=False)
    victim.unlink()
    with pytest.raises(S2IError, match="1 sample\\(s\\) of .* are not in the raw input"):
        export(dataset, tmp_path / "u2.pkl", "pyskl")
    with pytest.raises(S2IError, match="no split 'nope'"):
        export(dataset, tmp_path / "u3.pkl", "pyskl", splits=("nope",), verify=False,
               input_path=tmp_path / "raw")


def test_export_needs_trust_again_for_pickle_input(tmp_path):
    write_synthetic("coco17", tmp_path / "c", 6, seed=1, frames=(10, 15))
    dataset = _convert(tmp_path / "c" / "coco17_2d.pkl", tmp_path / "c.zarr", "coco17", "--trust-pickle")
    with pytest.raises(S2IError, match="without --trust-pickle"):
        export(dataset, tmp_path / "c.pkl", "pyskl")
    export(dataset, tmp_path / "c.pkl", "pyskl", trust_pickle=True)
    with open(tmp_path / "c" / "coco17_2d.pkl", "rb") as fh:
        original = {a["frame_dir"]: a for a in pickle.load(fh)["annotations"]}
    for a in pyskl_load(tmp_path / "c.pkl", "default_train"):
        o = original[a["frame_dir"]]
        assert a["img_shape"] == o["img_shape"] and a["label"] == o["label"]
        # the first persons present, in pyskl's order; frames with nobody are dropped
        m = a["keypoint"].shape[0]
        kept = (o["keypoint_score"] > 0).any(axis=(0, 2))
        np.testing.assert_array_equal(a["keypoint_score"], o["keypoint_score"][:m][:, kept])
