"""Toyota Smarthome reader (``toyota_json``, specs ``toyota13`` / ``toyota13_2d``): coordinate-major
poses, 2-D or 3-D by spec, per-frame ranking by cumscore, splits from the file name fields."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from s2i_prep.bodies import select_bodies
from s2i_prep.cli import cli
from s2i_prep.errors import EmptySampleError, ParseError, ReadError
from s2i_prep.readers import get_reader
from s2i_prep.specs import load_spec
from s2i_prep.synthetic import make_job, write_synthetic

T3, T2 = load_spec("toyota13"), load_spec("toyota13_2d")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("toyota")
    return out, write_synthetic("toyota13", out, 30, seed=4, frames=(20, 30))


def test_coordinate_major_layout_2d_and_3d(tmp_path):
    xyz = np.arange(39, dtype=float).reshape(13, 3) / 10  # joint j = (3j, 3j+1, 3j+2) / 10
    xy = xyz[:, :2] * 100
    det = {"pose2d": xy.T.reshape(-1).tolist(), "pose3d": xyz.T.reshape(-1).tolist(), "cumscore": 3.0}
    path = tmp_path / "Walk_p03_r00_v01_c01.json"
    path.write_text(json.dumps({"K": 20, "njts": 13, "frames": [[], [det]]}))
    reader = get_reader("toyota_json")
    (r3,) = reader.read(path, T3)
    (r2,) = reader.read(path, T2)
    assert r3.joints.shape == (1, 2, 13, 3) and r2.joints.shape == (1, 2, 13, 2)
    np.testing.assert_allclose(r3.joints[0, 1], xyz, rtol=1e-6)
    np.testing.assert_allclose(r2.joints[0, 1], xy, rtol=1e-6)
    assert np.isnan(r3.joints[0, 0]).all()  # an empty frame
    assert r3.body_fields["cumscore"][0, 1] == 3.0
    assert select_bodies(r3, T3).frame_index.tolist() == [1]


def test_detections_are_ranked_by_cumscore_per_frame(tmp_path):
    def det(v, score):
        return {"pose2d": [v] * 26, "pose3d": [v] * 39, "cumscore": score}

    frames = [[det(1, 5.0), det(2, 9.0)], [det(3, 7.0), det(4, 2.0)], [det(5, 1.0)]]
    path = tmp_path / "Walk_p03_r00_v01_c01.json"
    path.write_text(json.dumps({"njts": 13, "frames": frames}))
    (raw,) = get_reader("toyota_json").read(path, T3)
    assert raw.joints[0, :, 0, 0].tolist() == [2, 3, 5]
    assert raw.joints[1, :2, 0, 0].tolist() == [1, 4] and np.isnan(raw.joints[1, 2]).all()
    (raw,) = get_reader("toyota_json", person_order="file").read(path, T3)
    assert raw.joints[0, :, 0, 0].tolist() == [1, 3, 5]


def test_generated_files_read_as_written(synthetic):
    out, summary = synthetic
    job = make_job("toyota13", 30, seed=4, frames=(20, 30))
    reader = get_reader("toyota_json", person_order="file")
    for i, info in enumerate(summary.samples[:6]):
        truth = job.render(i)
        (raw,) = reader.read(out / info.path, T3)
        (flat,) = reader.read(out / info.path, T2)
        assert raw.name == info.name and T3.label_of(T3.parse_name(raw.name)) == info.label
        for p in range(truth.order.shape[1]):
            for t in np.flatnonzero(truth.order[:, p] >= 0):
                k = truth.order[t, p]
                np.testing.assert_allclose(raw.joints[k, t], truth.xyz[p, t], atol=6e-5)
                np.testing.assert_allclose(flat.joints[k, t], truth.xy[p, t], atol=6e-3)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["toyota13", "toyota13_2d"])
def test_convert_splits_from_name_fields(synthetic, tmp_path, fmt):
    out, summary = synthetic
    dst = tmp_path / f"{fmt}.zarr"
    res = CliRunner().invoke(cli, ["convert", "--format", fmt, "--workers", "0", "-q", str(out), str(dst)])
    assert res.exit_code == 0, res.output
    g = zarr.open_group(str(dst), mode="r")
    subject, camera = np.asarray(g["subject"][:]), np.asarray(g["camera"][:])
    cs_train = np.isin(subject, [3, 4, 6, 7, 9, 12, 13, 15, 17, 19, 25])
    np.testing.assert_array_equal(g["splits/toyota-cs/train"][:], np.flatnonzero(cs_train))
    np.testing.assert_array_equal(g["splits/toyota-cv1/test"][:], np.flatnonzero(camera == 2))
    np.testing.assert_array_equal(
        g["splits/toyota-cv2/train"][:], np.flatnonzero(np.isin(camera, [1, 3, 4, 6, 7])))
    assert 5 not in camera[np.concatenate([g["splits/toyota-cv2/train"][:], g["splits/toyota-cv2/test"][:]])]
    assert g["s2i"].shape[1:] == (3, 3, 64, 13)
    if fmt == "toyota13_2d":
        assert not np.asarray(g["s2i"][:, :, 2]).any()


def test_bad_files(tmp_path):
    reader = get_reader("toyota_json")
    cases = {
        "short": ({"njts": 13, "frames": [[{"pose3d": [0.0] * 38}]]}, ParseError, "39 numbers"),
        "njts": ({"njts": 17, "frames": [[]]}, ParseError, "njts"),
        "frames": ({"njts": 13, "frames": {}}, ParseError, "frames: expected a list"),
        "empty": ({"njts": 13, "frames": []}, EmptySampleError, "no frame"),
        "score": ({"frames": [[{"pose3d": [0.0] * 39, "cumscore": "x"}]]}, ParseError, "cumscore"),
    }
    for stem, (doc, error, pattern) in cases.items():
        path = tmp_path / f"{stem}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(error, match=pattern):
            reader.read(path, T3)
    with pytest.raises(ReadError, match="person_order"):
        get_reader("toyota_json", person_order="stgcn")
