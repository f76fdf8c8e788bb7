"""Training loader benchmark: shuffled batches of 256 per read path and worker count.

Datasets are made with ``s2i_prep`` from generated NTU-format files (``write_synthetic``):
(a) compact (3 streams, 3, 64, 50) float16, Zarr (uncompressed shards of 1024) and HDF5;
(b) 224 x 224 uint8 images, Zarr (zstd, shards of 128; and uncompressed) and HDF5. They are
built once into ``--workdir`` and reused. Every figure is samples per second of shuffled batches
(``S2ISampler``) through ``make_loader`` (``S2IDataset.__getitems__`` + ``collate``), after
three warm-up batches, with 0, 1 and 2 worker processes (fork) and with 2 reader threads; each
also per CPU second of the loading processes, since the shared VM's wall clock depends on
whatever else runs. The reference, in the same run: plain zarr-python, once as
``get_orthogonal_selection`` of each batch and once one ``arr[i]`` per sample. Reads hit the
page cache (the files were just written or read).

    python benchmarks/bench_loader.py [--quick] [--workdir DIR] [--samples N] [--image-samples N]

Prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from s2i_prep.encoding import EncodeConfig
from s2i_prep.pipeline import ConvertConfig, convert
from s2i_prep.synthetic import write_synthetic
from s2i_train import transforms as T
from s2i_train.data import S2IDataset, S2ISampler, make_loader

BATCH = 256  # --batch; --quick uses 8


def prepare(workdir: Path, samples: int, image_samples: int, procs: int) -> dict[str, Path]:
    """Generate and convert the datasets once (reused when the folder already has them)."""
    workdir.mkdir(parents=True, exist_ok=True)
    raw = workdir / f"ntu_raw_{samples}"
    out = {
        "compact.zarr": workdir / f"compact_{samples}.zarr",
        "compact.h5": workdir / f"compact_{samples}.h5",
        "image.zarr": workdir / f"image_{image_samples}.zarr",
        "image.h5": workdir / f"image_{image_samples}.h5",
        "image_raw.zarr": workdir / f"image_raw_{image_samples}.zarr",
    }
    if all(p.exists() for p in out.values()):
        return out
    if not (raw / ".complete").exists():
        t = time.perf_counter()
        write_synthetic("ntu25", raw, samples, workers=procs, seed=0, overwrite=True)
        (raw / ".complete").write_text("")
        print(f"synth {samples} files: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    image = EncodeConfig(image_size=(224, 224), dtype="uint8")
    for key, path in out.items():
        if path.exists():
            continue
        t = time.perf_counter()
        cfg = ConvertConfig(
            input=raw,
            output=path,
            format="ntu25",
            workers=procs,
            overwrite=True,
            encode=image if key.startswith("image") else EncodeConfig(),
            limit=image_samples if key.startswith("image") else None,
            codec="none" if key == "image_raw.zarr" else "auto",
        )
        convert(cfg)
        print(f"convert {key}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return out


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds so far of processes ``pids``, every thread (``/proc/<pid>/task/*/schedstat``,
    nanoseconds); this process through ``time.process_time`` (it counts finished threads too)."""
    total = 0.0
    for pid in pids:
        if pid == os.getpid():
            total += time.process_time()
            continue
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0]) / 1e9
    return total


def loader_rate(
    ds: S2IDataset, workers: int, batches: int, threads: int = 0, seed: int = 0
) -> dict[str, float]:
    """Shuffled batches after three warm-up batches (worker start-up, queues filled): samples per
    wall second, per CPU second of the loading processes (the main one included) and per CPU
    second of the workers alone. CPU-second rates are what one dedicated core would give: the VM
    is shared, so wall-clock rates drop whenever other jobs run."""
    sampler = S2ISampler(ds, seed=seed)
    loader = make_loader(
        ds,
        BATCH,
        sampler,
        workers=workers,
        threads=threads,
        context="fork" if workers else None,
    )

    def stream():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    it = stream()
    for _ in range(3):  # start-up, and the prefetch queues filled as in a steady run
        next(it)
    worker_pids = [w.pid for w in getattr(getattr(loader, "_iterator", None), "_workers", [])]
    pids = [os.getpid(), *worker_pids]
    n = 0
    cpu0, wcpu0 = cpu_seconds(pids), cpu_seconds(worker_pids)
    t = time.perf_counter()
    for _ in range(batches):
        _, y = next(it)
        n += len(y)
    wall = time.perf_counter() - t
    cpu, wcpu = cpu_seconds(pids) - cpu0, cpu_seconds(worker_pids) - wcpu0
    it.close()  # ends the pass, so the persistent workers shut down with the loader
    return {
        "wall": n / wall,
        "cpu": n / cpu if cpu > 0 else float("nan"),
        "worker_cpu": n / wcpu if wcpu > 0 else float("nan"),
    }


