"""Issue 9, the conversion side: one input never fails the run, messages a user can act on.

Each test is a regression test for one item of the issue (numbered as there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_convert import (
    ROOT,
    _attr,
    make_ntu,
    make_pku,
    ntu_text,
    read_zarr,
    run_cli,
)


def _convert(raw: Path, out: Path, fmt: str = "ntu25", **kw):
    from s2i_prep.pipeline import ConvertConfig, convert

    return convert(ConvertConfig(input=raw, output=out, format=fmt, workers=0, **kw))


# -- 6: values beyond the stored types are per-sample skips -----------------------------------


def test_6_values_beyond_float16_and_int32_are_skipped_and_stats_stay_finite(tmp_path):
    raw = tmp_path / "raw"
    names = make_ntu(raw, n=4)
    for name, value in (("S001C001P001R001A021", "70000"), ("S001C001P001R001A022", "1e30")):
        lines = ntu_text(7, frames=20).splitlines()
        lines[4] = f"{value} " + lines[4].split(" ", 1)[1]  # x of the first joint of frame 1
        (raw / f"{name}.skeleton").write_text("\n".join(lines) + "\n")
    res = _convert(raw, tmp_path / "o.zarr")
    assert res.samples == len(names) and res.skipped == 2
    for _path, reason, kind in res.skipped_list:
        assert kind == "out_of_range" and "float16 range" in reason and "{" not in reason
    stats = _attr(read_zarr(tmp_path / "o.zarr"), "stats")
    assert all(np.isfinite(v["mean"]).all() and np.isfinite(v["std"]).all() for v in stats.values())

    pku = tmp_path / "pku"
    make_pku(pku, videos=("0002-L", "0002-M"))
    (pku / "label" / "0002-M.txt").write_text("2,10,20,99999999999\n3,50,90,1\n")
    res = _convert(pku, tmp_path / "p.zarr", fmt="pku25")
    # The label file is malformed, so its recording is one located skip (the reader's verdict,
    # the same in dump); the other recording's clips are all kept.
    assert res.samples == 4 and res.skipped == 1
    path, reason, kind = res.skipped_list[0]
    assert "0002-M" in path and kind == "ParseError"
    assert "line 1" in reason and "99999999999" in reason and "32-bit integer" in reason


def test_6_a_state_that_cannot_be_stored_is_named_not_printed():
    from s2i_prep.errors import StoreError
    from s2i_prep.store.writer import jsonable

    state = {"stats": {"sum": [1.0, float("inf")]}, "skipped": [["x"] * 3] * 1000}
    with pytest.raises(StoreError) as err:
        jsonable(state, "resume state")
    assert "stats.sum[1] is inf" in str(err.value) and "skipped" not in str(err.value)
    assert len(str(err.value)) < 200


# -- 7 and 8: only regular files are planned; everything else is reported, never opened -------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks")
def test_7_8_links_fifos_devices_and_undecodable_names_are_skipped_with_reasons(tmp_path):
    raw = tmp_path / "raw"
    names = make_ntu(raw, n=3)
    (raw / "S001C001P001R001A031.skeleton").symlink_to("S001C001P001R001A031.skeleton")  # loop
    (raw / "S001C001P001R001A032.skeleton").symlink_to(raw / "missing.skeleton")  # dangling
    os.mkfifo(raw / "S001C001P001R001A033.skeleton")  # would block forever if opened
    (raw / "S001C001P001R001A034.skeleton").symlink_to("/dev/zero")  # never ends if read
    bad_name = os.fsencode(raw) + b"/S001C001P001R001A035\xff.skeleton"
    with open(bad_name, "w") as fh:
        fh.write(ntu_text(3))
    proc = subprocess.run(
        [sys.executable, "-m", "s2i_prep.cli", "convert", "--format", "ntu25", str(raw),
         str(tmp_path / "o.h5"), "--workers", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    from s2i_prep.store import open_dataset

    with open_dataset(tmp_path / "o.h5") as ds:
        report = ds.attrs["report"]["skipped"]
        assert [str(s) for s in ds.column("sample_id")] == names
    by_name = {Path(r["path"]).name: r for r in report}
    expected = {
        "S001C001P001R001A031.skeleton": ("not_a_file", "symbolic link loop"),
        "S001C001P001R001A032.skeleton": ("not_a_file", "dangling symbolic link"),
        "S001C001P001R001A033.skeleton": ("not_a_file", "a FIFO"),
        "S001C001P001R001A034.skeleton": ("not_a_file", "a character device (symbolic link to "
                                          "'/dev/zero')"),
        "S001C001P001R001A035\\xff.skeleton": ("bad_path", "not valid UTF-8"),
    }
    assert set(by_name) == set(expected)
    for name, (kind, words) in expected.items():
        assert by_name[name]["kind"] == kind and words in by_name[name]["reason"], by_name[name]


# -- 11: first run: say that kernels compile, keep it out of MB/s ------------------------------


def _slow_warm() -> None:
    time.sleep(0.3)


def test_11_compile_notice_and_setup_time_out_of_the_throughput(tmp_path, monkeypatch):
    from dataclasses import replace

    from s2i_prep import pipeline
    from s2i_prep.pipeline import ConvertConfig, Stages, convert

    monkeypatch.setattr(pipeline, "COMPILE_NOTICE_S", 0.05)
    make_ntu(tmp_path / "raw", n=3)
    notes, updates = [], []
    res = convert(
        ConvertConfig(input=tmp_path / "raw", output=tmp_path / "o.zarr", workers=0),
        progress=updates.append,
        log=notes.append,
        stages=replace(Stages.default(), warm=_slow_warm),
    )
    assert notes[0].startswith("compiling kernels (first run only") and "compiled in" in notes[1]
    assert updates[0].files_done == 0  # the bar starts before compiling
    assert res.setup_seconds >= 0.3
    assert res.mb_per_s == pytest.approx(res.bytes_in / 1e6 / (res.seconds - res.setup_seconds))


# -- 12: failed runs clean up; a refused resume says what differs ------------------------------


def test_12_a_run_that_converts_nothing_leaves_nothing(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "S001C001P001R001A001.skeleton").write_text("")
    status, text = run_cli("convert", "--format", "ntu25", str(raw), str(tmp_path / "o.zarr"),
                           "--workers", "0", "-q")
    assert status == 1 and "no sample could be converted" in text
    assert "nothing was committed, so no partial output was left" in text
    assert not (tmp_path / "o.zarr.partial").exists()


def test_12_fail_fix_resume_and_precise_refusals(tmp_path):
    raw = tmp_path / "raw"
    make_ntu(raw, n=20, frames=20)
    bad = raw / "S021C001P001R001A001.skeleton"  # one of the 20, sorted 11th: emptied below
    bad.write_text("")
    out = tmp_path / "o.zarr"
    args = ("convert", "--format", "ntu25", str(raw), str(out), "--workers", "0", "-q",
            "--shard-size", "4", "--on-error", "fail")
    status, text = run_cli(*args)
    assert status == 1 and "stopping: --on-error fail" in text
    assert "keeps the 8 samples converted so far" in text
    assert f"continue with:\n  s2i-prep convert --format ntu25 {raw} {out}" in text
    # A changed option is named.
    status, text = run_cli(*args[:-2], "--frames", "32", "--resume")
    assert status == 1 and "--frames was 64, now 32" in text
    # A converted input that changed is counted and named.
    first = raw / "S001C001P001R001A001.skeleton"
    original = first.read_bytes()
    first.write_bytes(original + b"\n")
    status, text = run_cli(*args, "--resume")
    assert status == 1
    assert ("o.zarr.partial: cannot resume: of the 8 input files already converted, 1 changed"
            in text)
    assert "S001C001P001R001A001.skeleton" in text
    first.write_bytes(original)  # put back as it was, modification time included
    os.utime(first, ns=(json.loads((out.with_name("o.zarr.partial") / "s2i_run.json")
                                   .read_text())["inputs"][0][2],) * 2)
    # The bad file (not converted yet) may be fixed, then the run resumes.
    bad.write_text(ntu_text(5, frames=20))
    status, text = run_cli(*args, "--resume")
    assert status == 0, text
    assert len(read_zarr(out)["sample_id"]) == 20


# -- 14: --overwrite deletes only what s2i wrote -----------------------------------------------


def test_14_overwrite_refuses_folders_and_files_that_are_not_s2i_outputs(tmp_path):
    raw = tmp_path / "raw"
    make_ntu(raw, n=2)
    precious = tmp_path / "thesis.zarr"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    status, text = run_cli("convert", "--format", "ntu25", str(raw), str(precious), "--overwrite",
                           "-q", "--workers", "0")
    assert status == 1 and "deletes only its own datasets" in text and "chapter1.tex" in text
    assert (precious / "chapter1.tex").exists()
    other = tmp_path / "x.h5"
    other.write_bytes(b"not hdf5")
    status, text = run_cli("convert", "--format", "ntu25", str(raw), str(other), "--overwrite",
                           "-q", "--workers", "0")
    assert status == 1 and other.read_bytes() == b"not hdf5"
    stray = tmp_path / "y.zarr.partial"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    status, text = run_cli("convert", "--format", "ntu25", str(raw), str(tmp_path / "y.zarr"),
                           "--overwrite", "-q", "--workers", "0")
    assert status == 1 and (stray / "notes.txt").exists()
    # A real s2i dataset is replaced.
    out = tmp_path / "ok.h5"
    for _ in range(2):
        status, text = run_cli("convert", "--format", "ntu25", str(raw), str(out), "--overwrite",
                               "-q", "--workers", "0")
        assert status == 0, text


# -- 15: --limit is not "excluded" -------------------------------------------------------------


def test_15_limit_is_reported_apart_from_the_exclude_lists(tmp_path):
    raw = tmp_path / "raw"
    make_ntu(raw, n=6)
    status, text = run_cli("convert", "--format", "ntu25", str(raw), str(tmp_path / "o.zarr"),
                           "--limit", "2", "--workers", "0")
    assert status == 0
    assert "excluded 0, left out 4 by --limit" in text
    counts = _attr(read_zarr(tmp_path / "o.zarr"), "report")["counts"]
    assert (counts["excluded"], counts["limited"], counts["samples"]) == (0, 4, 2)


# -- 16: progress lines when stderr is not a terminal ------------------------------------------


def test_16_progress_lines_every_few_seconds_without_a_terminal(capsys):
    from s2i_prep.cli.convert import _ProgressLog
    from s2i_prep.pipeline import ProgressUpdate

    now = [0.0]
    log = _ProgressLog(every=5.0, clock=lambda: now[0])
    for k in range(101):
        now[0] = k * 0.5
        log(ProgressUpdate(k, 100, k * 10**6, 100 * 10**6, k, 0, k * 10**6, max(k * 0.5, 1e-9)))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "converting 100 input files (100.0 MB)"
    assert len(lines) == 1 + 9  # one every 5 s of the 50 s, none for the last update
    assert lines[1].startswith("  10/100 files (10%), 10 samples, 0 skipped, 2 MB/s")


# -- 17: a wrong --format says what was found ---------------------------------------------------


def test_17_wrong_format_says_what_was_found_and_what_to_try(tmp_path):
    raw = tmp_path / "raw"
    make_ntu(raw, n=9)
    status, text = run_cli("convert", "--format", "ucla20", str(raw), str(tmp_path / "o.zarr"))
    assert status == 1
    assert "found 9 .skeleton files" in text and "try --format ntu25" in text
    status, text = run_cli("convert", "--format", "pku25", str(raw), str(tmp_path / "o.zarr"))
    assert status == 1 and "PKU_Skeleton_Renew" in text and "skeleton" in text


# -- 19: the README demo twice, and git ignores its folder ------------------------------------


def test_19_demo_runs_twice_and_its_folder_is_ignored_by_git(tmp_path):
    from click.testing import CliRunner

    from s2i_prep.cli import cli

    out = tmp_path / "s2i-demo"
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["demo", str(out), "--samples", "12"])
        assert result.exit_code == 0, result.output
    assert (out / ".gitignore").read_text().splitlines()[-1] == "*"
    assert "/s2i-demo/" in (ROOT / ".gitignore").read_text().splitlines()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.txt").write_text("x")
    result = runner.invoke(cli, ["demo", str(mine), "--samples", "12", "--overwrite"])
    assert result.exit_code != 0 and (mine / "data.txt").exists()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**16 - 1), min_size=12, max_size=12))
def test_float16_finiteness_check_on_bits_equals_isfinite(bits):
    """The worker checks float16 samples on their bits (fast); it must agree with numpy."""
    from s2i_prep.conversion.tasks import _finite_per_stream

    x = np.array(bits, np.uint16).view(np.float16).reshape(3, 1, 2, 2)
    expected = np.isfinite(x.reshape(3, -1)).all(axis=1)
    np.testing.assert_array_equal(_finite_per_stream(x), expected)
