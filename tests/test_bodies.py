"""Body selection: the CTR-GCN algorithm reproduced exactly, its edge cases, and 'first'."""

from __future__ import annotations

import numpy as np
import pytest

from s2i_prep.bodies import select_bodies
from s2i_prep.errors import EmptySampleError
from s2i_prep.readers import get_reader
from s2i_prep.readers.ntu import parse_ntu_bytes
from s2i_prep.skeleton import RawSkeleton
from s2i_prep.specs import load_spec
from tests.ntu_files import BASE_ID, compose, skeleton_text, track
from tests.reference.ntu_ref import ctrgcn_select, read_plain

SPEC = load_spec("ntu25")


def as_rows(skel) -> np.ndarray:
    """Our (M, T, V, 3) with NaN for absent actors -> CTR-GCN's (T, M*75) with zeros."""
    joints = np.nan_to_num(skel.joints, nan=0.0)
    return joints.transpose(1, 0, 2, 3).reshape(skel.num_frames, -1)


def check_against_reference(tmp_path, frames, name="S001C001P001R001A050.skeleton"):
    path = tmp_path / name
    path.write_bytes(skeleton_text(frames))
    raw = get_reader("ntu_skeleton").read(path, SPEC)[0]
    skel = select_bodies(raw, SPEC)
    expected = ctrgcn_select(read_plain(str(path)))
    got = as_rows(skel)
    if expected.shape[1] == 150 and got.shape[1] == 75:
        # The reference keeps an actor-2 slot that nothing was assigned to (all zeros); s2i drops it.
        got = np.concatenate([got, np.zeros_like(got)], axis=1)
    assert got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()
    return raw, skel


@pytest.mark.realdata
def test_real_files_match_reference_selection(realdata):
    counts = [int(x) for x in (realdata / "ntu_golden_ctrgcn" / "frames_cnt.txt").read_text().split()]
    names = (realdata / "ntu_golden_ctrgcn" / "names.txt").read_text().split()
    for path in sorted((realdata / "ntu").glob("*.skeleton")):
        raw = get_reader("ntu_skeleton").read(path, SPEC)[0]
        skel = select_bodies(raw, SPEC)
        expected = ctrgcn_select(read_plain(str(path)))
        assert as_rows(skel).tobytes() == expected.tobytes(), path.name
        if path.stem in names:   # the published frames_cnt.txt of the golden parse
            assert skel.num_frames == counts[names.index(path.stem)]


def test_short_noise_body_is_dropped(tmp_path):
    rng = np.random.default_rng(0)
    frames = compose(40, track(rng, 40), track(rng, 11, start=5, body_id=BASE_ID + 1, move=0.3))
    _, skel = check_against_reference(tmp_path, frames)
    assert skel.num_persons == 1


def test_wide_furniture_body_is_dropped(tmp_path):
    rng = np.random.default_rng(1)
    frames = compose(40, track(rng, 40), track(rng, 40, body_id=BASE_ID + 1, wide=True, move=0.2,
                                               centre=(1.5, 0, 3.5)))
    _, skel = check_against_reference(tmp_path, frames)
    assert skel.num_persons == 1


def test_two_actors_ordered_by_motion(tmp_path):
    rng = np.random.default_rng(2)
    calm = track(rng, 30, move=0.001)
    lively = track(rng, 30, body_id=BASE_ID + 1, move=0.05, centre=(1.0, 0, 3.0))
    raw, skel = check_against_reference(tmp_path, compose(30, calm, lively))
    assert skel.num_persons == 2
    # the livelier body becomes actor 1 although it appears second in the file
    assert np.array_equal(skel.joints[0], raw.joints[1])


def test_tracking_id_switch_is_merged_into_one_actor(tmp_path):
    rng = np.random.default_rng(3)
    frames = compose(40, track(rng, 20), track(rng, 20, start=20, body_id=BASE_ID + 9))
    _, skel = check_against_reference(tmp_path, frames)
    assert skel.num_persons == 1 and skel.num_frames == 40


def test_one_frame_handover_counts_as_no_overlap(tmp_path):
    rng = np.random.default_rng(4)
    frames = compose(40, track(rng, 21), track(rng, 20, start=20, body_id=BASE_ID + 9, move=0.001))
    _, skel = check_against_reference(tmp_path, frames)
    assert skel.num_persons == 1


def test_reappearing_body_keeps_reference_interval_quirk(tmp_path):
    rng = np.random.default_rng(5)
    a = track(rng, 40)
    for f in range(10, 15):
        del a[f]                                    # A vanishes while B is tracked
    b = track(rng, 40, body_id=BASE_ID + 1, centre=(1, 0, 3))
    raw, skel = check_against_reference(tmp_path, compose(40, a, b))
    assert skel.num_persons == 2


def test_all_bodies_short_falls_back_to_longest(tmp_path):
    rng = np.random.default_rng(6)
    frames = compose(20, track(rng, 8), track(rng, 10, start=9, body_id=BASE_ID + 1))
    raw, skel = check_against_reference(tmp_path, frames)
    assert skel.num_persons == 1 and skel.num_frames == 10
    assert np.array_equal(skel.joints[0], raw.joints[1, 9:19])


def test_three_bodies_and_empty_frames(tmp_path):
    rng = np.random.default_rng(7)
    frames = compose(60, track(rng, 50, start=5), track(rng, 30, start=10, body_id=BASE_ID + 1),
                     track(rng, 20, start=30, body_id=BASE_ID + 2, move=0.05))
    raw, skel = check_against_reference(tmp_path, frames)
    assert skel.frame_index[0] == 5            # leading empty frames dropped
    assert np.all(np.diff(skel.frame_index) > 0)


@pytest.mark.parametrize("seed", range(25))
def test_random_multi_body_files_match_reference(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    T = int(rng.integers(15, 70))
    tracks = []
    for k in range(int(rng.integers(1, 5))):
        n = int(rng.integers(1, T + 1))
        start = int(rng.integers(0, T - n + 1))
        tracks.append(track(rng, n, start=start, body_id=BASE_ID + k, wide=bool(rng.random() < 0.2),
                            move=float(rng.uniform(0.001, 0.1)), centre=(rng.uniform(-1, 1), 0, 3)))
    frames = compose(T, *tracks)
    if not any(frames):
        return
    check_against_reference(tmp_path, frames)


def test_file_without_any_body_is_a_clear_empty_sample_error():
    raw = parse_ntu_bytes(b"5\n0\n0\n0\n0\n0\n", "S001C001P001R001A001.skeleton", SPEC)
    with pytest.raises(EmptySampleError, match="no skeleton in file: all 5 frames have no body"):
        select_bodies(raw, SPEC)


def test_first_keeps_slots_in_order_and_drops_frames_nobody_is_in():
    joints = np.full((3, 6, 25, 3), np.nan, np.float32)
    joints[0, 1:4] = 1.0
    joints[2, 3:5] = 2.0                       # body 1 never present
    raw = RawSkeleton("x", "x.txt", joints, ("0", "1", "2"))
    skel = select_bodies(raw, SPEC, method="first")
    assert skel.frame_index.tolist() == [1, 2, 3, 4]
    assert skel.num_persons == 2
    assert np.isnan(skel.joints[1, :2]).all() and (skel.joints[1, 2:] == 2.0).all()
    assert np.isnan(skel.joints[0, 3]).all()


def test_first_respects_max_persons():
    spec = load_spec("ucla20")
    joints = np.ones((2, 4, 20, 3), np.float32)
    skel = select_bodies(RawSkeleton("x", "x.json", joints, ("0", "1")), spec)
    assert skel.num_persons == 1
