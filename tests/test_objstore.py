"""fsspec URLs and object stores: inputs, outputs and the training data path on ``memory://``
and on S3 (moto's server mode on localhost, started here; skipped when moto/s3fs are absent).

Every round trip is compared byte for byte, object by object, with a local conversion of the
same input; what differs by design (the input's own path in the root attributes) is named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest

from s2i_prep import pipeline, urls
from s2i_prep.errors import ReadError, S2IError, StoreError
from s2i_prep.pipeline import ConvertConfig, convert
from s2i_prep.readers.rawfile import read_bytes
from s2i_prep.store import open_dataset, remote
from tests.conftest import _objects, _upload
from tests.test_archive import _zip
from tests.test_convert import ROOT, _output_bytes, make_ntu, run_cli

torch = pytest.importorskip("torch")
from s2i_train.data import S2IDataset
from s2i_train.errors import DatasetFormatError, SampleReadError

N_FILES = 10


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("objstore") / "raw"
    make_ntu(root, n=N_FILES, frames=24)
    return root


@pytest.fixture(scope="module")
def local_ref(raw: Path) -> Path:
    """The local conversion every remote one must equal."""
    out = raw.parent / "ref.zarr"
    convert(ConvertConfig(input=raw, output=out, workers=0, shard_size=4))
    return out


def _without_input(doc: bytes) -> dict[str, Any]:
    meta = json.loads(doc)
    for key in ("input", "inputs"):  # where the input was, in both places it is recorded
        meta["attributes"]["source"].pop(key, None)
        meta["attributes"]["convert"].pop(key, None)
    return meta


def _same_but_input(local: dict[str, bytes], other: dict[str, bytes]) -> None:
    assert sorted(local) == sorted(other)
    for key, data in local.items():
        if key == "zarr.json":
            assert _without_input(data) == _without_input(other[key])
        else:
            assert data == other[key], key


# ----------------------------------------------------------------------------- URL basics


def test_locations() -> None:
    assert urls.location("file:///data/raw") == Path("/data/raw")
    assert urls.location("/data/raw") == Path("/data/raw")
    out = urls.location("s3://bucket/a/out.zarr/")
    assert isinstance(out, urls.Url) and str(out) == "s3://bucket/a/out.zarr"
    assert (out.name, out.suffix, out.stem) == ("out.zarr", ".zarr", "out")
    assert str(out.with_name(out.name + ".partial")) == "s3://bucket/a/out.zarr.partial"
    assert str(out / "s2i") == "s3://bucket/a/out.zarr/s2i"
    with pytest.raises(TypeError):
        os.fspath(out)  # never mistaken for a local path by an os call
    assert str(urls.location("memory://x/y.zarr")) == "memory://x/y.zarr"


def test_worker_context_carries_the_storage_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dask worker does not fork from the driver: --storage-option reaches it with the
    context every worker installs."""
    from s2i_prep.conversion import tasks

    monkeypatch.setattr(tasks, "_CTX", tasks._CTX)  # restored after the test
    monkeypatch.setattr(urls, "_OPTIONS", {"s3": {"endpoint_url": "http://minio:9000"}})
    ctx = tasks.WorkerContext(None, None, None, None, frozenset(),  # type: ignore[arg-type]
                              urls.storage_options())
    monkeypatch.setattr(urls, "_OPTIONS", {})  # a fresh worker process
    tasks.install(ctx)
    assert urls.storage_options(urls.Url("s3://b/x")) == {"endpoint_url": "http://minio:9000"}


def test_read_bytes_of_objects() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/rb/a.skeleton", b"12345")
    assert read_bytes("memory://rb/a.skeleton") == b"12345"
    with pytest.raises(ReadError, match="more than the 4-byte limit"):
        read_bytes("memory://rb/a.skeleton", limit=4)
    with pytest.raises(ReadError, match=r"memory://rb/gone.skeleton.*no such object"):
        read_bytes("memory://rb/gone.skeleton")


