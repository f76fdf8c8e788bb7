"""The synthetic generator: exact grammars, realism features, round trips, determinism."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from s2i_prep.cli import main
from s2i_prep.errors import StoreError
from s2i_prep.kernels.fmt import format_ntu, format_rows_fixed, format_ucla_skeletons
from s2i_prep.readers import get_reader
from s2i_prep.readers.ntu import parse_ntu_bytes
from s2i_prep.specs import load_spec
from s2i_prep.synthetic import Realism, make_job, write_synthetic
from s2i_prep.synthetic.cameras import color_pixels, depth_pixels
from s2i_prep.synthetic.ntu import CAMERA_AZIMUTH
from s2i_prep.synthetic.ucla import UCLA_ACTION_IDS

from .ntu_grammar import check_name, check_ntu

NO_EXTRAS = Realism(leading_empty=0, empty=0, flicker=0, furniture=0, id_switch=0)


# -- slow, obvious twins of the formatting kernels --------------------------------------------


def ref_g7(x: float) -> str:
    """C#'s float.ToString(): %.7G without trailing zeros, sign-less zero."""
    text = "%.7G" % x
    mantissa, _, exp = text.partition("E")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    text = mantissa + ("E" + exp if exp else "")
    return "0" if text in ("-0", "0") else text


def ref_repr6(x: float) -> str:
    text = repr(float("%.6g" % x))
    return "0.0" if text == "-0.0" else text


def ref_f6(x: float) -> str:
    text = "%.6f" % x
    return text[1:] if text == "-0.000000" else text


@pytest.fixture(scope="module")
def awkward_values() -> np.ndarray:
    rng = np.random.default_rng(7)
    values = rng.normal(0, 1, 3000) * 10.0 ** rng.integers(-7, 4, 3000)
    edges = [
        0.0,
        -0.0,
        1.0,
        -3.0,
        243.0,
        1e-5,
        -9.496876e-05,
        9.9999999e-5,
        1e-4,
        0.5,
        999999.9,
        123.45,
    ]
    return np.concatenate([values, edges]).astype(np.float32).astype(np.float64)


