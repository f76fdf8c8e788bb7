"""Store benchmark: bytes per sample, write and read throughput per storage form, backend and codec.

Data are generated, not random noise: smooth random-walk skeletons (joint offset sd 0.4 m, step sd
0.02, jitter sd 0.002; half the samples have a second person, the other half zeros there) turned
into joint/motion/bone grids (3, 3, 64, 50) float16, and the same grids bilinearly resized to
224x224 (per-sample, per-channel min-max to [0, 1] for float16, x255 for uint8). Writes go through
``open_writer``/``write_shard``/``finalize``; reads through ``open_dataset`` (zarr-python / h5py).

    python benchmarks/bench_store.py [--quick] [--workdir DIR]

Prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2i_prep.store import open_dataset, open_writer  # noqa: E402

FRAMES, JOINTS, PERSONS = 64, 25, 2
CASES = [  # (form, dtype, backend, codec)
    ("compact", "float16", "zarr", "none"),
    ("compact", "float16", "zarr", "zstd"),
    ("compact", "float16", "zarr", "lz4"),
    ("compact", "float16", "hdf5", "none"),
    ("compact", "float16", "hdf5", "lzf"),
    ("compact", "float16", "hdf5", "gzip"),
    ("image", "float16", "zarr", "none"),
    ("image", "float16", "zarr", "zstd"),
    ("image", "float16", "zarr", "lz4"),
    ("image", "float16", "hdf5", "none"),
    ("image", "float16", "hdf5", "lzf"),
    ("image", "uint8", "zarr", "none"),
    ("image", "uint8", "zarr", "zstd"),
    ("image", "uint8", "zarr", "lz4"),
    ("image", "uint8", "hdf5", "none"),
    ("image", "uint8", "hdf5", "lzf"),
    ("image", "uint8", "hdf5", "gzip"),
]


def compact_grids(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3 streams, 3, 64, 50) float16: joint, motion, bone of smooth random-walk skeletons."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0, 0.4, size=(n, PERSONS, 1, JOINTS, 3))
    steps = rng.normal(0, 0.02, size=(n, PERSONS, FRAMES, 1, 3)) + rng.normal(
        0, 0.005, size=(n, PERSONS, FRAMES, JOINTS, 3)
    )
    joints = (
        offsets
        + np.cumsum(steps, axis=2)
        + rng.normal(0, 0.002, size=(n, PERSONS, FRAMES, JOINTS, 3))
    )
    joints[n // 2 :, 1] = 0.0  # second person absent in half the samples
    motion = np.zeros_like(joints)
    motion[:, :, :-1] = joints[:, :, 1:] - joints[:, :, :-1]
    bone = joints - np.roll(joints, 1, axis=3)
    streams = np.stack([joints, motion, bone], axis=1)  # (n, S, M, T, V, C)
    grid = streams.transpose(0, 1, 5, 3, 2, 4).reshape(n, 3, 3, FRAMES, PERSONS * JOINTS)
    return grid.astype(np.float16)


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) bilinear weights, align_corners=False."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    w = np.zeros((dst, src))
    w[np.arange(dst), lo] += 1 - (pos - lo)
    w[np.arange(dst), hi] += pos - lo
    return w


def images(grids: np.ndarray, size: int, dtype: str) -> np.ndarray:
    """Min-max normalised, bilinearly resized (n, S, 3, size, size) images."""
    g = grids.astype(np.float32)
    lo = g.min(axis=(3, 4), keepdims=True)
    hi = g.max(axis=(3, 4), keepdims=True)
    g = (g - lo) / np.maximum(hi - lo, 1e-6)
    rows, cols = _resize_matrix(g.shape[3], size), _resize_matrix(g.shape[4], size)
    img = np.einsum("hr,nscrw,kw->nschk", rows, g, cols, optimize=True)
    return np.round(img * 255).astype(np.uint8) if dtype == "uint8" else img.astype(np.float16)


def _columns(start: int, k: int) -> dict:
    idx = start + np.arange(k)
    return {
        "label": idx % 60,
        "sample_id": np.array([f"S{i:07d}" for i in idx]),
        "num_frames": np.full(k, 100),
        "num_persons": np.ones(k, int),
        "setup": idx % 17 + 1,
    }


def _attrs(shape: tuple, dtype: str) -> dict:
    streams = ["joint", "motion", "bone"]
    return {
        "streams": streams,
        "columns": [{"column": i} for i in range(PERSONS * JOINTS)],
        "encoding": {
            "frames": FRAMES,
            "image_size": None if shape[-1] == PERSONS * JOINTS else list(shape[-2:]),
            "dtype": dtype,
        },
        "spec": "format: bench\n",
        "spec_sha256": "",
        "stats": {},
        "source": {},
        "s2i_version": "bench",
        "report": {"skipped": [], "counts": {}},
        "class_count": 60,
    }


def _disk_bytes(path: Path) -> int:
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


def run_case(
    data: np.ndarray, dtype: str, backend: str, codec: str, workdir: Path, random_reads: int
) -> dict:
    out = workdir / f"bench.{'zarr' if backend == 'zarr' else 'h5'}"
    shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    n = len(data)
    t0 = time.perf_counter()
    with open_writer(out, sample_shape=data.shape[1:], dtype=dtype, codec=codec) as w:
        for start in range(0, n, w.shard_size):
            block = data[start : start + w.shard_size]
            w.write_shard(block, _columns(start, len(block)), {"done": start + len(block)})
        shard = w.shard_size
        w.finalize(_attrs(data.shape[1:], dtype), {})
    os.sync()
    write_s = time.perf_counter() - t0
    raw = data[0].nbytes
    disk = _disk_bytes(out)
    with open_dataset(out) as ds:
        arr = ds.array("s2i")
        t0 = time.perf_counter()
        for start in range(0, n, shard):
            np.asarray(arr[start : start + shard])
        scan_s = time.perf_counter() - t0
        idx = np.random.default_rng(1).integers(0, n, size=random_reads)
        np.asarray(arr[int(idx[0])])  # open/first-index cost out of the timing
        t0 = time.perf_counter()
        for i in idx:
            np.asarray(arr[int(i)])
        rand_s = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    return {
        "backend": backend,
        "codec": codec,
        "n": n,
        "shard_size": shard,
        "raw_bytes_per_sample": raw,
        "disk_bytes_per_sample": round(disk / n, 1),
        "ratio": round(raw * n / disk, 3),
        "write_samples_s": round(n / write_s, 1),
        "write_raw_MB_s": round(raw * n / write_s / 1e6, 1),
        "scan_samples_s": round(n / scan_s, 1),
        "random_samples_s": round(random_reads / rand_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--n-compact", type=int, default=4096)
    ap.add_argument("--n-image", type=int, default=256)
    ap.add_argument("--random-reads", type=int, default=300)
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    args = ap.parse_args()
    if args.quick:
        args.n_compact, args.n_image, args.random_reads = 64, 8, 10
    workdir = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.workdir))
    compact = compact_grids(args.n_compact)
    base = compact[: args.n_image]
    data = {
        ("compact", "float16"): compact,
        ("image", "float16"): images(base, 224, "float16"),
        ("image", "uint8"): images(base, 224, "uint8"),
    }
    results = []
    print(
        f"{'form':<8} {'dtype':<8} {'backend':<7} {'codec':<5} {'B/sample':>10} {'ratio':>6} "
        f"{'write/s':>9} {'MB/s':>7} {'scan/s':>9} {'rand/s':>8}"
    )
    try:
        for form, dtype, backend, codec in CASES:
            r = {
                "form": form,
                "dtype": dtype,
                **run_case(data[form, dtype], dtype, backend, codec, workdir, args.random_reads),
            }
            results.append(r)
            print(
                f"{form:<8} {dtype:<8} {backend:<7} {codec:<5} "
                f"{r['disk_bytes_per_sample']:>10.0f} {r['ratio']:>6.2f} "
                f"{r['write_samples_s']:>9.0f} {r['write_raw_MB_s']:>7.1f} "
                f"{r['scan_samples_s']:>9.0f} "
                f"{r['random_samples_s']:>8.0f}",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    import h5py
    import zarr

    print(
        json.dumps(
            {
                "bench": "store",
                "machine": f"{platform.machine()} {os.cpu_count()} cpu",
                "python": platform.python_version(),
                "zarr": zarr.__version__,
                "h5py": h5py.__version__,
                "quick": args.quick,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