# ----------------------------------------------------------------------------- memory://


def test_memory_output_equals_local_and_reads_back(raw: Path, local_ref: Path,
                                                    tmp_path: Path) -> None:
    out = "memory://mem-out/ds.zarr"
    convert(ConvertConfig(input=raw, output=out, workers=0, shard_size=4))
    fs = fsspec.filesystem("memory")
    assert _objects(fs, "/mem-out/ds.zarr") == _output_bytes(local_ref)  # byte for byte
    assert fs.find("/mem-out/ds.zarr.partial") == []  # the build's own objects are gone

    import zarr

    group = zarr.open_group(out, mode="r")  # plain zarr, no s2i
    ref = zarr.open_group(str(local_ref), mode="r")
    assert np.array_equal(group["s2i"][...], ref["s2i"][...], equal_nan=True)

    local = S2IDataset(local_ref, read="shard")
    picks = [7, 1, 3, 3, 9, 0]
    want = local.__getitems__(picks).collated()
    for read in ("shard", "memory", "zarr"):
        ds = S2IDataset(out, read=read)
        got = ds.__getitems__(picks).collated()
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), read
    assert S2IDataset(out).read_path == "memory"  # auto: small enough to hold
    status, text = run_cli("inspect", out, "--json")
    assert status == 0 and json.loads(text)["num_samples"] == N_FILES, text
    status, text = run_cli("preview", out, "--index", "3", "-o", str(tmp_path / "p.png"))
    assert status == 0 and (tmp_path / "p.png").stat().st_size > 0, text


