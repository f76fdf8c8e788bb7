"""``convert --dask``: a LocalCluster conversion equals the local one byte for byte, survives a
worker killed mid-run, and resumes across both modes. One cluster (two worker processes) serves
the whole module: starting one costs seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from s2i_prep.errors import S2IError
from s2i_prep.pipeline import ConvertConfig, convert
from tests.conftest import _objects
from tests.test_convert import ROOT, _output_bytes, make_ntu

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, object]]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local) as client:
        yield local.scheduler_address, client


@pytest.fixture(autouse=True)
def small_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 files per task (not 64), so both workers get tasks from these small corpora."""
    monkeypatch.setattr("s2i_prep.dask_pool.FILES_PER_TASK", 4)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dask") / "raw"
    make_ntu(root, n=48, frames=24)
    (root / "S001C001P001R001A012.skeleton").write_text("")  # one skip in the report
    return root


@pytest.fixture(scope="module")
def reference(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    convert(ConvertConfig(input=raw, output=out, format="ntu25", workers=0, shard_size=5))
    return _output_bytes(out)


def test_dask_output_equals_local(cluster: tuple[str, object], raw: Path,
                                  reference: dict[str, bytes], tmp_path: Path) -> None:
    out = tmp_path / "dask.zarr"
    result = convert(ConvertConfig(input=raw, output=out, format="ntu25", dask=cluster[0],
                                   shard_size=5))
    assert result.samples == 48 and result.skipped == 1
    assert _output_bytes(out) == reference


def test_dask_reads_archive_members_in_workers(cluster: tuple[str, object], raw: Path,
                                               reference: dict[str, bytes],
                                               tmp_path: Path) -> None:
    """Two archives at once, a zip and a gzipped tar (each worker builds its own tar index)."""
    zipped, tarred = tmp_path / "ntu.zip", tmp_path / "ntu.tar.gz"
    paths = sorted(raw.iterdir())
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in paths[0::2]:
            zf.write(path, "skeletons/" + path.name)
    with tarfile.open(tarred, "w:gz") as tf:
        for path in paths[1::2]:
            tf.add(path, "skeletons/" + path.name)
    out = tmp_path / "dask.zarr"
    result = convert(ConvertConfig(input=[tarred, zipped], output=out, format="ntu25",
                                   dask=cluster[0], shard_size=5))
    bad = "skeletons/S001C001P001R001A012.skeleton"
    assert result.skipped_list[0][0] in (f"{zipped}:{bad}", f"{tarred}:{bad}")
    got = _output_bytes(out)
    assert {k: v for k, v in got.items() if k != "zarr.json"} == \
        {k: v for k, v in reference.items() if k != "zarr.json"}


def test_worker_killed_mid_run_changes_nothing(cluster: tuple[str, object], raw: Path,
                                               reference: dict[str, bytes],
                                               tmp_path: Path) -> None:
    address, client = cluster
    before = client.run(os.getpid)  # type: ignore[attr-defined]
    victim = min(before)
    # That worker process SIGKILLs itself when it starts its first task; its nanny restarts it
    # (without the setting) and Dask reruns the lost task.
    def arm() -> None:  # a closure: shipped by value, runs in the worker process
        import os

        os.environ["S2I_FAULT"] = "dask-task@1=KILL"

    client.run(arm, workers=[victim])  # type: ignore[attr-defined]
    out = tmp_path / "dask.zarr"
    convert(ConvertConfig(input=raw, output=out, format="ntu25", dask=address, shard_size=5))
    client.wait_for_workers(2, timeout=60)  # type: ignore[attr-defined]
    after = client.run(os.getpid)  # type: ignore[attr-defined]
    assert before[victim] not in after.values(), "the worker was not killed: test did nothing"
    assert _output_bytes(out) == reference


def test_dask_workers_write_the_shards(cluster: tuple[str, object], raw: Path,
                                       reference: dict[str, bytes], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shard file is written by a Dask worker: the driver's shard writer refuses, and no
    sample block reaches the driver."""
    from s2i_prep.conversion import assembly, shards
    from s2i_prep.dask_pool import Remote
    from s2i_prep.store import zarr_store

    def refuse(*args: object) -> None:
        raise AssertionError("the driver wrote a shard")

    monkeypatch.setattr(zarr_store, "write_shard_file", refuse)
    monkeypatch.setattr(shards, "write_shard_file", refuse)
    blocks: list[object] = []
    add = assembly.Assembler.add

    def spy(self: object, event: object, cursor: object, task: object = None) -> None:
        blocks.append(type(getattr(task, "block", None)))
        add(self, event, cursor, task)  # type: ignore[arg-type]

    monkeypatch.setattr(assembly.Assembler, "add", spy)
    out = tmp_path / "dask.zarr"
    convert(ConvertConfig(input=raw, output=out, format="ntu25", dask=cluster[0], shard_size=5))
    assert set(blocks) - {type(None)} == {Remote}
    assert _output_bytes(out) == reference


def test_worker_killed_while_writing_a_shard(cluster: tuple[str, object], raw: Path,
                                             reference: dict[str, bytes],
                                             tmp_path: Path) -> None:
    """A worker SIGKILLs itself between writing a shard's temporary file and renaming it: Dask
    reruns the write elsewhere (recomputing the blocks it held), no half shard is left."""
    address, client = cluster
    client.wait_for_workers(2, timeout=60)  # type: ignore[attr-defined]
    before = client.run(os.getpid)  # type: ignore[attr-defined]

    def arm() -> None:
        import os

        os.environ["S2I_FAULT"] = "shard-tmp@1=KILL"

    client.run(arm)  # type: ignore[attr-defined]  # both: whichever writes first dies
    out = tmp_path / "dask.zarr"
    try:
        convert(ConvertConfig(input=raw, output=out, format="ntu25", dask=address,
                              shard_size=5))
    finally:
        client.run(lambda: os.environ.pop("S2I_FAULT", None))  # type: ignore[attr-defined]
    client.wait_for_workers(2, timeout=60)  # type: ignore[attr-defined]
    after = client.run(os.getpid)  # type: ignore[attr-defined]
    assert set(before.values()) - set(after.values()), "no worker was killed: test did nothing"
    assert not list(out.rglob("*.partial"))
    assert _output_bytes(out) == reference


def test_dask_workers_put_s3_shards(cluster: tuple[str, object], raw: Path,
                                    reference: dict[str, bytes], s3: dict[str, object],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An s3:// output: the Dask workers PUT the shards (with the run's storage options, which
    travel in the worker context); the objects equal the local conversion's files."""
    from s2i_prep.store import zarr_store

    def refuse(*args: object) -> None:
        raise AssertionError("the driver wrote a shard")

    monkeypatch.setattr(zarr_store, "write_shard_file", refuse)
    fs, bucket = s3["fs"], s3["bucket"]
    out = f"s3://{bucket}/dask/ds.zarr"
    convert(ConvertConfig(input=raw, output=out, format="ntu25", dask=cluster[0], shard_size=5))
    assert _objects(fs, f"{bucket}/dask/ds.zarr") == reference


def test_dask_hdf5_output_is_written_by_the_driver(cluster: tuple[str, object], raw: Path,
                                                   tmp_path: Path) -> None:
    """HDF5 needs one writer: the samples come to the driver, which writes them; same arrays as
    a local conversion."""
    import numpy as np

    from tests.test_convert import read_h5

    ref, out = tmp_path / "ref.h5", tmp_path / "dask.h5"
    convert(ConvertConfig(input=raw, output=ref, format="ntu25", workers=0, shard_size=5))
    convert(ConvertConfig(input=raw, output=out, format="ntu25", dask=cluster[0], shard_size=5))
    want, got = read_h5(ref), read_h5(out)
    assert np.array_equal(got["s2i"], want["s2i"], equal_nan=True)
    assert list(got["sample_id"]) == list(want["sample_id"]) and len(want["sample_id"]) == 48


def _cli(raw: Path, out: Path, *extra: str, fault: str | None = None) -> int:
    cmd = [sys.executable, "-m", "s2i_prep.cli", "convert", "--format", "ntu25", str(raw),
           str(out), "-q", "--shard-size", "5", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("S2I_FAULT", None)
    if fault:
        env["S2I_FAULT"] = fault
    return subprocess.run(cmd, env=env, timeout=180, capture_output=True, check=False).returncode


@pytest.mark.parametrize("first, then", [("local", "dask"), ("dask", "local")])
def test_resume_across_modes(cluster: tuple[str, object], raw: Path, reference: dict[str, bytes],
                             tmp_path: Path, first: str, then: str) -> None:
    modes = {"local": ("--workers", "2"), "dask": ("--dask", cluster[0])}
    out = tmp_path / "out.zarr"
    assert _cli(raw, out, *modes[first], fault="shard-committed@3=KILL") == -9  # driver killed
    assert not out.exists() and (tmp_path / "out.zarr.partial").is_dir()
    assert _cli(raw, out, *modes[then], "--resume") == 3  # finished, with one skip
    assert _output_bytes(out) == reference


def test_sigterm_on_the_driver_keeps_the_committed_shards(cluster: tuple[str, object],
                                                          raw: Path,
                                                          reference: dict[str, bytes],
                                                          tmp_path: Path) -> None:
    """SIGTERM after the 2nd commit: the shards the workers were writing are committed or left
    to the resume (the cluster keeps running), and the resume on the cluster is exact."""
    import json

    out = tmp_path / "out.zarr"
    assert _cli(raw, out, "--dask", cluster[0], fault="shard-committed@2=TERM") == 143
    manifest = json.loads((tmp_path / "out.zarr.partial" / "s2i_manifest.json").read_text())
    assert manifest["committed"] >= 10
    assert _cli(raw, out, "--dask", cluster[0], "--resume") == 3
    assert _output_bytes(out) == reference


def test_bad_addresses_are_clear_errors(raw: Path, tmp_path: Path) -> None:
    with pytest.raises(S2IError, match="expected local:N"):
        convert(ConvertConfig(input=raw, output=tmp_path / "o.zarr", format="ntu25",
                              dask="local:zero"))
    assert not (tmp_path / "o.zarr.partial").exists()


def test_workers_that_cannot_see_the_output_are_refused_up_front(
        cluster: tuple[str, object], tmp_path: Path) -> None:
    from s2i_prep.conversion.tasks import install
    from s2i_prep.dask_pool import DaskPool

    with DaskPool(cluster[0], install, (None,)) as pool:
        pool.check_sees(str(tmp_path))  # visible to both workers: no error
        missing = tmp_path / "on-the-driver-only"
        with pytest.raises(S2IError, match=r"not visible to 2 of 2 Dask workers.*shared "
                                           r"filesystem"):
            pool.check_sees(str(missing))
