"""S2I encoder: every kernel against its numpy twin (bit for bit), properties, edge cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2i_prep.encoding import (
    STREAMS,
    EncodeConfig,
    StreamStats,
    column_layout,
    encode,
    pixel_mapping_params,
    stored_shape,
    to_image,
)
from s2i_prep.errors import EmptySampleError, StoreError
from s2i_prep.kernels import s2i as K
from s2i_prep.skeleton import Skeleton
from s2i_prep.specs import load_spec
from tests.reference import encode_ref as ref

NTU = load_spec("ntu25")
UCLA = load_spec("ucla20")
SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=25, deadline=None)


def body(rng: np.random.Generator, n_frames: int, spec=NTU) -> np.ndarray:
    """A plausible moving body (T, V, 3) in metres: a random pose drifting in camera space."""
    pose = rng.normal(0.0, 0.3, (spec.num_joints, 3))
    drift = np.cumsum(rng.normal(0.0, 0.01, (n_frames, 1, 3)), axis=0)
    wobble = rng.normal(0.0, 0.02, (n_frames, spec.num_joints, 3))
    return (pose + drift + wobble + rng.normal(0.0, 1.0, 3) + [0, 0, 3]).astype(np.float32)


def skeleton(
    rng: np.random.Generator, n_persons: int = 2, n_frames: int = 40, spec=NTU, absent: float = 0.2
) -> Skeleton:
    """``n_persons`` actors; the second (and sometimes the first) is missing in some frames."""
    joints = np.stack([body(rng, n_frames, spec) for _ in range(n_persons)])
    for m in range(n_persons):
        gone = rng.random(n_frames) < absent * (m + 0.5)
        joints[m, gone] = np.nan
    return Skeleton("S001C001P001R001A001", "x.skeleton", joints, np.arange(n_frames))


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint16 if a.dtype == np.float16 else np.uint32)


def plan_args(spec, align: bool):
    return (
        spec.centre,
        *(spec.align_spine or (-1, -1)),
        *(spec.align_shoulders or (-1, -1)),
        align,
    )


# --------------------------------------------------------------------------- float16 packing


def test_pack_half_matches_numpy_on_random_and_edge_bit_patterns():
    rng = np.random.default_rng(0)
    patterns = [
        rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32),
        np.arange(0, 0x38800000 + 64, 997, dtype=np.uint32),  # zero, subnormal range, first normals
        np.arange(0x477F0000, 0x47800100, dtype=np.uint32),  # around the overflow threshold
        np.array(
            [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF], np.uint32
        ),
    ]
    for p in patterns:
        x = np.concatenate([p, p | np.uint32(0x80000000)]).view(np.float32)
        got = np.empty(x.size, np.uint16)
        K._pack_half(x, got)
        with np.errstate(over="ignore", invalid="ignore"):
            want = x.astype(np.float16).view(np.uint16)
        np.testing.assert_array_equal(got, want)


def test_unpack_half_is_exact_for_every_half():
    h = np.arange(2**16, dtype=np.uint16)
    got = np.empty(h.size, np.float32)
    K._unpack_half(h, got)
    np.testing.assert_array_equal(
        got.view(np.uint32), h.view(np.float16).astype(np.float32).view(np.uint32)
    )


# --------------------------------------------------------------------------- kernels vs twins


@FAST
@given(seed=SEEDS, n_persons=st.integers(1, 2), align=st.booleans())
def test_frame_of_reference_and_gather_match_twin(seed, n_persons, align):
    sk = skeleton(np.random.default_rng(seed), n_persons)
    origin, rot = K._frame_of_reference(sk.joints, *plan_args(NTU, align))
    r_origin, r_rot = ref.frame_of_reference(
        sk.joints, NTU.centre, NTU.align_spine, NTU.align_shoulders, align
    )
    np.testing.assert_array_equal(bits(origin), bits(r_origin))
    np.testing.assert_array_equal(bits(rot), bits(r_rot))
    cols = NTU.column_order.astype(np.uint64)
    parents = NTU.parent_array.astype(np.uint64)
    grid, bone, present = K._gather(sk.joints, cols, parents, 2, origin, rot, align, True)
    r_grid, r_present = ref.gather(sk.joints, NTU.column_order, 2, r_origin, r_rot, align)
    np.testing.assert_array_equal(present, r_present)
    np.testing.assert_array_equal(bits(grid), bits(r_grid))
    np.testing.assert_array_equal(
        bits(bone), bits(ref.bone(r_grid, r_present, ref.parent_columns(NTU)))
    )
    _, no_bone, _ = K._gather(sk.joints, cols, parents, 2, origin, rot, align, False)
    assert no_bone.size == 0


@FAST
@given(seed=SEEDS, n_frames=st.integers(1, 30), n_out=st.integers(1, 70))
def test_motion_and_resample_match_twins(seed, n_frames, n_out):
    rng = np.random.default_rng(seed)
    grid = rng.normal(size=(3, n_frames, 50)).astype(np.float32)
    present = rng.random((n_frames, 50)) < 0.8
    present[:, 25:] &= bool(seed % 2)  # odd seeds: second person present
    grid[:, ~present] = 0
    active = 50 if seed % 2 else 25
    np.testing.assert_array_equal(
        bits(K._motion(grid, present, active)), bits(ref.motion(grid, present))
    )
    np.testing.assert_array_equal(
        bits(K._resample_rows(grid, n_out)), bits(ref.resample_rows(grid, n_out))
    )


@FAST
@given(
    seed=SEEDS,
    h=st.integers(1, 40),
    w=st.integers(1, 60),
    out_h=st.integers(1, 90),
    out_w=st.integers(1, 90),
)
def test_resize_and_pixel_mapping_match_twins(seed, h, w, out_h, out_w):
    rng = np.random.default_rng(seed)
    planes = (rng.normal(size=(4, h, w)) * rng.uniform(0.01, 3)).astype(np.float32)
    planes[1] = 0.25  # a constant plane
    got = K._resize_bilinear(planes, out_h, out_w)
    np.testing.assert_array_equal(bits(got), bits(ref.resize_bilinear(planes, out_h, out_w)))
    grid = planes.astype(np.float16)
    np.testing.assert_array_equal(
        to_image(grid, (out_h, out_w), pixel_mapping_params(EncodeConfig())),
        ref.to_image(grid, (out_h, out_w)),
    )
    flt = to_image(grid, (out_h, out_w), pixel_mapping_params(EncodeConfig()), as_float=True)
    np.testing.assert_array_equal(
        bits(flt), bits(ref.to_image(grid, (out_h, out_w), as_float=True))
    )


@FAST
@given(
    seed=SEEDS,
    n_persons=st.integers(1, 2),
    n_frames=st.integers(1, 50),
    frames=st.integers(1, 80),
    align=st.booleans(),
    streams=st.permutations(STREAMS).flatmap(
        lambda p: st.integers(1, 3).map(lambda n: tuple(p[:n]))
    ),
)
def test_encode_compact_matches_twin(seed, n_persons, n_frames, frames, align, streams):
    sk = skeleton(np.random.default_rng(seed), n_persons, n_frames)
    cfg = EncodeConfig(streams=streams, frames=frames, align=align)
    got = encode(sk, NTU, cfg)
    assert got.shape == stored_shape(NTU, cfg) and got.dtype == np.float16
    want = ref.encode_compact(sk.joints, NTU, streams, frames, align)
    np.testing.assert_array_equal(bits(got), bits(want))


def test_encode_ucla_single_person_matches_twin():
    sk = skeleton(np.random.default_rng(3), 1, 30, spec=UCLA)
    cfg = EncodeConfig(align=True, frames=20)
    got = encode(sk, UCLA, cfg)
    assert got.shape == (3, 3, 20, 20)
    np.testing.assert_array_equal(
        bits(got), bits(ref.encode_compact(sk.joints, UCLA, STREAMS, 20, True))
    )


# --------------------------------------------------------------------------- properties


@FAST
@given(seed=SEEDS, shift=st.tuples(*[st.floats(-5, 5)] * 3), align=st.booleans())
def test_translation_changes_nothing_beyond_rounding(seed, shift, align):
    sk = skeleton(np.random.default_rng(seed), 2, 20)
    moved = Skeleton(sk.name, sk.source, sk.joints + np.float32(shift), sk.frame_index)
    cfg = EncodeConfig(align=align, frames=20)
    a = encode(sk, NTU, cfg).astype(np.float32)
    b = encode(moved, NTU, cfg).astype(np.float32)
    np.testing.assert_allclose(a, b, atol=5e-3)


@FAST
@given(seed=SEEDS)
def test_alignment_is_a_proper_rotation_putting_spine_on_z_and_shoulders_on_x(seed):
    sk = skeleton(np.random.default_rng(seed), 2, 10)
    origin, rot = K._frame_of_reference(sk.joints, *plan_args(NTU, True))
    r = rot.astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-6)
    m, t = ref.origin_person_frame(sk.joints, NTU.centre)
    p = sk.joints[m, t].astype(np.float64)
    spine = r @ (p[NTU.align_spine[1]] - p[NTU.align_spine[0]])
    shoulders = r @ (p[NTU.align_shoulders[1]] - p[NTU.align_shoulders[0]])
    np.testing.assert_allclose(spine[:2] / np.linalg.norm(spine), 0, atol=1e-6)
    assert spine[2] > 0
    assert abs(shoulders[1]) / np.linalg.norm(shoulders) < 1e-6 and shoulders[0] > 0


def test_degenerate_alignment_falls_back_to_a_rotation():
    joints = np.zeros((1, 3, 25, 3), np.float32)  # every joint at one point: no spine, no shoulders
    _, rot = K._frame_of_reference(joints, *plan_args(NTU, True))
    np.testing.assert_array_equal(rot, np.eye(3, dtype=np.float32))
    joints[0, :, NTU.align_spine[1]] = [1, 0, 0]  # spine along camera x, shoulders degenerate
    _, rot = K._frame_of_reference(joints, *plan_args(NTU, True))
    assert np.linalg.det(rot.astype(np.float64)) == pytest.approx(1.0)
    np.testing.assert_allclose(rot[2], [1, 0, 0])


def test_resampling_to_the_same_length_is_the_identity():
    sk = skeleton(np.random.default_rng(5), 2, 33)
    cfg = EncodeConfig(frames=33)
    out = encode(sk, NTU, cfg)
    origin, rot = ref.frame_of_reference(sk.joints, NTU.centre, None, None, False)
    grid, _ = ref.gather(sk.joints, NTU.column_order, 2, origin, rot, False)
    np.testing.assert_array_equal(bits(out[0]), bits(grid.astype(np.float16)))


def test_column_layout_covers_every_joint_once_per_person():
    for spec in (NTU, UCLA):
        layout = column_layout(spec)
        assert [c["column"] for c in layout] == list(range(spec.max_persons * spec.num_joints))
        for m in range(spec.max_persons):
            names = [c["joint"] for c in layout if c["person"] == m]
            assert sorted(names) == sorted(spec.joints)
        first = [c for c in layout if c["person"] == 0]
        assert [c["part"] for c in first][0] == "torso" and first[-1]["part"] == "right_leg"
        assert first[0]["joint"] == spec.joints[spec.parts[0][0]]


# ------------------------------------------------------------------- absent actors, edge cases


def test_absent_second_person_is_zero_in_every_stream():
    sk = skeleton(np.random.default_rng(1), 1, 25, absent=0.0)
    out = encode(sk, NTU, EncodeConfig(frames=16))
    assert np.all(out[:, :, :, 25:] == 0)
    assert np.any(out[0, :, :, :25] != 0)
    assert not np.signbit(out[:, :, :, 25:]).any()  # +0, not -0


def test_frames_without_an_actor_are_zero_and_break_motion():
    rng = np.random.default_rng(2)
    sk = skeleton(rng, 2, 12, absent=0.0)
    sk.joints[1, 4:7] = np.nan
    out = encode(sk, NTU, EncodeConfig(frames=12)).astype(np.float32)
    joint, motion, bone = out
    assert np.all(joint[:, 4:7, 25:] == 0) and np.any(joint[:, 3, 25:] != 0)
    assert np.all(motion[:, 3:7, 25:] == 0)  # into, inside and out of the gap
    assert np.any(motion[:, 7, 25:] != 0)
    assert np.all(bone[:, 4:7, 25:] == 0)
    assert np.all(motion[:, -1] == 0)  # last frame


def test_centre_is_main_actor_first_valid_frame():
    sk = skeleton(np.random.default_rng(4), 2, 10, absent=0.0)
    sk.joints[0, :3] = np.nan
    out = encode(sk, NTU, EncodeConfig(frames=10, streams=("joint",)))
    col = int(np.flatnonzero(NTU.column_order == NTU.centre)[0])
    np.testing.assert_array_equal(out[0, :, 3, col], 0)


def test_single_frame_sample_repeats_its_frame():
    sk = skeleton(np.random.default_rng(6), 2, 1, absent=0.0)
    out = encode(sk, NTU, EncodeConfig(frames=8)).astype(np.float32)
    assert np.all(out[:, :, :, :] == out[:, :, :1, :])
    assert np.all(out[1] == 0)  # no motion


def test_empty_and_mismatched_samples_raise():
    empty = Skeleton("a", "a.skeleton", np.zeros((1, 0, 25, 3), np.float32), np.zeros(0, np.int64))
    with pytest.raises(EmptySampleError, match="a.skeleton"):
        encode(empty, NTU, EncodeConfig())
    three = Skeleton("b", "b.skeleton", np.zeros((3, 4, 25, 3), np.float32), np.arange(4))
    with pytest.raises(ValueError, match="3 actors"):
        encode(three, NTU, EncodeConfig())
    with pytest.raises(ValueError, match="expected joints"):
        encode(three, UCLA, EncodeConfig())


def test_two_dimensional_spec_gets_a_zero_third_channel(tmp_path):
    text = Path(NTU.source).read_text(encoding="utf-8").replace("dims: [x, y, z]", "dims: [x, y]")
    path = tmp_path / "flat25.yaml"
    path.write_text(text, encoding="utf-8")
    flat = load_spec(path)
    sk = skeleton(np.random.default_rng(11), 1, 12)
    sk2 = Skeleton(sk.name, sk.source, sk.joints[..., :2].copy(), sk.frame_index)
    out = encode(sk2, flat, EncodeConfig(frames=12))
    assert out.shape == (3, 3, 12, 50)
    assert not out[:, 2].any() and out[0, :2].any()
    with pytest.raises(ValueError, match="2-D"):
        encode(sk2, flat, EncodeConfig(align=True))


# --------------------------------------------------------------------------- storage forms


def test_uint8_image_is_reproduced_bit_for_bit_from_the_stored_compact_grid():
    sk = skeleton(np.random.default_rng(7), 2, 57)
    compact_cfg = EncodeConfig(frames=64, align=True)
    image_cfg = EncodeConfig(frames=64, align=True, image_size=(224, 224), dtype="uint8")
    stored = encode(sk, NTU, compact_cfg)
    image = encode(sk, NTU, image_cfg)
    assert image.shape == (3, 3, 224, 224) and image.dtype == np.uint8
    mapping = pixel_mapping_params(image_cfg)
    np.testing.assert_array_equal(to_image(stored, (224, 224), mapping), image)
    np.testing.assert_array_equal(image, ref.to_image(stored, (224, 224)))
    assert image.min() < 64 and image.max() > 191  # min-max spread (bilinear blends the extremes)
    batch = to_image(np.stack([stored, stored]), (224, 224), mapping)  # a loader's batch
    np.testing.assert_array_equal(batch[1], image)


def test_float16_image_is_the_bilinear_resize_of_the_compact_grid():
    sk = skeleton(np.random.default_rng(8), 1, 30)
    grid = encode(sk, NTU, EncodeConfig(frames=16))
    img = encode(sk, NTU, EncodeConfig(frames=16, image_size=(40, 112)))
    assert img.shape == (3, 3, 40, 112) and img.dtype == np.float16
    want = ref.resize_bilinear(grid.astype(np.float32).reshape(9, 16, 50), 40, 112).astype(
        np.float16
    )
    np.testing.assert_array_equal(bits(img), bits(want.reshape(img.shape)))


def test_constant_channels_map_to_zero_without_nan():
    grid = np.zeros((3, 3, 8, 50), np.float16)
    img = to_image(grid, (16, 16), pixel_mapping_params(EncodeConfig()), as_float=True)
    assert np.all(img == 0)


def test_unknown_pixel_mapping_is_refused():
    with pytest.raises(StoreError, match="not implemented"):
        to_image(np.zeros((1, 3, 4, 4), np.float16), (8, 8), {"name": "gamma"})


# --------------------------------------------------------------------------- config


def test_config_round_trip_and_validation():
    cfg = EncodeConfig(
        streams=("bone", "joint"), frames=32, align=True, image_size=(224, 224), dtype="uint8"
    )
    d = cfg.to_dict()
    assert d["streams"] == ["bone", "joint"] and d["image_size"] == [224, 224]
    assert EncodeConfig.from_dict({**d, "pixel_mapping": pixel_mapping_params(cfg)}) == cfg
    assert stored_shape(NTU, cfg) == (2, 3, 224, 224)
    assert stored_shape(NTU, EncodeConfig()) == (3, 3, 64, 50)
    for bad in (
        {"streams": ()},
        {"streams": ("joint", "joint")},
        {"streams": ("rgb",)},
        {"frames": 0},
        {"dtype": "uint8"},
        {"dtype": "float32"},
        {"image_size": (224,)},
    ):
        with pytest.raises(ValueError):
            EncodeConfig(**bad)
    with pytest.raises(ValueError, match="unknown encoding keys"):
        EncodeConfig.from_dict({"frame": 3})


# --------------------------------------------------------------------------- statistics


def test_stream_stats_match_numpy_and_merge_exactly():
    rng = np.random.default_rng(9)
    batches = [rng.normal(1.0, 2.0, (k, 2, 3, 8, 10)).astype(np.float16) for k in (3, 5, 1)]
    whole = StreamStats(2)
    parts = []
    for b in batches:
        whole.update(b)
        s = StreamStats(2)
        s.update(b)
        parts.append(s)
    merged = StreamStats(2)
    for s in parts:
        merged.merge(s)
    for name in ("count", "sum", "sumsq", "min", "max"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    every = np.concatenate(batches).astype(np.float64)
    d = merged.to_dict(["joint", "bone"])
    np.testing.assert_allclose(d["bone"]["mean"], every[:, 1].mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(d["bone"]["std"], every[:, 1].std(axis=(0, 2, 3)), rtol=1e-9)
    assert d["joint"]["min"] == every[:, 0].min(axis=(0, 2, 3)).tolist()
    assert d["joint"]["count"] == 9 * 8 * 10
    assert StreamStats(1).to_dict(["joint"])["joint"]["mean"] is None


def test_stream_stats_moments_kernel_sums_lanes_in_order():
    x = np.random.default_rng(10).normal(size=(3, 103)).astype(np.float32)
    x[2, 50] = -0.0
    got = K._plane_moments(x)
    for p in range(3):
        v = x[p].astype(np.float64)
        full = len(v) - len(v) % 4
        lanes = [list(v[lane:full:4]) for lane in range(4)]
        lanes[0] += list(v[full:])
        sums = []
        for lane in lanes:
            acc = acc2 = 0.0
            for value in lane:
                acc += value
                acc2 += value * value
            sums.append((acc, acc2))
        s = (sums[0][0] + sums[1][0]) + (sums[2][0] + sums[3][0])
        s2 = (sums[0][1] + sums[1][1]) + (sums[2][1] + sums[3][1])
        assert got[p].tolist() == [s, s2, v.min(), v.max()]
    halves = x.astype(np.float16)
    np.testing.assert_array_equal(
        K._half_plane_moments(halves.view(np.uint16)), K._plane_moments(halves.astype(np.float32))
    )


def test_warm_compiles_every_entry_point_the_encoder_uses():
    """After warm(), encoding in any form, to_image and stats compile nothing new (fork safety)."""
    script = """
