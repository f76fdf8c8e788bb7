"""Stopping a conversion from outside (issue 12): SIGKILL, SIGTERM, SIGINT at exact moments.

Stops are placed with the ``S2I_FAULT`` hook (``point[@n]=SIGNAL``, see ``store/staging.py``), so
every case is deterministic: no sleeping and hoping. Killed runs happen in a child process; the
resumed result must equal an uninterrupted conversion byte for byte.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.test_convert import ROOT, _output_bytes, make_ntu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")

CLI = [sys.executable, "-m", "s2i_prep.cli"]
N_FILES, SHARD = 30, 8


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stop") / "raw"
    make_ntu(root, n=N_FILES, frames=24)
    (root / "S001C001P001R001A012.skeleton").write_text("")  # one skip in the report
    return root


def _cfg(raw: Path, out: Path, **kw):
    from s2i_prep.pipeline import ConvertConfig

    return ConvertConfig(input=raw, output=out, format="ntu25", workers=0, shard_size=SHARD, **kw)


@pytest.fixture(scope="module")
def reference(raw: Path) -> dict[str, dict[str, bytes]]:
    """Uninterrupted conversions, per suffix."""
    from s2i_prep.pipeline import convert

    refs = {}
    for suffix in (".zarr", ".h5"):
        out = raw.parent / f"ref{suffix}"
        convert(_cfg(raw, out))
        refs[suffix] = _output_bytes(out)
    return refs


def _killed_child(raw: Path, out: Path, fault: str, resume: bool = False) -> None:
    os.environ["S2I_FAULT"] = fault
    from s2i_prep.pipeline import convert

    convert(_cfg(raw, out, resume=resume))
    os._exit(0)  # the fault never fired


def _stop(raw: Path, out: Path, fault: str, resume: bool = False) -> int | None:
    child = multiprocessing.get_context("fork").Process(
        target=_killed_child, args=(raw, out, fault, resume)
    )
    child.start()
    child.join(60)
    return child.exitcode


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
@pytest.mark.parametrize(
    "fault",
    [
        "partial-created=KILL",  # the partial folder exists, nothing in it
        "backend-created=KILL",  # data files created, no manifest yet
        "shard-tmp@1=KILL",  # first shard's temp file written, not renamed
        "shard-data@1=KILL",  # first shard's data in place, manifest not updated
        "shard-data@3=KILL",  # same after two committed shards
        "shard-committed@2=KILL",  # right after a commit
        "shard-committed@4=TERM",  # a clean stop (SIGTERM without the CLI: default action)
        "hdf5-finish=KILL",  # HDF5 attributes written, file not closed
        "finished=KILL",  # data complete, not yet renamed into place
    ],
)
def test_resume_after_a_stop_at_any_moment_equals_an_uninterrupted_run(
    raw: Path, reference: dict, tmp_path: Path, suffix: str, fault: str
) -> None:
    from s2i_prep.pipeline import convert

    if fault.startswith("hdf5-") and suffix != ".h5":
        pytest.skip("an HDF5-only moment")
    out = tmp_path / f"out{suffix}"
    sig = signal.Signals["SIG" + fault.rsplit("=", 1)[1]]
    assert _stop(raw, out, fault) == -sig, f"the fault {fault} did not stop the run"
    assert not out.exists()
    res = convert(_cfg(raw, out, resume=True))
    assert (res.samples, res.skipped) == (N_FILES, 1)
    assert _output_bytes(out) == reference[suffix]
    assert not out.with_name(out.name + ".partial").exists()


def test_a_torn_hdf5_file_a_torn_stage_and_a_stopped_rebuild_do_not_block_resume(
    raw: Path, reference: dict, tmp_path: Path
) -> None:
    from s2i_prep.pipeline import convert

    out = tmp_path / "out.h5"
    assert _stop(raw, out, "shard-data@3=KILL") == -signal.SIGKILL
    partial = out.with_name("out.h5.partial")
    shards = partial / "shards"
    assert sorted(p.name for p in shards.iterdir()) == [
        f"{k:06d}.{ext}" for k in range(3) for ext in ("cols.npz", "npy")
    ]  # the third shard is beyond the manifest
    third = shards / "000002.npy"
    third.write_bytes(third.read_bytes()[:1000])  # torn
    (shards / ".000003.npy.tmp").write_bytes(b"junk")
    data = partial / "data.h5"
    data.write_bytes(data.read_bytes()[:96])  # "truncated file: eof = 96"
    # A resume stopped while it rebuilds data.h5 from the staged shards, then one that finishes.
    assert _stop(raw, out, "hdf5-replay@1=KILL", resume=True) == -signal.SIGKILL
    convert(_cfg(raw, out, resume=True))
    assert _output_bytes(out) == reference[".h5"]


def _procs_tagged(tag: str) -> list[int]:
    """Pids of live processes whose environment holds ``S2I_TEST_TAG=tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"S2I_TEST_TAG={tag}".encode() in env.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def _cli_run(
    raw: Path, out: Path, *extra: str, fault: str, tag: str
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "S2I_FAULT": fault, "S2I_TEST_TAG": tag}
    cmd = [*CLI, "convert", "--format", "ntu25", str(raw), str(out), "--shard-size", str(SHARD),
           "--workers", "2", *extra]
    # Output through pipes, as a CI job or subprocess(capture_output=True) reads it: a surviving
    # worker would hold them open and this call would hang (issue 12).
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_sigkill_of_the_parent_leaves_no_worker_alive(raw: Path, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    run = _cli_run(raw, tmp_path / "o.zarr", fault="shard-committed@1=KILL", tag=tag)
    assert run.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while _procs_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _procs_tagged(tag) == []


@pytest.mark.parametrize(("sig", "status"), [("TERM", 143), ("INT", 130)])
def test_sigterm_and_sigint_keep_the_shards_and_print_the_resume_command(
    raw: Path, reference: dict, tmp_path: Path, sig: str, status: int
) -> None:
    tag = uuid.uuid4().hex
    out = tmp_path / "o.zarr"
    run = _cli_run(raw, out, "-q", fault=f"shard-committed@2={sig}", tag=tag)
    assert run.returncode == status, run.stderr
    assert f"stopped by SIG{sig}" in run.stderr
    assert "Traceback" not in run.stderr
    manifest = json.loads((tmp_path / "o.zarr.partial" / "s2i_manifest.json").read_text())
    assert manifest["committed"] >= 2 * SHARD
    assert f"{manifest['committed']} converted samples are kept in {out}.partial" in run.stderr
    assert _procs_tagged(tag) == []
    command = run.stderr.split("continue with:\n", 1)[1].strip()
    assert command.startswith("s2i-prep convert ") and command.endswith(" --resume")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    again = subprocess.run([*CLI, *shlex.split(command)[1:]], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 3, again.stderr  # 3: the one empty file is reported
    assert _output_bytes(out) == reference[".zarr"]


@pytest.mark.parametrize("fault", ["planned=TERM", "backend-created=TERM"])
def test_stop_before_anything_was_committed_leaves_nothing(
    raw: Path, tmp_path: Path, fault: str
) -> None:
    tag = uuid.uuid4().hex
    out = tmp_path / "o.h5"
    run = _cli_run(raw, out, fault=fault, tag=tag)
    assert run.returncode == 143
    assert "nothing had been committed yet" in run.stderr
    assert not out.with_name("o.h5.partial").exists()


_SPAWNING_PARENT = """
import multiprocessing, os, sys, time
from s2i_prep import parallel

def child(parent_pid):
    parallel._watch_parent(parent_pid)  # the fallback alone: no PR_SET_PDEATHSIG here
    time.sleep(120)

if __name__ == "__main__":
    proc = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(),))
    proc.start()
    print(proc.pid, flush=True)
    time.sleep(120)
"""


def test_the_parent_watch_alone_ends_a_spawned_worker_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_SPAWNING_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        child = int(parent.stdout.readline())
        time.sleep(0.5)  # let the child start its watcher
        assert Path(f"/proc/{child}").exists()
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the spawned worker outlived its parent")