def test_memory_input_with_forked_workers(raw: Path, local_ref: Path, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    _upload(fs, raw, "/mem-in/raw")
    out = tmp_path / "from-memory.zarr"
    result = convert(ConvertConfig(input="memory://mem-in/raw", output=out, workers=2,
                                   shard_size=4))
    assert result.samples == N_FILES and not result.skipped_list  # README.txt is not listed
    _same_but_input(_output_bytes(local_ref), _output_bytes(out))
    assert json.loads((out / "zarr.json").read_bytes())["attributes"]["source"]["input"] == \
        "memory://mem-in/raw"


def test_url_and_local_inputs_in_one_run(raw: Path, local_ref: Path, tmp_path: Path) -> None:
    """Several inputs mix: half of the files as objects, half in a local folder."""
    fs = fsspec.filesystem("memory")
    names = sorted(p.name for p in raw.iterdir())
    half = tmp_path / "half"
    half.mkdir()
    for k, name in enumerate(names):
        if k % 2:
            fs.pipe_file(f"/mem-mix/raw/{name}", (raw / name).read_bytes())
        else:
            (half / name).write_bytes((raw / name).read_bytes())
    out = tmp_path / "mixed.zarr"
    convert(ConvertConfig(input=["memory://mem-mix/raw", half], output=out, workers=0,
                          shard_size=4))
    _same_but_input(_output_bytes(local_ref), _output_bytes(out))
    source = json.loads((out / "zarr.json").read_bytes())["attributes"]["source"]
    assert sorted(source["inputs"]) == sorted([str(half.resolve()), "memory://mem-mix/raw"])


def test_zip_archive_object_is_read_in_place(raw: Path, tmp_path: Path) -> None:
    zipped = _zip(raw, tmp_path / "ntu.zip")
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/mem-zip/ntu.zip", zipped.read_bytes())
    fs.pipe_file("/mem-zip/cut.zip", zipped.read_bytes()[: zipped.stat().st_size * 2 // 3])
    ref = tmp_path / "ref.zarr"
    convert(ConvertConfig(input=zipped, output=ref, workers=0, shard_size=4))
    out = tmp_path / "url.zarr"
    convert(ConvertConfig(input="memory://mem-zip/ntu.zip", output=out, workers=2, shard_size=4))
    _same_but_input(_output_bytes(ref), _output_bytes(out))
    with pytest.warns(UserWarning, match="central directory is unreadable"):
        cut = convert(ConvertConfig(input="memory://mem-zip/cut.zip", output=tmp_path / "c.zarr",
                                    workers=0, shard_size=4))
    assert 0 < cut.samples < N_FILES
    [(path, reason, kind)] = cut.skipped_list
    assert path.startswith("memory://mem-zip/cut.zip:") and kind == "bad_member", reason


def _delete_after_planning(monkeypatch: pytest.MonkeyPatch, fs: Any, path: str) -> None:
    """Make the next conversion lose the object ``path`` between planning and reading."""
    planned = pipeline.plan_inputs

    def plan_then_delete(*args: Any) -> Any:
        plan = planned(*args)
        fs.rm(path)
        return plan

    monkeypatch.setattr(pipeline, "plan_inputs", plan_then_delete)


def test_object_gone_after_listing_is_one_skip(raw: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fs = fsspec.filesystem("memory")
    _upload(fs, raw, "/mem-gone/raw")
    victim = sorted(p.name for p in raw.iterdir())[3]
    _delete_after_planning(monkeypatch, fs, f"/mem-gone/raw/{victim}")
    result = convert(ConvertConfig(input="memory://mem-gone/raw", output=tmp_path / "o.zarr",
                                   workers=0, shard_size=4))
    assert result.samples == N_FILES - 1
    [(path, reason, _)] = result.skipped_list
    assert path == f"memory://mem-gone/raw/{victim}" and "no such object" in reason


def test_memory_refusals(raw: Path, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/mem-foreign/data.zarr/notes.txt", b"someone's")
    for extra, why in (([], "already exists"), (["--overwrite"], "not an s2i dataset")):
        status, text = run_cli("convert", "--format", "ntu25", str(raw),
                               "memory://mem-foreign/data.zarr", "-q", "--workers", "0", *extra)
        assert status == 1 and why in text, text
    assert fs.cat_file("/mem-foreign/data.zarr/notes.txt") == b"someone's"
    status, text = run_cli("convert", "--format", "ntu25", str(raw), "memory://mem-r/o.h5", "-q")
    assert status == 1 and "only Zarr outputs" in text, text
    status, text = run_cli("convert", "--format", "ntu25", "memory://nowhere/raw",
                           str(tmp_path / "o.zarr"), "-q")
    assert status == 1 and "no such input" in text, text
    with pytest.raises(S2IError, match="Dask workers cannot"):
        convert(ConvertConfig(input=raw, output="memory://mem-r/d.zarr", dask="local:1"))


def test_memory_output_written_by_another_process_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker process (not the one that opened the memory:// output) would write into its own
    copy of memory, lost at exit: refused with the reason."""
    monkeypatch.setattr(remote, "_MEMORY_WRITERS", set())
    with pytest.raises(StoreError, match="worker processes cannot write them"):
        remote.put_object(urls.Url("memory://mem-w/ds.zarr/s2i/c/0/0/0/0/0"), [memoryview(b"x")])


def test_overwrite_replaces_only_finished_s2i_datasets(raw: Path) -> None:
    out = "memory://mem-ow/ds.zarr"
    convert(ConvertConfig(input=raw, output=out, workers=0, shard_size=4, limit=4))
    with pytest.raises(StoreError, match="already exists"):
        convert(ConvertConfig(input=raw, output=out, workers=0, shard_size=4))
    convert(ConvertConfig(input=raw, output=out, workers=0, shard_size=4, overwrite=True))
    with open_dataset(out) as ds:
        assert len(ds) == N_FILES


# ----------------------------------------------------------------------------- S3 (moto)


def test_s3_input_and_output_equal_local(s3: dict[str, Any], local_ref: Path) -> None:
    fs, bucket = s3["fs"], s3["bucket"]
    out = f"s3://{bucket}/out/ds.zarr"
    result = convert(ConvertConfig(input=f"s3://{bucket}/raw", output=out, workers=2,
                                   shard_size=4))
    assert result.samples == N_FILES and not result.skipped_list
    _same_but_input(_output_bytes(local_ref), _objects(fs, f"{bucket}/out/ds.zarr"))
    assert not fs.exists(f"{bucket}/out/ds.zarr.partial")

    import zarr

    group = zarr.open_group(out, mode="r", storage_options=s3["options"])  # plain zarr
    assert group.attrs["s2i_layout_version"] == "1" and group["s2i"].shape[0] == N_FILES
    status, text = run_cli("verify", out)
    assert status == 0 and text.strip().endswith("ok"), text


def _count_worker_shards(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many shards were sent to worker processes and how many the parent wrote."""
    from s2i_prep.conversion import assembly

    counts = {"worker": 0, "parent": 0}
    real = assembly.shard_job

    def counted(*args: Any) -> Any:
        job = real(*args)
        counts["worker" if job is not None else "parent"] += 1
        return job

    monkeypatch.setattr(assembly, "shard_job", counted)
    return counts


def test_s3_shards_are_put_by_worker_processes(s3: dict[str, Any], raw: Path, local_ref: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Local workers PUT the shard objects themselves (one PUT each), as they write local shard
    files; the bytes equal a local conversion's."""
    fs, bucket = s3["fs"], s3["bucket"]
    counts = _count_worker_shards(monkeypatch)
    out = f"s3://{bucket}/by-workers/ds.zarr"
    convert(ConvertConfig(input=raw, output=out, workers=2, shard_size=4))
    assert counts == {"worker": 3, "parent": 0}
    _same_but_input(_output_bytes(local_ref), _objects(fs, f"{bucket}/by-workers/ds.zarr"))


def test_memory_output_with_workers_is_written_by_the_parent(
        raw: Path, local_ref: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """memory:// lives in the converting process: its shards stay with the parent."""
    counts = _count_worker_shards(monkeypatch)
    convert(ConvertConfig(input=raw, output="memory://mem-w2/ds.zarr", workers=2, shard_size=4))
    assert counts == {"worker": 0, "parent": 3}
    fs = fsspec.filesystem("memory")
    assert _objects(fs, "/mem-w2/ds.zarr") == _output_bytes(local_ref)


@pytest.mark.slow
def test_s3_resume_after_kill(s3: dict[str, Any], raw: Path, local_ref: Path) -> None:
    """s3:// in and out; the input objects listed again on resume (same ETags) are accepted, a
    converted object whose content changed is named."""
    fs, bucket, options = s3["fs"], s3["bucket"], s3["options"]
    src, out = f"s3://{bucket}/raw", f"s3://{bucket}/killed/ds.zarr"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "S2I_FAULT": "shard-committed@2=KILL"}
    killed = subprocess.run(
        [sys.executable, "-m", "s2i_prep.cli", "convert", "--format", "ntu25", src, out,
         "-q", "--shard-size", "4", "--workers", "0",
         "--storage-option", f"endpoint_url={options['endpoint_url']}"],
        env=env, timeout=120, capture_output=True, text=True, check=False)
    assert killed.returncode == -9, killed.stderr
    fs.invalidate_cache()
    manifest = json.loads(fs.cat_file(f"{bucket}/killed/ds.zarr.partial/s2i_manifest.json"))
    assert manifest["committed"] == 8  # killed right after committing its second shard
    assert not remote.is_finished(urls.Url(out))
    with pytest.raises(StoreError, match="unfinished conversion"):
        open_dataset(out)
    with pytest.raises(StoreError, match="--resume"):
        convert(ConvertConfig(input=src, output=out, workers=0, shard_size=4))
    first = f"{bucket}/raw/{min(p.name for p in raw.iterdir())}"
    original = fs.cat_file(first)
    fs.pipe_file(first, original + b"\n")
    with pytest.raises(S2IError, match=r"1 changed \(e\.g\. S0"):
        convert(ConvertConfig(input=src, output=out, workers=0, shard_size=4, resume=True))
    fs.pipe_file(first, original)  # the same bytes again: the same ETag, so resume is allowed
    convert(ConvertConfig(input=src, output=out, workers=0, shard_size=4, resume=True))
    _same_but_input(_output_bytes(local_ref), _objects(fs, f"{bucket}/killed/ds.zarr"))
    assert not fs.exists(f"{bucket}/killed/ds.zarr.partial")


@pytest.mark.slow
def test_s3_dataset_read_paths(s3: dict[str, Any], raw: Path, local_ref: Path) -> None:
    fs, bucket, options = s3["fs"], s3["bucket"], s3["options"]
    for codec in ("none", "zstd"):
        out = f"s3://{bucket}/train-{codec}/ds.zarr"
        local = raw.parent / f"train-{codec}.zarr"
        if not local.exists():
            convert(ConvertConfig(input=raw, output=local, workers=0, shard_size=4, codec=codec))
        convert(ConvertConfig(input=raw, output=out, workers=0, shard_size=4, codec=codec))
        picks = [4, 1, 3, 3, 0]  # shuffled, one repeated, across shards
        want = S2IDataset(local, split="ntu60-xsub", read="shard").__getitems__(picks)
        for read in ("shard", "memory"):
            ds = S2IDataset(out, split="ntu60-xsub", read=read, storage_options=options)
            got = ds.__getitems__(picks)
            assert torch.equal(got.collated()[0], want.collated()[0]), (codec, read)
            assert torch.equal(got.collated()[1], want.collated()[1])
            assert ds.read_path == read
    # DataLoader worker processes open their own connections (forked after the parent used its)
    from s2i_train.data import collate

    ds = S2IDataset(f"s3://{bucket}/train-none/ds.zarr", read="shard", storage_options=options)
    ds[0]
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate,
                                         multiprocessing_context="fork")
    local = S2IDataset(raw.parent / "train-none.zarr", read="shard")
    assert torch.equal(torch.cat([x for x, _ in loader]),
                       local.__getitems__(list(range(len(local)))).collated()[0])
    # damage is reported with the URL, as for a local dataset
    shard = f"{bucket}/train-none/ds.zarr/s2i/c/1/0/0/0/0"
    data = bytearray(fs.cat_file(shard))
    data[10] ^= 0xFF
    fs.pipe_file(shard, bytes(data))
    ds = S2IDataset(f"s3://{bucket}/train-none/ds.zarr", read="shard", storage_options=options)
    with pytest.raises(SampleReadError, match=rf"s3://{bucket}/train-none/ds.zarr: sample 4 "
                                              "fails its crc32c"):
        ds[4]
    fs.rm(shard)
    with pytest.raises(DatasetFormatError, match=r"s3://.*1 shard file\(s\) of s2i missing"):
        S2IDataset(f"s3://{bucket}/train-none/ds.zarr", storage_options=options)


def test_s3_missing_object_and_denied_read_are_skips(s3: dict[str, Any], raw: Path,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fs, bucket = s3["fs"], s3["bucket"]
    _upload(fs, raw, f"{bucket}/gone")
    victim = sorted(p.name for p in raw.iterdir())[5]
    _delete_after_planning(monkeypatch, fs, f"{bucket}/gone/{victim}")
    result = convert(ConvertConfig(input=f"s3://{bucket}/gone", output=tmp_path / "o.zarr",
                                   workers=0, shard_size=4))
    assert result.samples == N_FILES - 1
    [(path, reason, _)] = result.skipped_list
    assert path == f"s3://{bucket}/gone/{victim}" and "no such object" in reason, reason
