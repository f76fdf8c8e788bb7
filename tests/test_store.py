"""Dataset store: round trips read with plain zarr/h5py, output safety, resume, verify, inspect."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
import zarr

from s2i_prep.errors import StoreError
from s2i_prep.store import inspect_dataset, layout, open_dataset, open_writer, verify_dataset

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (3, 3, 8, 10)  # S, 3, H (frames), W (columns)
SHARD = 4
SPEC_TEXT = "format: toy\nfields: [setup, subject]\njoints: [a, b]\n"
STREAMS = ["joint", "motion", "bone"]


def _shard(index: int, k: int = SHARD, dtype: str = "float16") -> tuple[np.ndarray, dict, dict]:
    """Deterministic shard number ``index``: samples, columns and the pipeline state after it."""
    rng = np.random.default_rng(index)
    start = index * SHARD
    if dtype == "uint8":
        s2i = rng.integers(0, 256, size=(k, *SHAPE), dtype=np.uint8)
    else:
        s2i = np.cumsum(rng.normal(0, 0.05, size=(k, *SHAPE)), axis=3).astype(dtype)
    ids = np.array([f"S{start + i:04d}" for i in range(k)])
    columns = {
        "label": (start + np.arange(k)) % 5,
        "sample_id": ids,
        "num_frames": np.full(k, 40 + index),
        "num_persons": np.ones(k, dtype=np.int64),
        "setup": np.full(k, index + 1),
        "subject": (start + np.arange(k)) % 3 + 1,
    }
    return s2i, columns, {"files_done": start + k}


def _attrs(dtype: str = "float16") -> dict:
    digest = hashlib.sha256(
        json.dumps(yaml.safe_load(SPEC_TEXT), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return {
        "streams": STREAMS,
        "columns": [
            {"column": i, "person": 0, "joint": f"j{i}", "part": "torso"} for i in range(SHAPE[3])
        ],
        "encoding": {
            "streams": STREAMS,
            "frames": SHAPE[2],
            "align": False,
            "image_size": None,
            "dtype": dtype,
        },
        "spec": SPEC_TEXT,
        "spec_sha256": digest,
        "stats": {
            s: {
                "mean": [0.0] * 3,
                "std": [1.0] * 3,
                "min": [-1.0] * 3,
                "max": [1.0] * 3,
                "count": 10,
            }
            for s in STREAMS
        },
        "source": {"root": "/data/raw", "files": 11, "bytes": 12345, "format": "toy"},
        "s2i_version": "0.0.test",
        "report": {
            "skipped": [
                {
                    "path": "bad.skeleton",
                    "reason": "line 3: expected 12 fields, found 11",
                    "kind": "ParseError",
                }
            ],
            "counts": {"files": 11, "samples": 10, "skipped": 1},
        },
        "class_count": 5,
    }


def _splits(n: int) -> dict:
    idx = np.arange(n)
    return {"xsub": (idx[idx % 2 == 0], idx[idx % 2 == 1]), "all": (idx, idx[:0])}


def _write(
    path: Path, sizes=(SHARD, SHARD, 2), dtype: str = "float16", attrs: dict | None = None, **kw
) -> Path:
    with open_writer(
        path, sample_shape=SHAPE, dtype=dtype, shard_size=SHARD, fingerprint="fp1", **kw
    ) as w:
        for i, k in enumerate(sizes):
            w.write_shard(*_shard(i, k, dtype))
        return w.finalize(attrs or _attrs(dtype), _splits(w.num_samples))


def _expected(sizes=(SHARD, SHARD, 2), dtype: str = "float16"):
    parts = [_shard(i, k, dtype) for i, k in enumerate(sizes)]
    s2i = np.concatenate([p[0] for p in parts])
    cols = {c: np.concatenate([p[1][c] for p in parts]) for c in parts[0][1]}
    return s2i, cols


# --- round trips, read with plain zarr / h5py ---------------------------------------------------
@pytest.mark.filterwarnings("error")  # no zarr warning may reach users
def test_zarr_round_trip_plain_zarr(tmp_path):
    out = _write(tmp_path / "ds.zarr")
    s2i, cols = _expected()
    g = zarr.open_group(out, mode="r")
    assert g["s2i"].shape == (10, *SHAPE) and g["s2i"].dtype == np.float16
    assert g["s2i"].chunks == (1, *SHAPE) and g["s2i"].shards == (SHARD, *SHAPE)
    np.testing.assert_array_equal(g["s2i"][...], s2i)
    assert g["label"].dtype == np.int16 and g["num_persons"].dtype == np.int8
    assert g["num_frames"].dtype == np.int32 and g["setup"].dtype == np.int32
    for name in ("label", "num_frames", "num_persons", "setup", "subject"):
        np.testing.assert_array_equal(g[name][...], cols[name])
    assert list(g["sample_id"][...]) == list(cols["sample_id"])
    np.testing.assert_array_equal(g["splits/xsub/train"][...], np.arange(0, 10, 2))
    assert g["splits/all/test"].shape == (0,)
    assert g.attrs["s2i_layout_version"] == "1" and g.attrs["encoding"]["frames"] == SHAPE[2]
    assert g.attrs["storage"]["codec"] == "none"
    assert verify_dataset(out) == []


def test_hdf5_round_trip_plain_h5py(tmp_path):
    many = [
        {"path": f"/raw/S{i:03d}.skeleton", "reason": "empty", "kind": "EmptySampleError"}
        for i in range(3000)
    ]
    attrs = {
        **_attrs(),
        "report": {"skipped": many, "counts": {"skipped": 3000}},
    }  # > 64 KiB of JSON
    out = _write(tmp_path / "ds.h5", codec="gzip", attrs=attrs)
    s2i, cols = _expected()
    with h5py.File(out, "r") as f:
        d = f["s2i"]
        assert d.shape == (10, *SHAPE) and d.chunks == (1, *SHAPE) and d.compression == "gzip"
        np.testing.assert_array_equal(d[...], s2i)
        np.testing.assert_array_equal(f["label"][...], cols["label"])
        assert f["label"].dtype == np.int16
        assert list(f["sample_id"].asstr()[...]) == list(cols["sample_id"])
        assert f.attrs["s2i_layout_version"] == "1" and f.attrs["spec"] == SPEC_TEXT
        json_names = json.loads(f.attrs["json_attrs"])
        assert "encoding" in json_names and json.loads(f.attrs["stats"])["bone"]["count"] == 10
        np.testing.assert_array_equal(f["splits/xsub/test"][...], np.arange(1, 10, 2))
    assert verify_dataset(out) == []
    with open_dataset(out) as ds:  # the s2i reader decodes the JSON attributes again
        assert ds.attrs["report"]["skipped"] == many and len(ds) == 10


@pytest.mark.parametrize("name,codec", [("u.zarr", "zstd"), ("u.zarr", "lz4"), ("u.h5", "lzf")])
def test_uint8_codecs_round_trip(tmp_path, name, codec):
    out = _write(tmp_path / name, dtype="uint8", codec=codec)
    with open_dataset(out) as ds:
        np.testing.assert_array_equal(ds.array("s2i")[...], _expected(dtype="uint8")[0])
        assert ds.attrs["storage"]["codec"] == codec
    assert verify_dataset(out) == []


def test_codec_and_shard_defaults():
    compact, image = (3, 3, 64, 50), (3, 3, 224, 224)
    assert layout.resolve_codec("zarr", "auto", compact, "float16") == "none"
    assert layout.resolve_codec("zarr", "auto", image, "uint8") == "zstd"
    assert layout.resolve_codec("zarr", "auto", image, "float16") == "lz4"
    assert layout.resolve_codec("hdf5", "auto", image, "uint8") == "none"
    with pytest.raises(StoreError, match="zstd/lz4 need a .zarr"):
        layout.resolve_codec("hdf5", "zstd", image, "uint8")
    assert layout.default_shard_size(compact, "float16") == 1024
    assert layout.default_shard_size((3, 3, 64, 25), "float16") == 2048
    assert layout.default_shard_size(image, "uint8") == 128
    assert layout.default_shard_size(image, "float16") == 64


def test_write_shard_rejects_bad_input(tmp_path):
    with open_writer(
        tmp_path / "x.zarr", sample_shape=SHAPE, dtype="float16", shard_size=SHARD
    ) as w:
        s2i, cols, state = _shard(0)
        with pytest.raises(StoreError, match="expected dtype float16"):
            w.write_shard(s2i.astype(np.float32), cols, state)
        with pytest.raises(StoreError, match="missing num_frames"):
            w.write_shard(s2i, {k: v for k, v in cols.items() if k != "num_frames"}, state)
        with pytest.raises(StoreError, match="do not fit the stored int16"):
            w.write_shard(s2i, {**cols, "label": np.full(SHARD, 40000)}, state)
        w.write_shard(*_shard(0, 2))
        with pytest.raises(StoreError, match="only the last shard may be short"):
            w.write_shard(*_shard(1))
    with pytest.raises(StoreError, match=r"must end with \.zarr"):
        open_writer(tmp_path / "x.npy", sample_shape=SHAPE, dtype="float16")


# --- output safety ---------------------------------------------------------------------------
def test_output_appears_only_at_finalize(tmp_path):
    out = tmp_path / "ds.zarr"
    w = open_writer(out, sample_shape=SHAPE, dtype="float16", shard_size=SHARD)
    w.write_shard(*_shard(0))
    assert not out.exists() and (tmp_path / "ds.zarr.partial").is_dir()
    assert (tmp_path / "ds.zarr.lock").exists()
    with pytest.raises(StoreError, match="attributes missing: stats"):
        w.finalize({k: v for k, v in _attrs().items() if k != "stats"}, _splits(SHARD))
    with pytest.raises(StoreError, match=r"indices 0\.\.4 outside 0\.\.3"):
        w.finalize(_attrs(), {"bad": (np.arange(5), np.arange(0))})
    assert not out.exists()
    w.finalize(_attrs(), _splits(SHARD))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.zarr"]
    assert not (out / layout.MANIFEST).exists()


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_existing_output_refused_unless_overwrite(tmp_path, suffix):
    out = _write(tmp_path / f"ds{suffix}")
    with pytest.raises(StoreError, match="already exists.*--overwrite"):
        open_writer(out, sample_shape=SHAPE, dtype="float16")
    assert not (tmp_path / f"ds{suffix}.lock").exists()  # the refused writer released its lock
    _write(out, sizes=(SHARD,), overwrite=True)
    with open_dataset(out) as ds:
        assert len(ds) == SHARD
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ds{suffix}"]


def test_second_process_is_refused_by_the_lock(tmp_path):
    out = tmp_path / "ds.zarr"
    code = (
        "import sys\nfrom s2i_prep.store import open_writer\n"
        "from s2i_prep.errors import StoreError\n"
        "try:\n    open_writer(sys.argv[1], sample_shape=(3, 3, 8, 10), dtype='float16')\n"
        "except StoreError as exc:\n    print(exc); sys.exit(7)\n"
    )
    with open_writer(out, sample_shape=SHAPE, dtype="float16", shard_size=SHARD) as w:
        w.write_shard(*_shard(0))
        run = subprocess.run(
            [sys.executable, "-c", code, str(out)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
        assert run.returncode == 7, run.stderr
        assert "already running" in run.stdout and f"pid {os.getpid()}" in run.stdout
    w2 = open_writer(
        out, sample_shape=SHAPE, dtype="float16", resume=True
    )  # free again after close
    assert w2.num_samples == SHARD
    w2.close()


def test_stale_partial_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "ds.zarr"
    w = open_writer(out, sample_shape=SHAPE, dtype="float16", shard_size=SHARD, fingerprint="fp1")
    w.write_shard(*_shard(0))
    w.close()
    with pytest.raises(StoreError, match="--resume to continue it or --overwrite"):
        open_writer(out, sample_shape=SHAPE, dtype="float16")
    with pytest.raises(StoreError, match="different inputs or options"):
        open_writer(out, sample_shape=SHAPE, dtype="float16", resume=True, fingerprint="other")
    with pytest.raises(StoreError, match="codec was 'none'"):
        open_writer(
            out, sample_shape=SHAPE, dtype="float16", resume=True, fingerprint="fp1", codec="zstd"
        )
    with open_writer(
        out, sample_shape=SHAPE, dtype="float16", overwrite=True, shard_size=SHARD
    ) as w:
        assert w.num_samples == 0


# --- resume after a kill ---------------------------------------------------------------------
def _write_until_killed(path: str, kill_at_shard: int, mid_shard: bool) -> None:
    """Run in a child process: write shards, then SIGKILL itself inside shard ``kill_at_shard``.

    ``mid_shard``: die after ``s2i`` of that shard is written but before its columns (a torn
    shard); otherwise die after all its data, just before the manifest commit.
    """
    w = open_writer(path, sample_shape=SHAPE, dtype="float16", shard_size=SHARD, fingerprint="fp1")
    backend = w._backend
    original = backend.append

    def append(start, s2i, columns):
        if start == kill_at_shard * SHARD:
            original(start, s2i, {} if mid_shard else columns)
            os.kill(os.getpid(), signal.SIGKILL)
        original(start, s2i, columns)

    backend.append = append
    for i in range(kill_at_shard + 1):
        w.write_shard(*_shard(i))


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
@pytest.mark.parametrize("kill_at,mid_shard", [(2, False), (2, True), (0, False)])
def test_resume_after_kill(tmp_path, suffix, kill_at, mid_shard):
    out = tmp_path / f"ds{suffix}"
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import test_store; "
        f"test_store._write_until_killed({str(out)!r}, {kill_at}, {mid_shard})"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert not out.exists()
    if suffix == ".zarr":  # tear the shard beyond the manifest and leave a stray temp file
        shard = tmp_path / f"ds.zarr.partial/data.zarr/s2i/c/{kill_at}/0/0/0/0"
        shard.write_bytes(shard.read_bytes()[:100])
        (shard.parent / "0.deadbeef.partial").write_bytes(b"junk")
    w = open_writer(out, sample_shape=SHAPE, dtype="float16", resume=True, fingerprint="fp1")
    assert w.num_samples == kill_at * SHARD
    assert w.resume_state == ({"files_done": kill_at * SHARD} if kill_at else {})
    if kill_at:
        committed = w.committed_columns()
        _, before = _expected(sizes=(SHARD,) * kill_at)
        assert sorted(committed) == sorted(before)
        for name, values in before.items():
            np.testing.assert_array_equal(committed[name], values)
        assert committed["sample_id"].dtype.kind == "U"
    for i in range(kill_at, 3):
        w.write_shard(*_shard(i))
    w.write_shard(*_shard(3, 1))
    w.finalize(_attrs(), _splits(w.num_samples))
    assert verify_dataset(out) == []
    s2i, cols = _expected(sizes=(SHARD, SHARD, SHARD, 1))
    with open_dataset(out) as ds:
        np.testing.assert_array_equal(ds.array("s2i")[...], s2i)
        np.testing.assert_array_equal(ds.column("label"), cols["label"])
        assert list(ds.column("sample_id")) == list(cols["sample_id"])


# --- verify finds damage ---------------------------------------------------------------------
def test_verify_finds_truncated_zarr_shard(tmp_path):
    out = _write(tmp_path / "ds.zarr")
    shard = out / "s2i/c/1/0/0/0/0"
    shard.write_bytes(shard.read_bytes()[:-40])
    problems = verify_dataset(out)
    assert any(re.search(r"samples 4\.\.7 unreadable", p) for p in problems), problems


def test_verify_finds_missing_zarr_shard(tmp_path):
    out = _write(tmp_path / "ds.zarr")
    (out / "s2i/c/0/0/0/0/0").unlink()
    problems = verify_dataset(out)
    assert any("shard files missing for shards 0" in p for p in problems), problems
    assert any("non-finite values in samples 0, 1, 2, 3" in p for p in problems), problems


def test_verify_finds_corrupted_hdf5_chunk(tmp_path):
    out = _write(tmp_path / "ds.h5")
    s2i, _ = _expected()
    raw = bytearray(out.read_bytes())
    needle = s2i[5].tobytes()[:64]
    at = bytes(raw).find(needle)
    assert at > 0
    raw[at + 10] ^= 0xFF
    out.write_bytes(bytes(raw))
    problems = verify_dataset(out)
    assert any("unreadable" in p for p in problems), problems


def test_verify_finds_bad_splits_ids_labels_and_spec(tmp_path):
    out = _write(tmp_path / "ds.zarr")
    g = zarr.open_group(out, mode="r+")
    g["splits/xsub/train"][0] = 10  # out of range (N = 10)
    g["splits/xsub/test"][1] = 2  # also in train
    g["sample_id"][1] = "S9999"  # unsorted
    g["label"][2] = 7  # class_count is 5
    g["s2i"][6] = np.full(SHAPE, np.inf, dtype=np.float16)
    g.attrs["spec"] = SPEC_TEXT + "extra: 1\n"
    del g.attrs["stats"]
    problems = "\n".join(verify_dataset(out))
    for expected in (
        "splits/xsub/train: indices outside 0..9: 10",
        "splits/xsub: train and test share samples 2",
        "sample_id: not sorted at index 2",
        "label: values outside 0..4 (class_count) at index 2",
        "non-finite values in samples 6",
        "does not match the stored spec text",
        "attributes missing: stats",
    ):
        assert expected in problems, problems


def test_verify_cli_exit_codes(tmp_path, capsys):
    from s2i_prep.cli import main

    out = _write(tmp_path / "ds.h5")
    assert main(["verify", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: ok"
    with h5py.File(out, "r+") as f:
        f["splits/xsub/test"][0] = -1
    assert main(["verify", str(out)]) == 1
    assert "splits/xsub/test: indices outside 0..9: -1" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "missing.zarr")]) == 1


# --- inspect ---------------------------------------------------------------------------------
def test_inspect(tmp_path, capsys):
    from s2i_prep.cli import main

    out = _write(tmp_path / "ds.zarr")
    info = inspect_dataset(out)
    assert info["num_samples"] == 10 and info["sample_shape"] == list(SHAPE)
    assert info["classes"] == {"0": 2, "1": 2, "2": 2, "3": 2, "4": 2} and info["class_count"] == 5
    assert info["splits"] == {"all": {"train": 10, "test": 0}, "xsub": {"train": 5, "test": 5}}
    assert info["metadata_fields"] == ["setup", "subject"] and info["streams"] == STREAMS
    assert info["skipped"][0]["path"] == "bad.skeleton" and info["bytes_on_disk"] > 10 * 1440
    assert main(["inspect", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 10
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "split     xsub: train 5, test 5" in text and "bad.skeleton" in text


# --- docs/FORMAT.md snippets run as written ----------------------------------------------------
@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_format_doc_snippets(tmp_path, suffix):
    out = _write(tmp_path / f"dataset{suffix}")
    doc = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    marker = "# plain zarr" if suffix == ".zarr" else "# plain h5py"
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if b.startswith(marker)
    ]
    assert len(blocks) == 1
    scope: dict = {}
    exec(blocks[0].replace(f'"dataset{suffix}"', repr(str(out))), scope)
    s2i, cols = _expected()
    np.testing.assert_array_equal(scope["x"], s2i[3])
    assert scope["y"] == cols["label"][3] and scope["name"] == cols["sample_id"][3]


def test_bench_store_quick_runs():
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_store.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert {(r["form"], r["dtype"]) for r in result["results"]} == {
        ("compact", "float16"),
        ("image", "float16"),
        ("image", "uint8"),
    }
    assert all(r["disk_bytes_per_sample"] > 0 for r in result["results"])


@pytest.mark.parametrize("codec", ["none", "zstd", "lz4"])
@pytest.mark.parametrize("k,dtype", [(64, "float16"), (23, "float16"), (7, "uint8")])
def test_shard_files_are_byte_identical_to_zarr_python(tmp_path, k, dtype, codec):
    """The thin shard writer (run by workers) must produce exactly the file zarr-python writes,
    uncompressed and with each compressor s2i offers, full and short shards."""
    import zarr

    from s2i_prep.store.zarr_store import ZarrBackend, shard_pieces, write_shard_file

    rng = np.random.default_rng(k)
    x = (rng.random((k, 3, 3, 8, 10)) * 200).astype(dtype)
    x[: k // 3] = 0  # some highly compressible samples
    ref_backend = ZarrBackend(tmp_path / "ref")
    ref_backend.create((3, 3, 8, 10), dtype, codec, 64)
    target = ref_backend.target
    assert target is not None and (target.compressor is None) == (codec == "none")
    ref_backend.target = None  # zarr-python writes the reference, as the backend calls it
    cols = {"label": np.zeros(k, np.int64)}
    ref_backend.create_column("label", "int16")
    ref_backend.append(0, x, cols)
    ref = target.path(0).read_bytes()
    assert b"".join(shard_pieces(list(x), 64, target.compressor)) == ref
    target.path(0).unlink()
    write_shard_file(target, 0, [row for row in x])  # rows as separate views
    assert target.path(0).read_bytes() == ref
    np.testing.assert_array_equal(zarr.open_group(str(ref_backend.path))["s2i"][:], x)


@pytest.mark.parametrize("short", [False, True])
def test_write_all_writes_every_piece_in_order(tmp_path, monkeypatch, short):
    """Shards are written with writev in batches; a short write resumes mid-piece."""
    import os

    from s2i_prep.store import zarr_store

    rng = np.random.default_rng(3)
    pieces = [rng.integers(0, 256, int(n), dtype=np.uint8) for n in rng.integers(0, 50, 2500)]
    if short:  # the kernel may write less than asked: here at most 7 bytes of the first piece
        monkeypatch.setattr(zarr_store.os, "writev",
                            lambda fd, bufs: os.write(fd, bytes(bufs[0])[:7]))
    path = tmp_path / "out.bin"
    with open(path, "wb") as fh:
        zarr_store.write_all(fh.fileno(), [memoryview(p) for p in pieces])
    assert path.read_bytes() == b"".join(p.tobytes() for p in pieces)