def test_g7_kernel_matches_reference(awkward_values):
    v = awkward_values[: len(awkward_values) // 11 * 11].reshape(1, -1, 11)
    text = (
        format_ntu(
            np.array([1]),
            np.array([5]),
            np.zeros((1, 7), np.int64),
            np.zeros((1, 2)),
            v,
            np.full(v.shape[:2], 2, np.int64),
            False,
        )
        .tobytes()
        .decode()
    )
    lines = text.split("\n")[4:-1]
    got = [t for line in lines for t in line.split()[:11]]
    assert got == [ref_g7(x) for x in v.ravel()]


def test_fixed_and_repr_kernels_match_reference(awkward_values):
    small = awkward_values[np.abs(awkward_values) < 1e5]
    rows = small[: len(small) // 10 * 10].reshape(-1, 10)
    got = format_rows_fixed(rows, 6, False).tobytes().decode().split()
    assert got == [ref_f6(x) for x in rows.ravel()]
    body = format_ucla_skeletons(small.reshape(-1, 1, 1)).tobytes().decode()
    assert body[3:-3].split("]], [[") == [ref_repr6(x) for x in small]


# -- NTU ---------------------------------------------------------------------------------------


def ntu_render(n: int, **realism) -> list:
    job = make_job("ntu25", n, seed=3, realism=Realism(**realism), line_endings="mixed")
    return [job.render(i) for i in range(n)]


@pytest.fixture(scope="module")
def ntu_corpus() -> list:
    """Every realism feature turned up so a small corpus shows each of them."""
    return ntu_render(
        36,
        leading_empty=0.3,
        empty=0.1,
        flicker=0.3,
        furniture=0.3,
        id_switch=0.3,
        integer_pixels=0.01,
    )


def test_ntu_files_follow_the_real_grammar(ntu_corpus):
    seen = set()
    for r in ntu_corpus:
        setup, cam, perf, rep, action = check_name(r.info.path)
        assert r.info.label == action - 1
        f = check_ntu(r.data)
        assert f.crlf == ("crlf" in r.info.features)
        assert all(2**56 < i < 2**56 + 100_000 for i in f.body_ids)
        seen |= set(r.info.features)
        seen |= {"upper_exp"} if f.has_upper_exponent else set()
        seen |= {"bare_int"} if f.has_bare_integer_pixel else set()
        seen |= {f"state{s}" for s in f.joint_states}
    assert {
        "empty",
        "leading_empty",
        "flicker",
        "furniture",
        "id_switch",
        "inferred",
        "two_person",
        "crlf",
        "upper_exp",
        "bare_int",
        "state1",
        "state2",
    } <= seen


def test_ntu_round_trip_through_the_reader(ntu_corpus):
    spec = load_spec("ntu25")
    for r in ntu_corpus:
        raw = parse_ntu_bytes(r.data, r.info.path, spec)
        tracks = sorted(r.tracks, key=lambda t: t.frames[0])
        assert raw.body_ids == tuple(t.body_id for t in tracks)
        for b, track in enumerate(tracks):
            present = np.flatnonzero(raw.present[b])
            np.testing.assert_array_equal(present, track.frames)
            np.testing.assert_allclose(raw.joints[b, present], track.joints, rtol=1e-6, atol=1e-9)
        if "empty" in r.info.features:
            assert raw.joints.shape[0] == 0


def test_ntu_noise_bodies_look_like_the_real_ones():
    for r in ntu_render(6, flicker=1.0, furniture=1.0, id_switch=1.0):
        lengths = sorted(len(t.frames) for t in r.tracks)
        assert lengths[0] <= 11  # the flicker
        wide = [
            t
            for t in r.tracks
            if np.mean(np.ptp(t.joints[..., 0], 1) > 0.8 * np.ptp(t.joints[..., 1], 1)) > 0.9
        ]
        assert wide, "no furniture-like body"
        actors = [t for t in r.tracks if t not in wide and len(t.frames) > 11]
        first, second = sorted(actors, key=lambda t: t.frames[0])[:2]
        assert first.frames[-1] + 1 == second.frames[0]  # the id switch hands over without a gap


def test_ntu_leading_empty_and_empty_files():
    (empty,) = ntu_render(1, empty=1.0)
    lines = empty.data.decode().splitlines()
    assert lines[1:] == ["0"] * int(lines[0])
    for r in ntu_render(3, leading_empty=1.0, empty=0.0):
        f = check_ntu(r.data)
        lead = f.bodies_per_frame.index(next(b for b in f.bodies_per_frame if b))
        assert lead >= 1 and all(f.bodies_per_frame[lead:])


def test_ntu_pixels_follow_a_pinhole_projection():
    (r,) = ntu_render(1)
    raw = parse_ntu_bytes(r.data, r.info.path, load_spec("ntu25"))
    xyz = raw.joints[0].astype(np.float64)
    np.testing.assert_allclose(raw.joint_fields["depth"][0], depth_pixels(xyz), atol=1e-3)
    np.testing.assert_allclose(
        raw.joint_fields["color"][0], color_pixels(xyz), atol=0.51
    )  # some snapped
    assert 1.5 < np.nanmin(xyz[..., 2]) and np.nanmax(xyz[..., 2]) < 5.0
    assert (raw.joint_fields["depth"][0] >= 0).all() and (
        raw.joint_fields["depth"][0][..., 0] < 512
    ).all()


def test_ntu_cameras_see_distinct_angles():
    """Camera c sees the performer turned by its azimuth: shoulder-line yaws differ by 45 deg."""
    job = make_job("ntu25", 3, realism=Realism.off())
    yaws = []
    for r in (job.render(i) for i in range(3)):
        sh = r.tracks[0].joints[:, 8] - r.tracks[0].joints[:, 4]  # right minus left shoulder
        yaws.append(np.degrees(np.arctan2(sh[:, 2], sh[:, 0])).mean())
    azimuths = [CAMERA_AZIMUTH[c] for c in (1, 2, 3)]
    diffs = np.subtract.outer(yaws, yaws) + np.subtract.outer(azimuths, azimuths)  # x points left
    assert np.abs(diffs).max() < 12


def test_ntu_names_labels_and_splits_behave_like_the_real_dataset():
    job = make_job("ntu25", 900, seed=1)
    spec = load_spec("ntu25")
    grid = job.grid()
    names, labels = [], []
    for p in range(300):
        setup, perf, rep, a = job.performance(p, grid)
        for cam in (1, 2, 3):
            names.append(
                f"S{setup:03d}C{cam:03d}P{perf:03d}R{rep:03d}A{job.config.actions[a].ntu:03d}"
            )
            labels.append(job.config.actions[a].ntu - 1)
    assert len(set(names)) == len(names)
    metas = [spec.parse_name(n) for n in names]
    assert [spec.label_of(m) for m in metas] == labels
    columns = {k: np.array([m[k] for m in metas]) for k in spec.fields}
    for split in spec.splits:
        train, test = split.indices(columns)
        assert len(train) > 50 and len(test) > 50, split.name
    assert len(set(labels)) == 20
    two_person = {a.ntu for a in job.config.actions if a.persons == 2}
    assert two_person and all(50 <= i <= 60 for i in two_person)


# -- PKU-MMD -----------------------------------------------------------------------------------

PKU_NUMBER = re.compile(r"-?\d+\.\d{6}")


PKU_OPTIONS = {"seed": 8, "line_endings": "mixed", "realism": Realism(lost_frames=0.5)}


@pytest.fixture(scope="module", params=[1, 2])
def pku_dir(request, tmp_path_factory) -> tuple[Path, object, object]:
    """A written PKU-MMD corpus of each phase, and its plan."""
    out = tmp_path_factory.mktemp(f"pku{request.param}")
    summary = write_synthetic("pku25", out, 40, phase=request.param, **PKU_OPTIONS)
    return out, summary, make_job("pku25", 40, phase=request.param, **PKU_OPTIONS)


def test_pku_layout_and_grammar(pku_dir):
    out, summary, _ = pku_dir
    assert sorted(p.name for p in out.iterdir()) == ["label", "skeleton", "split"]
    videos = sorted(p.stem for p in (out / "skeleton").iterdir())
    assert videos == sorted(p.stem for p in (out / "label").iterdir())
    name = re.compile(r"(\d{4}|A\d{2}N\d{2})-[LMR]")
    for video in videos:
        assert name.fullmatch(video)
        data = (out / "skeleton" / f"{video}.txt").read_bytes()
        nl = b"\r\n" if data.endswith(b"\r\n") else b"\n"
        for line in data.split(nl)[:-1]:
            tokens = line.decode().split(" ")
            assert len(tokens) == 150 and all(PKU_NUMBER.fullmatch(t) for t in tokens)
            assert tokens[75:] == ["0.000000"] * 75 or any(float(t) for t in tokens[75:])
        labels = (out / "label" / f"{video}.txt").read_bytes().split(nl)
        assert labels[-1] == b"" and all(re.fullmatch(rb"\d+,\d+,\d+,[12]", x) for x in labels[:-1])
    splits = sorted(p.name for p in (out / "split").iterdir())
    assert splits in (
        ["cross-subject.txt", "cross-view.txt"],
        ["cross_subject_v2.txt", "cross_view_v2.txt"],
    )
    for split in splits:
        lines = (out / "split" / split).read_text().split("\n")
        assert (
            lines[0] == "Training videos: "
            and lines[2] == "Validataion videos: "
            and lines[4] == ""
        )
        train, test = (set(x.split(", ")) - {""} for x in (lines[1], lines[3]))
        assert train | test == set(videos) and not train & test
    assert len(summary.samples) == 40
    features = {f for s in summary.samples for f in s.features}
    assert {"two_person", "lost_frames", "crlf"} <= features


def test_pku_round_trip_through_the_reader(pku_dir):
    out, summary, job = pku_dir
    spec = load_spec("pku25")
    reader = get_reader(spec.reader)
    clips = {c.name: c for p in reader.discover(out) for c in reader.read(p, spec)}
    assert sorted(clips) == sorted(s.name for s in summary.samples)
    for rec in job.recordings():
        for view in job.render_recording(rec):
            assert (out / "skeleton" / f"{view.video}.txt").read_bytes() == view.skeleton
            for info in view.clips:
                clip = clips[info.name]
                meta = dict(info.meta)
                assert clip.label == info.label and clip.meta["start"] == meta["start"]
                assert spec.parse_name(info.name) is not None
                expect = np.stack([t.joints for t in view.tracks])[:, meta["start"] : meta["end"]]
                expect[(expect == 0).all(axis=(-1, -2))] = np.nan  # absent or lost bodies
                np.testing.assert_allclose(clip.joints, expect, atol=6e-7, rtol=1e-6)


# -- NW-UCLA -----------------------------------------------------------------------------------

UCLA_NUMBER = re.compile(r"-?\d+\.\d+(e-\d{2})?")


def test_ucla_grammar_and_round_trip(tmp_path):
    summary = write_synthetic("ucla20", tmp_path, 30, seed=2, realism=Realism(zero_joints=0.5))
    spec = load_spec("ucla20")
    reader = get_reader(spec.reader)
    job = make_job("ucla20", 30, seed=2, realism=Realism(zero_joints=0.5))
    assert {f for s in summary.samples for f in s.features} == {"zero_joints"}
    for i, info in enumerate(summary.samples):
        path = tmp_path / info.path
        data = path.read_bytes()
        assert re.fullmatch(r"a(\d{2})_s(\d{2})_e(\d{2})_v0[123]\.json", path.name)
        obj = ucla_grammar(data, path.stem)
        assert obj["label"] == UCLA_ACTION_IDS.index(int(path.name[1:3])) + 1 == info.label + 1
        (raw,) = reader.read(path, spec)
        assert raw.label == info.label
        np.testing.assert_allclose(raw.joints[0], job.render(i).tracks[0].joints, rtol=6e-6)


# -- against the real files (skipped when ../shared/realdata is absent) --------------------------


def ucla_grammar(data: bytes, stem: str) -> dict:
    """NW-UCLA all_sqe JSON as FORMATS.md 3.1 describes it; returns the parsed object."""
    assert b"\n" not in data
    assert data.startswith(b'{"file_name": "%s", "skeletons": [[[' % stem.encode())
    obj = json.loads(data)
    assert list(obj) == ["file_name", "skeletons", "label"]
    assert all(len(f) == 20 and all(len(j) == 3 for j in f) for f in obj["skeletons"])
    numbers = data.decode().split('"skeletons": ')[1].split(', "label"')[0]
    assert all(UCLA_NUMBER.fullmatch(t) for t in re.split(r"[\[\], ]+", numbers) if t)
    return obj


@pytest.mark.realdata
def test_grammar_checkers_accept_the_real_files(realdata):
    """The checkers the synthetic files pass are not stricter than reality."""
    for path in sorted((realdata / "ntu").glob("*.skeleton")):
        check_name(path.name)
        check_ntu(path.read_bytes())
    for path in sorted((realdata / "nw_ucla").glob("*.json")):
        obj = ucla_grammar(path.read_bytes(), path.stem)
        assert obj["label"] == UCLA_ACTION_IDS.index(int(path.name[1:3])) + 1


@pytest.mark.realdata
def test_synthetic_bones_are_as_long_as_real_ones(realdata):
    spec = load_spec("ntu25")
    parent = spec.parent_array

    def mean_bones(raw) -> np.ndarray:
        j = raw.joints[0][raw.present[0]]
        return np.linalg.norm(j - j[:, parent], axis=-1).mean(0)

    real = np.mean(
        [
            mean_bones(parse_ntu_bytes(p.read_bytes(), str(p), spec))
            for p in sorted((realdata / "ntu").glob("*.skeleton"))
        ],
        axis=0,
    )
    job = make_job("ntu25", 30, realism=Realism.off())
    synth = np.mean(
        [mean_bones(parse_ntu_bytes(job.render(i).data, "s", spec)) for i in range(30)], axis=0
    )
    bones = parent != np.arange(len(parent))
    assert np.all(np.abs(synth[bones] / real[bones] - 1) < 0.25)


# -- determinism, workers, CLI -----------------------------------------------------------------


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("fmt,n", [("ntu25", 14), ("pku25", 25), ("ucla20", 10)])
def test_output_is_deterministic_and_independent_of_workers(tmp_path, fmt, n):
    digests = [
        tree_digest(
            Path(write_synthetic(fmt, tmp_path / f"w{w}_{k}", n, seed=9, workers=w).out_dir)
        )
        for w, k in ((0, 0), (2, 1), (0, 2))
    ]
    assert digests[0] == digests[1] == digests[2]
    other = write_synthetic(fmt, tmp_path / "seed10", n, seed=10)
    assert tree_digest(Path(other.out_dir)) != digests[0]


def test_samples_are_rendered_alone_identically():
    """A sample does not depend on how many samples the run has (prefix stability)."""
    assert (
        make_job("ntu25", 7, seed=4).render(5).data == make_job("ntu25", 50, seed=4).render(5).data
    )


def test_no_noise_gives_clean_files():
    for r in ntu_render(6, **{k: 0.0 for k in Realism.__dataclass_fields__}):
        f = check_ntu(r.data)
        assert f.joint_states == {2} and all(f.bodies_per_frame)
        assert len(r.tracks) == (2 if "two_person" in r.info.features else 1)


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "ntu"
    assert (
        main(
            [
                "synth",
                "--format",
                "ntu25",
                str(out),
                "--samples",
                "4",
                "--frames",
                "10:20",
                "--workers",
                "0",
                "--json",
            ]
        )
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["samples"] == info["files"] == len(list(out.iterdir())) == 4
    assert main(["synth", "--format", "ntu25", str(out), "--samples", "4"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (
        main(["synth", "--format", "ucla20", str(tmp_path / "u"), "-n", "3", "--frames", "9"]) == 2
    )
    assert (
        main(["synth", "--format", "ucla20", str(tmp_path / "u"), "-n", "3", "--classes", "11"])
        == 2
    )


def test_bad_options_are_explained(tmp_path):
    with pytest.raises(ValueError, match="--classes must be 1..10"):
        make_job("ucla20", 3, classes=11)
    with pytest.raises(ValueError, match="--seed must be"):
        make_job("ntu25", 3, seed=-1)
    with pytest.raises(ValueError, match="raise --subjects"):
        make_job("ucla20", 10_000, subjects=2)
    (tmp_path / "x").write_text("")
    with pytest.raises(StoreError, match="not empty"):
        write_synthetic("ntu25", tmp_path, 1)


def test_bench_synth_quick_runs():
    """The benchmark script cannot rot: its --quick mode ends with a JSON line."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_synth.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["results"][0]["files"] == 12