def zarr_rates(path: Path, batches: int, per_sample_batches: int) -> dict[str, float]:
    """Plain zarr-python on the same shuffled batches: orthogonal selection, then per sample."""
    import zarr

    arr = zarr.open_group(path, mode="r")["s2i"]
    order = np.random.default_rng(0).permutation(arr.shape[0])
    order = np.resize(order, (batches + 1) * BATCH).reshape(-1, BATCH)
    np.asarray(arr.get_orthogonal_selection((np.sort(order[0]),)))
    t = time.perf_counter()
    for idx in order[1:]:
        x = arr.get_orthogonal_selection((np.sort(idx),))
        torch.from_numpy(np.asarray(x)).float()
    ortho = batches * BATCH / (time.perf_counter() - t)
    t = time.perf_counter()
    n = 0
    for idx in order[1 : 1 + per_sample_batches]:
        for i in idx[: BATCH // 4]:
            np.asarray(arr[int(i)])
            n += 1
    single = n / (time.perf_counter() - t)
    return {"zarr_batch": ortho, "zarr_per_sample": single}


def shm_cost(mb: int = 16, repeats: int = 10) -> float:
    """Milliseconds per MB to allocate a shared-memory storage and write it once: the cost a
    DataLoader worker pays for every batch it hands to the main process."""
    nbytes = mb * 2**20
    t = time.perf_counter()
    for _ in range(repeats):
        storage = torch.UntypedStorage._new_shared(nbytes)
        torch.empty(0, dtype=torch.uint8).set_(storage).fill_(1)
        del storage
    return (time.perf_counter() - t) / repeats / mb * 1e3


def transform_rate(device: str, size: int, batches: int, form_ds: S2IDataset) -> float:
    """Device transform (pixel mapping, resize, normalise, train augmentations) samples/s."""
    to_input = T.ToModelInput.for_dataset(form_ds, size=size, train=True)
    x, _ = next(iter(make_loader(form_ds, BATCH, S2ISampler(form_ds))))
    x = T.to_device(x, device)
    to_input(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(batches):
        to_input(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batches * BATCH / (time.perf_counter() - t)


def main() -> None:
    global BATCH
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="tiny datasets, few batches (smoke test)")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where the datasets are built/reused"
    )
    ap.add_argument("--samples", type=int, default=20_000, help="compact dataset size")
    ap.add_argument("--image-samples", type=int, default=2048, help="image dataset size")
    ap.add_argument("--batches", type=int, default=30, help="timed batches per figure")
    ap.add_argument("--batch", type=int, default=BATCH, help="batch size")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--procs", type=int, default=2, help="processes for generating the datasets")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.image_samples, args.batches, args.workers = 96, 16, 2, [0]
        args.batch = 8
    BATCH = args.batch
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="s2i_bench_loader_"))
    torch.set_num_threads(1)  # one core per loader process, as in a real multi-worker run
    paths = prepare(workdir, args.samples, args.image_samples, 0 if args.quick else args.procs)

    figures: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared 2-core dev VM",
        "batch": args.batch,
        "samples": args.samples,
        "image_samples": args.image_samples,
        "batches": args.batches,
        "rates": {},
    }
    rates = figures["rates"]
    columns = [f"{w} workers" for w in args.workers] + ["2 threads"]
    print("samples/s: wall clock (per CPU second of the loading processes)")
    print(f"{'dataset':<14}{'read path':<15}" + "".join(f"{c:>22}" for c in columns))
    cases = [
        ("compact.zarr", "memory", True),
        ("compact.zarr", "memory", False),
        ("compact.zarr", "shard", True),
        ("compact.zarr", "shard", False),
        ("compact.h5", "hdf5", True),
        ("compact.zarr", "zarr", True),
        ("image.zarr", "shard", False),
        ("image.zarr", "shard", True),
        ("image_raw.zarr", "shard", False),
        ("image.h5", "hdf5", False),
        ("image.zarr", "zarr", False),
    ]
    for key, read, as_float in cases:
        t = time.perf_counter()
        ds = S2IDataset(paths[key], read=read, as_float=as_float)
        open_s = time.perf_counter() - t
        name = f"{key}:{read}:{'float32' if as_float else 'stored'}"
        # zarr-python is 10-100x slower: 2 batches, and only in this process
        runs = [(w, 0) for w in args.workers] + [(0, 2)] if read != "zarr" else [(0, 0)]
        row = {}
        for w, th in runs:
            label = f"{w} workers" if not th else f"{th} threads"
            row[label] = loader_rate(ds, w, args.batches if read != "zarr" else 2, threads=th)
        rates[name] = {"runs": row, "open_s": open_s}
        label = read + ("" if as_float else " stored")
        cells = [
            f"{row[c]['wall']:>10,.0f} ({row[c]['cpu']:>7,.0f})" if c in row else " " * 22
            for c in columns
        ]
        print(f"{key:<14}{label:<15}" + "".join(f"{c:>22}" for c in cells))
        del ds

    for key in ("compact.zarr", "image.zarr"):
        ref = zarr_rates(paths[key], 2 if key.startswith("image") else 6, 2)
        rates[f"{key}:plain-zarr"] = ref
        print(
            f"{key:<14}{'zarr-python':<14}batch {ref['zarr_batch']:,.0f}/s, per sample "
            f"{ref['zarr_per_sample']:,.0f}/s (main process)"
        )

    figures["shm_ms_per_mb"] = shm_cost()
    print(
        f"a fresh shared-memory batch (what every worker pays per batch, as default_collate "
        f"does): {figures['shm_ms_per_mb']:.2f} ms per MB to allocate and fill"
    )

    def best(name: str, key: str) -> float:
        """Best rate of one read path over its runs: ``wall`` samples/s per worker process (all
        of them when reading in this process) or ``cpu``: per CPU second of the loading
        processes, what a dedicated core per reader would give."""
        runs = rates[name]["runs"]
        values = []
        for label, r in runs.items():
            workers = int(label.split()[0]) if label.endswith("workers") else 0
            values.append(r[key] / max(workers, 1) if key == "wall" else r[key])
        return max(values)

    def wall(name: str, run: str = "0 workers") -> float:
        return rates[name]["runs"][run]["wall"]

    ratios = {
        "compact_shard_vs_zarr_batch": wall("compact.zarr:shard:float32")
        / rates["compact.zarr:plain-zarr"]["zarr_batch"],
        "image_shard_vs_zarr_batch": wall("image.zarr:shard:stored")
        / rates["image.zarr:plain-zarr"]["zarr_batch"],
        "compact_memory_vs_shard": wall("compact.zarr:memory:float32")
        / wall("compact.zarr:shard:float32"),
    }
    figures["ratios"] = ratios
    figures["targets"] = {
        target: {"wall": best(name, "wall"), "cpu": best(name, "cpu")}
        for target, name in (
            ("compact_per_worker_20000", "compact.zarr:shard:float32"),
            ("image_per_worker_4000", "image.zarr:shard:stored"),
            ("image_raw_per_worker_4000", "image_raw.zarr:shard:stored"),
            ("memory_100000", "compact.zarr:memory:float32"),
            ("memory_stored_100000", "compact.zarr:memory:stored"),
        )
    }
    figures["load_average"] = os.getloadavg()
    print("ratios: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))

    compact = S2IDataset(paths["compact.zarr"], read="memory", as_float=False)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    figures["transforms"] = {}
    for dev in devices:
        for size in (64, 224):
            n = 1 if (args.quick or dev == "cpu") else 20
            r = transform_rate(dev, size, n, compact)
            figures["transforms"][f"{dev}:{size}"] = r
            print(
                f"transforms on {dev}, batch {BATCH} -> {size}x{size} (train augmentations): "
                f"{r:,.0f} samples/s"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
