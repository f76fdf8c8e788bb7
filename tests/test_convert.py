"""End-to-end tests of ``s2i-prep convert`` and ``s2i-prep preview`` on generated raw files.

Outputs are opened with plain zarr / h5py, not with s2i, so these tests check the on-disk
contract. Raw files are written into ``tmp_path`` at test time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from s2i_prep.cli import cli

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------
# Raw file builders (small, realistic enough for the readers and body selection).


def _pose(rng: np.random.Generator, t: int, shift: float) -> np.ndarray:
    """(t, 25, 3) joints of one standing, slowly moving person (taller than wide)."""
    base = np.stack(
        [
            rng.uniform(-0.25, 0.25, 25) + shift,
            np.linspace(-0.8, 0.8, 25),
            rng.uniform(2.8, 3.2, 25),
        ],
        axis=-1,
    )
    wave = 0.05 * np.sin(np.linspace(0, 3, t))[:, None, None]
    return (base[None] + wave + rng.normal(0, 0.01, (t, 25, 3))).astype(np.float32)


def ntu_text(seed: int, frames: int = 40, bodies: int = 1, crlf: bool = False) -> str:
    rng = np.random.default_rng(seed)
    poses = [_pose(rng, frames, 0.8 * b) for b in range(bodies)]
    lines = [str(frames)]
    for f in range(frames):
        lines.append(str(bodies))
        for b in range(bodies):
            lines.append(f"{72057594037931101 + b} 0 1 1 1 1 0 0.1 -0.05 2")
            lines.append("25")
            for x, y, z in poses[b][f]:
                lines.append(f"{x:.7f} {y:.7f} {z:.7f} 250.1 200.2 900.5 500.5 0.1 0.2 0.3 0.4 2")
    nl = "\r\n" if crlf else "\n"
    return nl.join(lines) + nl


NTU_NAMES = [
    # setup, camera, subject, replication, action: covers xsub/xview train and test.
    (1, 1, 1, 1, 1),
    (1, 2, 2, 1, 2),
    (1, 3, 3, 2, 3),
    (2, 1, 4, 1, 50),
    (2, 2, 5, 2, 5),
    (3, 3, 6, 1, 6),
    (18, 1, 45, 1, 61),
    (19, 2, 46, 2, 120),
    (4, 1, 7, 1, 7),
    (5, 2, 8, 2, 8),
]


def ntu_name(s: int, c: int, p: int, r: int, a: int) -> str:
    return f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"


def make_ntu(root: Path, n: int = len(NTU_NAMES), frames: int = 40) -> list[str]:
    """Write ``n`` good NTU files (two-person ones for actions 50-60, 106-120) into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        s, c, p, r, a = NTU_NAMES[i % len(NTU_NAMES)]
        if i >= len(NTU_NAMES):
            s = 20 + i // len(NTU_NAMES)
        name = ntu_name(s, c, p, r, a)
        bodies = 2 if 50 <= a <= 60 or a >= 106 else 1
        (root / f"{name}.skeleton").write_text(
            ntu_text(i, frames, bodies, crlf=i % 3 == 0), newline=""
        )
        names.append(name)
    return sorted(names)


def run_cli(*args: str) -> tuple[int, str]:
    """Run the CLI through ``main`` (the real exit-code mapping); returns (status, stderr+stdout)."""
    runner = CliRunner()
    result = runner.invoke(cli, list(args), catch_exceptions=True)
    from s2i_prep.errors import S2IError

    if isinstance(result.exception, S2IError):
        return 1, result.output + f"error: {result.exception}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def read_zarr(path: Path) -> dict:
    import zarr

    g = zarr.open_group(str(path), mode="r")
    out = {name: np.asarray(g[name][:]) for name in g.array_keys()}
    out["attrs"] = dict(g.attrs)
    out["splits"] = (
        {
            s: {p: np.asarray(g["splits"][s][p][:]) for p in ("train", "test")}
            for s in g["splits"].group_keys()
        }
        if "splits" in g
        else {}
    )
    return out