import numpy as np
from s2i_prep.encoding import EncodeConfig, StreamStats, encode, pixel_mapping_params, to_image
from s2i_prep.kernels import s2i as K
from s2i_prep.skeleton import Skeleton
from s2i_prep.specs import load_spec
K.warm()
kernels = {n: f for n, f in vars(K).items() if hasattr(f, "signatures")}
before = {n: len(f.signatures) for n, f in kernels.items()}
spec = load_spec("ntu25")
joints = np.random.default_rng(0).normal(size=(2, 9, 25, 3)).astype(np.float32)
sk = Skeleton("a", "a", joints, np.arange(9))
for cfg in (EncodeConfig(), EncodeConfig(align=True, image_size=(20, 30)),
            EncodeConfig(image_size=(20, 30), dtype="uint8")):
    out = encode(sk, spec, cfg)
    StreamStats(3).update(out[None])
grid = encode(sk, spec, EncodeConfig())
to_image(grid, (8, 8), pixel_mapping_params(EncodeConfig()), as_float=True)
after = {n: len(f.signatures) for n, f in kernels.items()}
print([n for n in kernels if after[n] != before[n]])
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_bench_encode_quick_runs():
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_encode.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["bench"] == "encode" and line["compact_samples_per_s"] > 0


# --------------------------------------------------------------------------- real recordings


