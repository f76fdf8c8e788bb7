"""Previews show the stored values through the pixel mapping, with part and person boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from s2i_prep.encoding import EncodeConfig, encode, pixel_mapping_params, to_image
from s2i_prep.previews import PART_LINE, PERSON_LINE, render_preview
from s2i_prep.specs import load_spec
from tests.test_encoding import skeleton

NTU = load_spec("ntu25")
UCLA = load_spec("ucla20")
GAP, HEADER = 8, 18  # layout constants of previews.py (panel origin)


def _sample(cfg: EncodeConfig, spec=NTU, n_persons: int = 2) -> np.ndarray:
    return encode(skeleton(np.random.default_rng(0), n_persons, 30, spec=spec), spec, cfg)


def test_compact_preview_shows_each_stored_value_as_a_block(tmp_path):
    cfg = EncodeConfig(frames=16)
    sample = _sample(cfg)
    img = render_preview(sample, NTU, cfg, pixel_mapping_params(cfg), scale=4)
    assert img.mode == "RGB"
    assert img.width == 3 * 50 * 4 + 4 * GAP
    pixels = np.asarray(img)
    rgb = to_image(sample, (16, 50), pixel_mapping_params(cfg))
    # stream 1 (motion), frame 5, column 2 (neck of person 0): a 4x4 block of the mapped colour
    left = GAP + 1 * (50 * 4 + GAP)
    block = pixels[HEADER + 5 * 4 : HEADER + 6 * 4, left + 2 * 4 + 1 : left + 3 * 4]
    assert (block == rgb[1, :, 5, 2]).all()
    path = tmp_path / "p.png"
    img.save(path)
    assert Image.open(path).size == img.size


def test_part_and_person_boundaries_are_marked():
    cfg = EncodeConfig(frames=8, streams=("joint",))
    img = np.asarray(render_preview(_sample(cfg), NTU, cfg, pixel_mapping_params(cfg), scale=4))
    row = HEADER + 10
    starts = np.cumsum([len(p) for p in NTU.parts])[:-1]  # left arm, right arm, left leg, right leg
    for column in list(starts) + [25 + s for s in starts]:
        assert tuple(img[row, GAP + column * 4]) == PART_LINE
    assert tuple(img[row, GAP + 25 * 4]) == PERSON_LINE
    assert tuple(img[row, GAP + 2 * 4]) not in (PART_LINE, PERSON_LINE)  # inside the torso


def test_stream_names_are_written():
    cfg = EncodeConfig(frames=8, streams=("bone",))
    img = np.asarray(render_preview(_sample(cfg), NTU, cfg, pixel_mapping_params(cfg)))
    header = img[1 : HEADER - 5, GAP : GAP + 30]
    assert (header.max(axis=-1) > 200).any()


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_image_forms_are_shown_at_their_stored_size(dtype):
    cfg = EncodeConfig(frames=16, image_size=(64, 100), dtype=dtype, streams=("joint", "motion"))
    sample = _sample(cfg)
    img = render_preview(sample, NTU, cfg, pixel_mapping_params(cfg), scale=4)
    assert img.width == 2 * 100 + 3 * GAP
    pixels = np.asarray(img)
    panel = pixels[HEADER : HEADER + 64, GAP : GAP + 100].transpose(2, 0, 1)
    want = (
        sample[0] if dtype == "uint8" else to_image(sample, (64, 100), pixel_mapping_params(cfg))[0]
    )
    # columns 2..3 lie inside the torso: no boundary line drawn over them
    np.testing.assert_array_equal(panel[:, :, 2:4], want[:, :, 2:4])


def test_single_person_spec_has_no_person_line():
    cfg = EncodeConfig(frames=8)
    img = np.asarray(render_preview(_sample(cfg, UCLA, 1), UCLA, cfg, pixel_mapping_params(cfg)))
    assert not (img == PERSON_LINE).all(axis=-1).any()


def test_wrong_shape_is_refused():
    cfg = EncodeConfig(frames=8)
    with pytest.raises(ValueError, match="stores"):
        render_preview(np.zeros((3, 3, 9, 50), np.float16), NTU, cfg, pixel_mapping_params(cfg))


@pytest.mark.parametrize("spec,persons", [(NTU, 2), (UCLA, 1)])
def test_every_part_label_is_drawn_with_its_person_number(spec, persons):
    from PIL import ImageDraw, ImageFont

    from s2i_prep.previews import _part_labels

    draw = ImageDraw.Draw(Image.new("RGB", (400, 60)))
    drawn = _part_labels(draw, ImageFont.load_default(), spec, GAP, spec.max_persons *
                         spec.num_joints * 4, 4.0, 20)
    names = ["T", "LA", "RA", "LL", "RL"]
    assert drawn == ([f"{n}{m}" for m in (1, 2) for n in names] if persons == 2 else names)


def test_titles_stay_inside_their_panel_slot_on_narrow_images():
    cfg = EncodeConfig(frames=8)  # ucla20: 20 columns, 80 px panels at scale 4
    img = np.asarray(render_preview(_sample(cfg, UCLA, 1), UCLA, cfg, pixel_mapping_params(cfg)))
    slot = (img.shape[1] - 4 * GAP) // 3
    header = img[: HEADER - 2].max(axis=-1) > 120  # text pixels
    for k in range(3):  # nothing written in the gaps between panel slots
        gap_start = GAP + k * (slot + GAP) + slot
        assert not header[:, gap_start + 1 : gap_start + GAP].any(), k
