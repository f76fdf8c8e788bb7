"""2-D skeletons in S2I: image coordinates -> image heights with y up, a zero third channel, and
images whose range matches 3-D datasets'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2i_prep.bodies import select_bodies
from s2i_prep.encoding import EncodeConfig, encode
from s2i_prep.errors import SpecError
from s2i_prep.planar import ImageRule, image_rule, to_plane_units
from s2i_prep.readers import get_reader
from s2i_prep.skeleton import Skeleton
from s2i_prep.specs import load_spec
from s2i_prep.synthetic import write_synthetic


def test_rules_of_the_shipped_2d_specs():
    assert image_rule(load_spec("openpose18")) == ImageRule("normalized", (340, 256))
    assert image_rule(load_spec("coco17")) == ImageRule("pixels", (1920, 1080))
    assert image_rule(load_spec("toyota13_2d")) == ImageRule("pixels", (640, 480))


def test_normalised_and_pixel_coordinates_become_image_heights_with_y_up():
    xy = np.array([[[[0.5, 0.25], [np.nan, np.nan]]]], np.float32)  # (1, 1, 2, 2)
    out = to_plane_units(xy, ImageRule("normalized", (340, 256)), {})
    np.testing.assert_allclose(out[0, 0, 0], [0.5 * 340 / 256, -0.25], rtol=1e-6)
    assert np.isnan(out[0, 0, 1]).all() and out.dtype == np.float32
    px = np.array([[[[960.0, 540.0]]]], np.float32)
    rule = ImageRule("pixels", (1920, 1080))
    np.testing.assert_allclose(to_plane_units(px, rule, {})[0, 0, 0], [960 / 1080, -0.5])
    # a sample that carries its image size is in its pixels, whatever the spec says
    np.testing.assert_allclose(
        to_plane_units(px, rule, {"img_w": 640, "img_h": 480})[0, 0, 0], [2.0, -1.125]
    )
    np.testing.assert_allclose(
        to_plane_units(px, ImageRule("normalized", (340, 256)), {"img_w": 640, "img_h": 480})[0, 0, 0],
        [2.0, -1.125])
    with pytest.raises(ValueError, match="no image size"):
        to_plane_units(px, ImageRule("pixels", None), {})
    assert to_plane_units(px, ImageRule("plane", None), {}) is px


@pytest.mark.parametrize(
    "block, key",
    [("image: {units: metres}", "image.units"), ("image: {units: pixels, size: [640]}", "image.size"),
     ("image: [1, 2]", "image"), ("image: {units: pixels, height: 3}", "image")],
)
def test_bad_image_blocks_name_the_key(tmp_path, block, key):
    text = Path(load_spec("coco17").source).read_text().replace(
        "image: {units: pixels, size: [1920, 1080]}", block)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=f"{key}: "):
        image_rule(load_spec(path))


def test_2d_encoding_zero_depth_and_scale():
    spec = load_spec("coco17")
    rng = np.random.default_rng(0)
    xy = rng.uniform(100, 900, (1, 10, 17, 2)).astype(np.float32)
    skel = Skeleton("s", "s.pkl", xy, np.arange(10), 0, {"img_w": 1000, "img_h": 1000})
    grid = encode(skel, spec, EncodeConfig(frames=10, streams=("joint",))).astype(np.float32)
    assert not grid[:, 2].any()
    col = spec.column_order
    origin = xy[0, 0, spec.centre]
    want_x = (xy[0, :, col, 0].T - origin[0]) / 1000
    want_y = -(xy[0, :, col, 1].T - origin[1]) / 1000
    np.testing.assert_allclose(grid[0, 0, :, :17], want_x, atol=1e-3)
    np.testing.assert_allclose(grid[0, 1, :, :17], want_y, atol=1e-3)
    with pytest.raises(ValueError, match="2-D"):
        encode(skel, spec, EncodeConfig(frames=10, align=True))


@pytest.mark.slow
def test_2d_and_3d_datasets_have_comparable_range(tmp_path):
    """Per-sample extent of the joint stream (y: body height) of synthetic NTU (metres) and
    synthetic Kinetics (image heights) are of the same order."""
    write_synthetic("ntu25", tmp_path / "ntu", 12, seed=1, frames=(30, 40))
    write_synthetic("openpose18", tmp_path / "kin", 12, seed=1, frames=(30, 40))
    extents = {}
    for fmt, folder in (("ntu25", "ntu"), ("openpose18", "kin")):
        spec = load_spec(fmt)
        reader = get_reader(spec.reader)
        ext = []
        for path in reader.discover(tmp_path / folder):
            for raw in reader.read(path, spec):
                grid = encode(select_bodies(raw, spec), spec, EncodeConfig(streams=("joint",)))
                y = grid[0, 1, :, : spec.num_joints].astype(np.float32)
                ext.append(float(y.max() - y.min()))
        extents[fmt] = float(np.median(ext))
    assert 1.0 < extents["ntu25"] < 2.5
    assert 0.25 < extents["openpose18"] / extents["ntu25"] < 4