@pytest.mark.realdata
@pytest.mark.parametrize("spec,folder", [(NTU, "ntu"), (UCLA, "nw_ucla")])
def test_real_recordings_encode_like_the_twin(realdata, spec, folder):
    from s2i_prep.bodies import select_bodies
    from s2i_prep.readers import get_reader

    reader = get_reader(spec.reader)
    files = reader.discover(realdata / folder)
    assert files
    for path in files:
        for raw in reader.read(path, spec):
            sk = select_bodies(raw, spec)
            for align in (False, True):
                got = encode(sk, spec, EncodeConfig(align=align))
                assert np.isfinite(got).all(), path
                want = ref.encode_compact(sk.joints, spec, STREAMS, 64, align)
                np.testing.assert_array_equal(bits(got), bits(want), err_msg=str(path))
            if sk.num_persons == 1 and spec.max_persons == 2:
                assert not got[:, :, :, spec.num_joints :].any()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**31))
def test_packed_statistics_merge_bit_identically_to_one_by_one(k: int, seed: int) -> None:
    """The parent merges a batch of per-sample statistics at once: it must give exactly the
    float64 sums of merging them one after another (rounding depends on the order)."""
    from s2i_prep.encoding import StreamStats

    rng = np.random.default_rng(seed)
    # float32 values of mixed magnitudes: their float64 sums round (float16 ones would be exact)
    scale = 10.0 ** rng.integers(-6, 7, size=(k, 1, 1, 1, 1))
    samples = (rng.standard_normal((k, 3, 3, 4, 5)) * scale).astype(np.float32)
    one, batch, per = StreamStats(3), StreamStats(3), []
    for x in (one, batch):
        x.update(samples[:1])  # a non-trivial running total first
    for s in samples:
        p = StreamStats(3)
        p.update(s[None])
        one.merge(p)
        per.append(p.packed())
    batch.merge_packed(np.stack(per))
    for name in ("count", "sum", "sumsq", "min", "max"):
        a, b = getattr(one, name), getattr(batch, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
