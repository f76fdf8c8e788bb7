"""Workers write the Zarr shard files (``conversion/shards.py``); the parent commits in order.

The output must be the same bytes whoever writes a shard (a worker from the shared arena, or the
parent), for every codec, and a run killed while a later shard's file was already written but an
earlier one was not must resume into exactly the uninterrupted dataset.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import pytest

from s2i_prep.conversion import assembly, shards
from tests.test_convert import _output_bytes, make_ntu

#: The real worker-side shard writer (tests wrap it; ``shards.shard_job`` picks the wrapper).
_run_shard_job = shards.run_shard_job

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")

N_FILES, SHARD = 40, 4  # 8 files per task: two shards cut per task result


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards") / "raw"
    make_ntu(root, n=N_FILES, frames=20)
    (root / "S001C001P001R001A012.skeleton").write_text("")  # a skip: tasks of 7 samples
    return root


def _cfg(raw: Path, out: Path, workers: int, codec: str = "none", **kw):
    from s2i_prep.pipeline import ConvertConfig

    kw.setdefault("shard_size", SHARD)
    return ConvertConfig(input=raw, output=out, format="ntu25", workers=workers, codec=codec,
                         **kw)


@pytest.fixture
def job_count(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many shards were sent to workers and how many the parent wrote."""
    counts = {"worker": 0, "parent": 0}
    real = assembly.shard_job

    def counted(*args):
        job = real(*args)
        counts["worker" if job is not None else "parent"] += 1
        return job

    monkeypatch.setattr(assembly, "shard_job", counted)
    return counts