def read_h5(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        out = {name: f[name][()] for name in f if isinstance(f[name], h5py.Dataset)}
        out["attrs"] = {k: f.attrs[k] for k in f.attrs}
        out["splits"] = {
            s: {p: f["splits"][s][p][()] for p in ("train", "test")} for s in f["splits"]
        }
    return out


def _attr(data: dict, key: str):
    value = data["attrs"][key]
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


# --------------------------------------------------------------------------------------------
# End to end, per output format.


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_ntu_end_to_end(tmp_path: Path, suffix: str) -> None:
    names = make_ntu(tmp_path / "raw")
    out = tmp_path / f"out{suffix}"
    status, text = run_cli(
        "convert",
        "--format",
        "ntu25",
        str(tmp_path / "raw"),
        str(out),
        "--workers",
        "0",
        "-q",
    )
    assert status == 0, text
    data = read_zarr(out) if suffix == ".zarr" else read_h5(out)
    ids = [s.decode() if isinstance(s, bytes) else str(s) for s in data["sample_id"]]
    assert ids == names
    assert data["s2i"].shape == (len(names), 3, 3, 64, 50)
    assert data["s2i"].dtype == np.float16
    assert np.isfinite(data["s2i"]).all()
    assert data["label"].tolist() == [int(n[-3:]) - 1 for n in names]
    assert data["num_persons"].tolist() == [
        2 if 50 <= int(n[-3:]) <= 60 or int(n[-3:]) >= 106 else 1 for n in names
    ]
    assert (data["num_frames"] == 40).all()
    assert data["subject"].tolist() == [int(n[9:12]) for n in names]
    xview = data["splits"]["ntu60-xview"]
    assert [ids[i] for i in xview["test"]] == [
        n for n in names if n[4:8] == "C001" and int(n[1:4]) <= 17 and int(n[-3:]) <= 60
    ]
    report = _attr(data, "report")
    assert report["skipped"] == [] and report["counts"]["samples"] == len(names)
    stats = _attr(data, "stats")
    assert set(stats) == {"joint", "motion", "bone"} and stats["joint"]["count"] > 0
    assert not out.with_name(out.name + ".partial").exists()
    assert not out.with_name(out.name + ".lock").exists()


def test_image_uint8_and_stream_subset(tmp_path: Path) -> None:
    make_ntu(tmp_path / "raw", n=4)
    out = tmp_path / "img.zarr"
    status, text = run_cli(
        "convert",
        "--format",
        "ntu25",
        str(tmp_path / "raw"),
        str(out),
        "-q",
        "--workers",
        "0",
        "--streams",
        "joint,bone",
        "--image-size",
        "32x48",
        "--dtype",
        "uint8",
    )
    assert status == 0, text
    data = read_zarr(out)
    assert data["s2i"].shape == (4, 2, 3, 32, 48) and data["s2i"].dtype == np.uint8
    assert _attr(data, "streams") == ["joint", "bone"]


# --------------------------------------------------------------------------------------------
# Bad inputs.


def _write_bad_files(raw: Path) -> dict[str, str]:
    """One file per failure mode; returns file name -> expected skip kind."""
    good = ntu_text(99, frames=20)
    lines = good.splitlines(keepends=True)
    (raw / "S001C001P001R001A011.skeleton").write_text(
        "".join(lines[: len(lines) // 2])
    )  # truncated
    (raw / "S001C001P001R001A012.skeleton").write_text("")  # empty
    (raw / "S001C001P001R001A013.skeleton").write_bytes(bytes(range(256)) * 8)  # binary
    (raw / "S001C001P001R001A014.skeleton").write_text("3\n0\n0\n0\n")  # no body in any frame
    (raw / "not_an_ntu_name.skeleton").write_text(good)  # wrongly named
    (raw / "S001C001P001R001A015.skeleton").mkdir()  # unreadable: a directory named like a file
    return {
        "S001C001P001R001A011.skeleton": "TruncatedError",
        "S001C001P001R001A012.skeleton": "TruncatedError",
        "S001C001P001R001A013.skeleton": "ParseError",
        "S001C001P001R001A014.skeleton": "EmptySampleError",
        "not_an_ntu_name.skeleton": "bad_name",
        "S001C001P001R001A015.skeleton": "not_a_file",
    }


def test_bad_inputs_are_skipped_and_reported(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    names = make_ntu(raw, n=5)
    bad = _write_bad_files(raw)
    out = tmp_path / "out.zarr"
    status, text = run_cli("convert", "--format", "ntu25", str(raw), str(out), "--workers", "0")
    assert status == 3, text
    data = read_zarr(out)
    assert [str(s) for s in data["sample_id"]] == names
    report = _attr(data, "report")
    skipped = {Path(r["path"]).name: r for r in report["skipped"]}
    assert set(skipped) == set(bad)
    for fname, kind in bad.items():
        assert skipped[fname]["kind"] == kind, skipped[fname]
    assert skipped["S001C001P001R001A011.skeleton"]["reason"].startswith("line ")
    assert "not a regular file but a folder" in skipped["S001C001P001R001A015.skeleton"]["reason"]
    assert report["counts"]["skipped"] == len(bad)
    assert "skipped" in text and "TruncatedError" in text


def test_on_error_fail_stops_without_output(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_ntu(raw, n=3)
    (raw / "S001C001P001R001A012.skeleton").write_text("")
    out = tmp_path / "out.zarr"
    status, text = run_cli(
        "convert",
        "--format",
        "ntu25",
        str(raw),
        str(out),
        "--workers",
        "0",
        "-q",
        "--on-error",
        "fail",
    )
    assert status == 1
    assert "S001C001P001R001A012" in text and "--on-error fail" in text
    assert not out.exists()
    assert not out.with_name(out.name + ".lock").exists()


def test_exclude_list_and_keep_missing(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_ntu(raw, n=2)
    # On the official missing-skeleton list: all frames empty.
    (raw / "S001C002P005R002A008.skeleton").write_text("3\n0\n0\n0\n")
    status, text = run_cli(
        "convert",
        "--format",
        "ntu25",
        str(raw),
        str(tmp_path / "a.zarr"),
        "--workers",
        "0",
        "-q",
    )
    assert status == 0, text
    assert _attr(read_zarr(tmp_path / "a.zarr"), "report")["counts"]["excluded"] == 1
    status, text = run_cli(
        "convert",
        "--format",
        "ntu25",
        str(raw),
        str(tmp_path / "b.zarr"),
        "--workers",
        "0",
        "-q",
        "--keep-missing",
    )
    assert status == 3, text


# --------------------------------------------------------------------------------------------
# Output protection.


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_ntu(raw, n=3)
    out = tmp_path / "out.h5"
    args = ("convert", "--format", "ntu25", str(raw), str(out), "--workers", "0", "-q")
    assert run_cli(*args)[0] == 0
    status, text = run_cli(*args)
    assert status == 1 and "--overwrite" in text
    make_ntu(raw, n=4)
    assert run_cli(*args, "--overwrite")[0] == 0
    assert len(read_h5(out)["label"]) == 4


def test_refuses_while_another_conversion_runs(tmp_path: Path) -> None:
    from s2i_prep.store import open_writer

    raw = tmp_path / "raw"
    make_ntu(raw, n=2)
    out = tmp_path / "out.zarr"
    holder = open_writer(out, sample_shape=(3, 3, 64, 50), dtype="float16")
    try:
        status, text = run_cli(
            "convert", "--format", "ntu25", str(raw), str(out), "--workers", "0", "-q"
        )
    finally:
        holder.close()
    assert status == 1 and "already running" in text
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# Determinism and resume.


def _output_bytes(path: Path) -> dict[str, bytes]:
    if path.is_file():  # HDF5
        return {"": path.read_bytes()}
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(("suffix", "counts"), [(".zarr", ("0", "1", "2")), (".h5", ("0", "2"))])
def test_output_identical_whatever_the_worker_count(
    tmp_path: Path, suffix: str, counts: tuple[str, ...]
) -> None:
    raw = tmp_path / "raw"
    make_ntu(raw, n=30, frames=24)
    (raw / "S001C001P001R001A012.skeleton").write_text("")
    outputs = []
    for workers in counts:
        out = tmp_path / f"w{workers}{suffix}"
        args = ("--workers", workers, "--shard-size", "7")
        status, text = run_cli("convert", "--format", "ntu25", str(raw), str(out), "-q", *args)
        assert status == 3, text
        outputs.append(_output_bytes(out))
    for other in outputs[1:]:
        assert other.keys() == outputs[0].keys()
        for key in other:
            assert other[key] == outputs[0][key], key


def _convert_cmd(raw: Path, out: Path, *extra: str) -> list[str]:
    code = "import sys; from s2i_prep.cli import main; sys.exit(main(sys.argv[1:]))"
    return [
        sys.executable,
        "-c",
        code,
        "convert",
        "--format",
        "ntu25",
        str(raw),
        str(out),
        "-q",
        "--shard-size",
        "16",
        *extra,
    ]


def test_resume_after_kill_equals_uninterrupted_run(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_ntu(raw, n=300, frames=50)
    for bad in ("S001C001P001R001A012", "S021C001P001R001A013"):
        (raw / f"{bad}.skeleton").write_text("")
    from s2i_prep.pipeline import ConvertConfig, convert

    ref = tmp_path / "ref.zarr"
    convert(ConvertConfig(input=raw, output=ref, format="ntu25", workers=0, shard_size=16))

    out = tmp_path / "out.zarr"
    manifest = out.with_name(out.name + ".partial") / "s2i_manifest.json"
    proc = subprocess.Popen(
        _convert_cmd(raw, out, "--workers", "1"), cwd=ROOT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if json.loads(manifest.read_text()).get("committed", 0) >= 32:
                    os.killpg(proc.pid, signal.SIGSTOP)  # freeze at once, then kill for real
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.002)
        assert proc.poll() is None, "conversion finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    committed = json.loads(manifest.read_text())["committed"]
    assert 0 < committed < 300

    # A run without --resume refuses to touch the partial output.
    status = subprocess.run(
        _convert_cmd(raw, out, "--workers", "2"),
        cwd=ROOT,
        timeout=300,
        check=False,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 1 and "--resume" in status.stderr
    status = subprocess.run(
        _convert_cmd(raw, out, "--workers", "2", "--resume"),
        cwd=ROOT,
        check=False,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 3, status.stderr
    a, b = read_zarr(ref), read_zarr(out)
    for key in (
        "s2i",
        "label",
        "sample_id",
        "num_frames",
        "num_persons",
        "setup",
        "subject",
    ):
        assert np.array_equal(a[key], b[key]), key
    for split in a["splits"]:
        for part in ("train", "test"):
            assert np.array_equal(a["splits"][split][part], b["splits"][split][part])
    for key in ("report", "stats", "class_count", "columns", "encoding"):
        assert _attr(a, key) == _attr(b, key), key


def test_progress_callback_counts_files_bytes_and_skips(tmp_path: Path) -> None:
    from s2i_prep.pipeline import ConvertConfig, convert

    raw = tmp_path / "raw"
    make_ntu(raw, n=12)
    (raw / "S001C001P001R001A012.skeleton").write_text("")
    updates = []
    res = convert(
        ConvertConfig(input=raw, output=tmp_path / "o.zarr", workers=2),
        progress=updates.append,
    )
    # The first update comes as soon as the inputs are planned (the bar starts at once).
    assert [u.files_done for u in updates] == list(range(0, 14))
    assert all(u.files_total == 13 for u in updates)
    assert updates[-1].run_bytes == res.bytes_in and updates[-1].run_seconds > 0
    assert updates[-1].bytes_done == updates[-1].bytes_total == res.bytes_in
    assert (updates[-1].samples, updates[-1].skipped) == (12, 1) == (res.samples, res.skipped)


# --------------------------------------------------------------------------------------------
# Other raw formats.


def make_ucla(root: Path) -> list[str]:
    """NW-UCLA "all_sqe" JSON files (one body, 20 joints, 1-based contiguous label)."""
    root.mkdir(parents=True, exist_ok=True)
    label_of = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7, 9: 8, 11: 9, 12: 10}
    names = []
    for i, (a, s, e, v) in enumerate([(1, 1, 0, 1), (2, 3, 1, 2), (8, 4, 2, 3), (12, 10, 4, 1)]):
        name = f"a{a:02d}_s{s:02d}_e{e:02d}_v{v:02d}"
        joints = _pose(np.random.default_rng(i), 30, 0.0)[:, :20]
        doc = {
            "file_name": name,
            "skeletons": joints.astype(float).round(6).tolist(),
            "label": label_of[a],
        }
        (root / f"{name}.json").write_text(json.dumps(doc))
        names.append(name)
    return sorted(names)


def make_pku(root: Path, videos: tuple[str, ...] = ("0002-L", "0002-M", "A01N02-R")) -> list[str]:
    """PKU-MMD layout: skeleton/<video>.txt (150 numbers a line), label/<video>.txt rows."""
    (root / "skeleton").mkdir(parents=True, exist_ok=True)
    (root / "label").mkdir(exist_ok=True)
    names = []
    for i, video in enumerate(videos):
        rng = np.random.default_rng(100 + i)
        frames = 200
        body = _pose(rng, frames, 0.0).reshape(frames, 75)
        table = np.concatenate([body, np.zeros((frames, 75), np.float32)], axis=1)
        (root / "skeleton" / f"{video}.txt").write_text(
            "\n".join(" ".join(f"{v:.6f}" for v in row) for row in table) + "\n"
        )
        rows = [(5 + k, 10 + 45 * k, 40 + 45 * k, 1) for k in range(4)]
        (root / "label" / f"{video}.txt").write_text(
            "".join(f"{a},{s},{e},{c}\n" for a, s, e, c in rows)
        )
        names += [f"{video}_{k:03d}" for k in range(len(rows))]
    return sorted(names)


def test_ucla_end_to_end(tmp_path: Path) -> None:
    names = make_ucla(tmp_path / "raw")
    out = tmp_path / "ucla.h5"
    spec = ROOT / "skeleton_specs" / "ucla20.yaml"  # a spec file instead of a format name
    raw = str(tmp_path / "raw")
    status, text = run_cli("convert", "--spec", str(spec), raw, str(out), "-q", "--workers", "0")
    assert status == 0, text
    data = read_h5(out)
    assert [s.decode() if isinstance(s, bytes) else s for s in data["sample_id"]] == names
    assert data["s2i"].shape == (4, 3, 3, 64, 20)
    assert data["label"].tolist() == [0, 1, 6, 9]
    assert data["view"].tolist() == [1, 2, 3, 1]
    assert data["splits"]["ucla-xview"]["test"].tolist() == [2]


def test_pku_clips_end_to_end_and_worker_determinism(tmp_path: Path) -> None:
    names = make_pku(tmp_path / "raw")
    trees = []
    for workers in ("0", "2"):
        out = tmp_path / f"pku{workers}.zarr"
        status, text = run_cli(
            "convert",
            "--format",
            "pku25",
            str(tmp_path / "raw"),
            str(out),
            "-q",
            "--workers",
            workers,
            "--shard-size",
            "5",
            "--clip-bounds",
            "closed",
        )
        assert status == 0, text
        trees.append(_output_bytes(out))
    assert trees[0] == trees[1]
    data = read_zarr(tmp_path / "pku0.zarr")
    assert [str(s) for s in data["sample_id"]] == names
    assert data["label"].tolist() == [4, 5, 6, 7] * 3
    assert data["num_frames"].tolist() == [31] * 12  # closed bounds: start..end inclusive
    assert data["start"].tolist() == [10, 55, 100, 145] * 3
    assert data["video"].tolist() == [2] * 8 + [-1] * 4
    assert _attr(data, "convert")["reader_options"] == {"clip_bounds": "closed"}


class _InterruptingWriter:
    """Opens the real writer, then stops the process (like Ctrl-C) at the n-th shard write."""

    def __init__(self, open_writer, n: int) -> None:
        self.open_writer, self.n = open_writer, n

    def __call__(self, *args, **kwargs):
        writer = self.open_writer(*args, **kwargs)
        real_write = writer.write_shard

        def write_shard(*a, **kw):
            self.n -= 1
            if self.n < 0:
                raise KeyboardInterrupt
            real_write(*a, **kw)

        writer.write_shard = write_shard
        return writer


def test_resume_inside_a_multi_sample_file(tmp_path: Path) -> None:
    """Shards end in the middle of a PKU video; the resume cursor is (file, position in file)."""
    from dataclasses import replace

    from s2i_prep.encoding import EncodeConfig
    from s2i_prep.pipeline import ConvertConfig, Stages, convert

    make_pku(tmp_path / "raw")
    (tmp_path / "raw" / "skeleton" / "0002-R.txt").write_text("1 2 3\n")  # a bad file in between
    (tmp_path / "raw" / "label" / "0002-R.txt").write_text("1,0,1,1\n")

    def cfg(out: str, **kw) -> ConvertConfig:
        return ConvertConfig(
            input=tmp_path / "raw",
            output=tmp_path / out,
            format="pku25",
            encode=EncodeConfig(frames=16),
            workers=0,
            shard_size=3,
            **kw,
        )

    ref = convert(cfg("ref.zarr"))
    stages = Stages.default()
    with pytest.raises(KeyboardInterrupt):
        convert(
            cfg("out.zarr"),
            stages=replace(stages, open_writer=_InterruptingWriter(stages.open_writer, 2)),
        )
    manifest = json.loads((tmp_path / "out.zarr.partial" / "s2i_manifest.json").read_text())
    # Killed after the second shard: 0002-L's 4 clips and the first 2 of 0002-M's.
    assert manifest["committed"] == 6 and (
        manifest["state"]["file"],
        manifest["state"]["event"],
    ) == (1, 2)
    res = convert(cfg("out.zarr", resume=True))
    assert (res.samples, res.skipped) == (ref.samples, ref.skipped) == (12, 1)
    assert 0 < res.bytes_in < ref.bytes_in  # this run read only the files after the cursor
    a, b = read_zarr(tmp_path / "ref.zarr"), read_zarr(tmp_path / "out.zarr")
    for key in ("s2i", "label", "sample_id", "start", "clip"):
        assert np.array_equal(a[key], b[key]), key
    assert _attr(a, "report") == _attr(b, "report")
    assert _attr(a, "stats") == _attr(b, "stats")


def test_preview_writes_a_png_of_one_sample(tmp_path: Path) -> None:
    from PIL import Image

    names = make_ntu(tmp_path / "raw", n=3)
    out = tmp_path / "out.zarr"
    assert (
        run_cli(
            "convert",
            "--format",
            "ntu25",
            str(tmp_path / "raw"),
            str(out),
            "-q",
            "--workers",
            "0",
        )[0]
        == 0
    )
    png = tmp_path / "p.png"
    status, text = run_cli("preview", str(out), "--sample", names[1], "-o", str(png))
    assert status == 0, text
    assert names[1] in text
    with Image.open(png) as img:
        assert img.width > 50 and img.height > 64
    status, text = run_cli("preview", str(out), "--sample", "S999C001P001R001A001", "-o", str(png))
    assert status == 1 and "no sample" in text


def test_benchmark_quick_mode_runs() -> None:
    """Smoke test so benchmarks/bench_convert.py cannot rot (no timing is checked)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_convert.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in (
        "reference_mb_s",
        "s2i_w1_mb_s",
        "s2i_w2_mb_s",
        "scaling_w2_over_w1",
        "tree_rss_mb_n",
        "tree_rss_mb_4n",
        "memory_ratio_4n_over_n",
    ):
        assert isinstance(figures[key], (int, float)), key
    assert "s2i_w1_marginal_mb_s" in figures


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--format", "ntu25", "--spec", "skeleton_specs/ntu25.yaml"), "not both"),
        ((), "missing --format"),
        (("--format", "ntu25", "--dtype", "uint8"), "needs --image-size"),
        (("--format", "ntu25", "--image-size", "0x5"), "HxW"),
        (
            ("--format", "ntu25", "--streams", "joint,pose"),
            "subset of joint,motion,bone",
        ),
        (("--format", "ntu25", "--resume", "--overwrite"), "exclude each other"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "raw").mkdir()
    result = CliRunner().invoke(
        cli, ["convert", *args, str(tmp_path / "raw"), str(tmp_path / "o.zarr")]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_unknown_format_names_the_known_ones(tmp_path: Path) -> None:
    make_ntu(tmp_path / "raw", n=1)
    status, text = run_cli(
        "convert", "--format", "ntu52", str(tmp_path / "raw"), str(tmp_path / "o.zarr")
    )
    assert status == 1 and "ntu25" in text


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    make_ntu(tmp_path / "raw", n=3)
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    cmd = _convert_cmd(tmp_path / "raw", tmp_path / "o.zarr", "--workers", "0")
    cmd.remove("-q")
    proc = subprocess.run(
        cmd, cwd=ROOT, stderr=secondary, stdout=subprocess.DEVNULL, timeout=120, check=False
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    assert proc.returncode == 0
    assert b"3/3" in shown and b"file/s" in shown and b"converted 3 samples" in shown
    # Not a terminal: the summary line only.
    proc = subprocess.run(
        [*cmd[:-1], "1", "--overwrite"], cwd=ROOT, capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0
    assert b"file/s" not in proc.stderr and b"converted 3 samples" in proc.stderr


@pytest.mark.parametrize(
    ("folder", "fmt", "persons"), [("ntu", "ntu25", 2), ("nw_ucla", "ucla20", 1)]
)
def test_real_files_convert_without_skips(
    realdata: Path, tmp_path: Path, folder: str, fmt: str, persons: int
) -> None:
    """The shared real recordings (read in place, never copied) all become samples."""
    raw = realdata / folder
    stems = sorted(p.stem for p in raw.iterdir() if p.suffix in (".skeleton", ".json"))
    out = tmp_path / "real.zarr"
    status, text = run_cli("convert", "--format", fmt, str(raw), str(out), "-q", "--workers", "2")
    assert status == 0, text
    data = read_zarr(out)
    assert [str(s) for s in data["sample_id"]] == stems
    assert data["s2i"].shape[1:] == (3, 3, 64, persons * (25 if fmt == "ntu25" else 20))
    assert np.isfinite(data["s2i"]).all()
    if fmt == "ntu25":  # A050 and A054-A058 are two-person actions
        assert data["num_persons"].tolist() == [1, 1, 1, 2, 2, 2, 2, 2, 2]


def _encode_or_die(skel, spec, cfg):
    """An encoder whose process dies (as if killed by the OOM killer) on one sample."""
    if skel.name.endswith("A005"):
        os._exit(9)
    from s2i_prep.encoding import encode

    return encode(skel, spec, cfg)


def test_dead_worker_is_an_error_naming_the_files(tmp_path: Path) -> None:
    from dataclasses import replace

    from s2i_prep.errors import S2IError
    from s2i_prep.pipeline import ConvertConfig, Stages, convert

    make_ntu(tmp_path / "raw", n=6)
    cfg = ConvertConfig(input=tmp_path / "raw", output=tmp_path / "o.zarr", workers=2)
    with pytest.raises(S2IError, match=r"worker process died .* nothing was committed"):
        convert(cfg, stages=replace(Stages.default(), encode=_encode_or_die))
    assert not (tmp_path / "o.zarr.lock").exists()
    assert not (tmp_path / "o.zarr.partial").exists()  # a failed run that kept nothing cleans up


def test_convert_config_round_trips_through_dict(tmp_path: Path) -> None:
    from s2i_prep.encoding import EncodeConfig
    from s2i_prep.pipeline import ConvertConfig

    cfg = ConvertConfig(
        input=tmp_path / "raw",
        output=tmp_path / "o.h5",
        format="pku25",
        workers=3,
        encode=EncodeConfig(
            streams=("joint", "bone"), frames=32, image_size=(64, 48), dtype="uint8"
        ),
        reader_options={"clip_bounds": "closed"},
        on_error="fail",
        limit=5,
    )
    again = ConvertConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown convert options"):
        ConvertConfig.from_dict({**cfg.to_dict(), "wokers": 2})


def test_class_count_is_the_spec_label_space_and_labels_beyond_it_are_skipped(tmp_path):
    import zarr

    from tests.ntu_files import compose, skeleton_text, track

    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("S001C001P001R001A001", "S001C001P001R001A121"):
        (raw / f"{name}.skeleton").write_bytes(skeleton_text(compose(20, track(rng, 20))))
    out = tmp_path / "out.zarr"
    result = CliRunner().invoke(cli, ["convert", "--format", "ntu25", "--workers", "0", "-q",
                                      str(raw), str(out)])
    assert result.exit_code == 3, result.output
    g = zarr.open_group(str(out), mode="r")
    assert g.attrs["class_count"] == 120
    assert [s["path"].endswith("A121.skeleton") for s in g.attrs["report"]["skipped"]] == [True]
    assert "no class label in 0..119" in g.attrs["report"]["skipped"][0]["reason"]


def test_pku_official_split_files_override_the_rules_and_say_so(tmp_path):
    import zarr

    from s2i_prep.synthetic import write_synthetic

    raw = tmp_path / "raw"
    write_synthetic("pku25", raw, 40, seed=5)
    split = raw / "split" / "cross-view.txt"
    text = split.read_text()
    train_head, test_part = text.split("Validataion videos:")
    # move one test video into the training list
    test_videos = [v.strip() for v in test_part.split(",") if v.strip()]
    moved = test_videos.pop(0)
    split.write_text(f"{train_head.rstrip()}, {moved}\nValidataion videos: {', '.join(test_videos)}\n")
    out = tmp_path / "pku.zarr"
    result = CliRunner().invoke(cli, ["convert", "--format", "pku25", "--workers", "0", "-q",
                                      str(raw), str(out)])
    assert result.exit_code in (0, 3), result.output
    g = zarr.open_group(str(out), mode="r")
    sources = g.attrs["split_sources"]
    assert sources["pku1-xsub"] == "file split/cross-subject.txt (equal to the spec's rule)"
    assert sources["pku1-xview"].startswith("file split/cross-view.txt (the spec's rule puts")
    assert "pku2-xsub" not in sources and "pku2-xsub" not in g["splits"]  # selects nothing
    ids = g["sample_id"][:].tolist()
    train = {ids[i].rsplit("_", 1)[0] for i in g["splits/pku1-xview/train"][:]}
    test = {ids[i].rsplit("_", 1)[0] for i in g["splits/pku1-xview/test"][:]}
    assert moved in train and moved not in test