@pytest.mark.parametrize("codec", ["none", "zstd", "lz4"])
def test_worker_written_shards_equal_parent_written_ones(
    raw: Path, tmp_path: Path, codec: str, job_count: dict[str, int]
) -> None:
    from s2i_prep.pipeline import convert

    outputs = {}
    for workers in (0, 1, 2):
        job_count.update(worker=0, parent=0)
        out = tmp_path / f"w{workers}.zarr"
        convert(_cfg(raw, out, workers, codec))
        outputs[workers] = _output_bytes(out)
        shards_cut = -(-(N_FILES - 1) // SHARD)
        if workers:  # every shard went to a worker
            assert job_count == {"worker": shards_cut, "parent": 0}
        else:
            assert job_count == {"worker": 0, "parent": shards_cut}
    assert outputs[1] == outputs[0]
    assert outputs[2] == outputs[0]


_LOG = "S2I_TEST_SHARD_LOG"


def _shard_one_is_slow(job: shards.ShardJob) -> int:
    """Worker side: shard 1 takes a while, so later shards are written before it."""
    if job.index == 1:
        time.sleep(0.6)
    index = _run_shard_job(job)
    with open(os.environ[_LOG], "a") as fh:
        fh.write(f"{index}\n")
    return index


def test_shards_written_out_of_order_are_committed_in_order(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s2i_prep.pipeline import convert
    from s2i_prep.store.writer import DatasetWriter

    log = tmp_path / "written.txt"
    monkeypatch.setenv(_LOG, str(log))
    monkeypatch.setattr(shards, "run_shard_job", _shard_one_is_slow)
    committed = []
    real_commit = DatasetWriter.commit_shard

    def commit(self, k, columns, state):
        real_commit(self, k, columns, state)
        committed.append(self.num_samples)

    monkeypatch.setattr(DatasetWriter, "commit_shard", commit)
    convert(_cfg(raw, tmp_path / "w0.zarr", 0))
    convert(_cfg(raw, tmp_path / "w2.zarr", 2))
    written = [int(x) for x in log.read_text().split()]
    assert written.index(2) < written.index(1)  # the scenario: shard 2 was on disk first
    assert committed == sorted(committed) and len(committed) == len(written)
    assert _output_bytes(tmp_path / "w2.zarr") == _output_bytes(tmp_path / "w0.zarr")


def _killed_child(raw: Path, out: Path, log: str) -> None:
    os.environ[_LOG] = log
    os.environ["S2I_FAULT"] = "shard-committed@2=KILL"  # in the parent, after shard 1's commit
    shards.run_shard_job = _shard_one_is_slow
    from s2i_prep.pipeline import convert

    convert(_cfg(raw, out, 2))
    os._exit(0)  # the fault never fired


def test_kill_with_a_later_shard_written_before_an_earlier_one_resumes_exactly(
    raw: Path, tmp_path: Path
) -> None:
    from s2i_prep.pipeline import convert

    ref = tmp_path / "ref.zarr"
    convert(_cfg(raw, ref, 0))
    out, log = tmp_path / "o.zarr", tmp_path / "written.txt"
    child = multiprocessing.get_context("fork").Process(
        target=_killed_child, args=(raw, out, str(log))
    )
    child.start()
    child.join(60)
    assert child.exitcode == -9, "the fault did not stop the run"
    partial = out.with_name("o.zarr.partial")
    manifest = json.loads((partial / "s2i_manifest.json").read_text())
    assert manifest["committed"] == 2 * SHARD
    on_disk = {int(p.parent.parent.parent.parent.name)
               for p in (partial / "data.zarr" / "s2i" / "c").glob("*/0/0/0/0")}
    assert max(on_disk) >= 2, "no shard beyond the committed ones was on disk"
    convert(_cfg(raw, out, 2, resume=True))
    assert _output_bytes(out) == _output_bytes(ref)


def _small_arena(*args, **kwargs):
    """The pool with an arena of 3 task regions: most tasks find it full."""
    from s2i_prep.parallel import OrderedPool

    return OrderedPool(*args, **{**kwargs, "arena_bytes": 3 * kwargs["block_bytes"]})


@pytest.mark.parametrize("setting", [("REGION_SAMPLES_PER_FILE", 7 / 8),
                                     ("OrderedPool", _small_arena)])
def test_rows_in_band_or_mixed_with_arena_rows_give_the_same_output(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job_count: dict[str, int],
    setting: tuple[str, object],
) -> None:
    """Blocks too big for their region (the first task has 7 samples and fits, the others 8 do
    not) or sent while the arena is full come through the pipe; a shard mixing such rows with
    arena rows is written by the parent. Same bytes either way."""
    from s2i_prep import pipeline
    from s2i_prep.pipeline import convert

    convert(_cfg(raw, tmp_path / "w0.zarr", 0))
    job_count.update(worker=0, parent=0)
    monkeypatch.setattr(pipeline, *setting)
    convert(_cfg(raw, tmp_path / "w2.zarr", 2))
    assert job_count["worker"] and job_count["parent"]  # both paths were taken
    assert _output_bytes(tmp_path / "w2.zarr") == _output_bytes(tmp_path / "w0.zarr")


def _disk_full_at_shard_one(job: shards.ShardJob) -> int:
    if job.index == 1:
        raise OSError(28, "No space left on device")
    return _run_shard_job(job)


def test_a_write_error_in_a_worker_keeps_what_was_committed_and_resumes(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s2i_prep.pipeline import ConvertFailed, convert

    convert(_cfg(raw, tmp_path / "ref.zarr", 0))
    out = tmp_path / "o.zarr"
    monkeypatch.setattr(shards, "run_shard_job", _disk_full_at_shard_one)
    with pytest.raises(ConvertFailed, match=r"writing samples 4\.\.7 failed: .*No space left") as info:
        convert(_cfg(raw, out, 2))
    assert info.value.kept is not None and info.value.kept.samples == SHARD
    monkeypatch.undo()
    convert(_cfg(raw, out, 2, resume=True))
    assert _output_bytes(out) == _output_bytes(tmp_path / "ref.zarr")


def _die_writing_shard_one(job: shards.ShardJob) -> int:
    if job.index == 1:
        os.kill(os.getpid(), 9)
    return _run_shard_job(job)


def test_a_worker_dying_while_it_writes_a_shard_is_an_error_naming_it(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s2i_prep.pipeline import ConvertFailed, convert

    monkeypatch.setattr(shards, "run_shard_job", _die_writing_shard_one)
    with pytest.raises(ConvertFailed, match=r"died .*while writing shard 1") as info:
        convert(_cfg(raw, tmp_path / "o.zarr", 2))
    assert info.value.kept is not None and info.value.kept.samples == SHARD
