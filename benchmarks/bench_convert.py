"""End-to-end conversion throughput and peak memory: ``convert()`` vs a plain-Python reference.

    python benchmarks/bench_convert.py                # full run (a few hundred NTU files)
    python benchmarks/bench_convert.py --quick        # smoke run (a test runs this)
    python benchmarks/bench_convert.py --scaling 1200 --pairs 4 [--compare /work/main]
                                                      # 1 vs 2 workers, alternating, same run

Measures, on one generated NTU corpus:
- s2i ``convert()`` (compact float16, Zarr, default shard size) with 1 and 2 workers on N and 4N
  samples: raw MB/s and samples/s per run, and the marginal MB/s (extra bytes of 4N over N
  divided by the extra time), which cancels the fixed start-up (imports, kernel cache, pool);
- a plain reference in the same run: readline/split/float parsing, straightforward numpy
  body selection and encoding, the same shapes, ``np.save`` of the stack;
- CPU seconds per stage (read, select, encode, the rest) of an in-process run over 4N;
- the HDF5 writer's price for crash safety: the writer as shipped (each shard also staged as
  ``.npy`` + ``.cols.npz``) against the same writer with staging switched off, same run;
- peak memory of the converting process tree at N and 4N samples (1 worker, ``--mem-shard-size``
  so both runs span several shards), each conversion in a fresh subprocess: its own peak RSS
  (VmHWM) plus the largest worker's (``RUSAGE_CHILDREN``) times the number of workers (an upper
  bound of the tree's peak: pages a worker shares with the parent count twice).
The last stdout line is one JSON object with every figure.

``--scaling N`` measures only what using both cores is about, in a way a shared machine does not
ruin: one warm server process per source tree (this one, and ``--compare TREE`` for e.g. the
main branch) converts the same N-file corpus with 1 and 2 workers, alternating w=1, w=2, w=1, ...
(and tree after tree within each pair), the first pair dropped as warm-up; medians of MB/s end
to end and after start-up (``setup_seconds``: planning, compile check, pool start), the ratio
2/1, the parent's own CPU per sample (``process_time`` of the converting process: its main and
writer threads, not the workers) and MB per CPU-second of the whole tree. Because a shared
machine rarely gives two free cores, it also prints what two free cores would give from the
CPU times alone (``cpu_bound_*``: ratio 2W / (W + P) and rate 2 / (W + P) for workers' and
parent's CPU per sample W and P), which other load barely moves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAMES = 64
SPEC = "ntu25"


# --------------------------------------------------------------------------------------------
# Corpus.


def make_corpus(root: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` synthetic NTU files under ``root`` with ``s2i-prep synth``; returns bytes."""
    cmd = [
        sys.executable,
        "-c",
        "import sys; from s2i_prep.cli import main; sys.exit(main(sys.argv[1:]))",
        "synth",
        "--format",
        SPEC,
        "--samples",
        str(n),
        "--seed",
        str(seed),
        str(root),
    ]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return sum(p.stat().st_size for p in root.rglob("*.skeleton"))


# --------------------------------------------------------------------------------------------
# Plain-Python reference pipeline (what a first script would do).


def ref_read(path: Path) -> dict[str, np.ndarray]:
    """Body id -> (T, 25, 3) float32 with NaN where the body is absent.

    Like the official MATLAB/st-gcn readers it converts every field of a joint line with
    ``float()`` (the 12 values the format defines), then keeps x, y, z.
    """
    with open(path) as fh:
        frames = int(fh.readline())
        bodies: dict[str, np.ndarray] = {}
        for t in range(frames):
            for _ in range(int(fh.readline())):
                info = fh.readline().split()
                body_id = info[0]
                _body_fields = [float(v) for v in info[1:]]
                joints = [
                    [float(v) for v in fh.readline().split()] for _ in range(int(fh.readline()))
                ]
                if body_id not in bodies:
                    bodies[body_id] = np.full((frames, 25, 3), np.nan, np.float32)
                bodies[body_id][t] = [j[:3] for j in joints]
    return bodies


def ref_encode(
    bodies: dict[str, np.ndarray],
    order: np.ndarray,
    parents: np.ndarray,
    centre: int,
    persons: int = 2,
) -> np.ndarray:
    """(3, 3, FRAMES, persons * 25) float16: joint, motion, bone streams of the most active bodies."""

    def motion(b: np.ndarray) -> float:
        return (
            float(np.nansum(np.nanvar(b.reshape(len(b), -1), axis=0)))
            if np.isfinite(b).any()
            else -1.0
        )

    chosen = sorted(bodies.values(), key=motion, reverse=True)[:persons]
    x = np.stack(chosen)  # (M, T, V, 3)
    keep = np.isfinite(x[..., 0]).any(axis=(0, 2))
    x = x[:, keep]
    first = np.isfinite(x[0, :, centre, 0]).argmax()
    x = np.nan_to_num(x - x[0, first, centre])
    src = np.linspace(0, x.shape[1] - 1, FRAMES)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, x.shape[1] - 1)
    w = (src - lo)[None, :, None, None]
    x = (1 - w) * x[:, lo] + w * x[:, hi]
    streams = [
        x,
        np.concatenate([x[:, 1:] - x[:, :-1], np.zeros_like(x[:, :1])], axis=1),
        x - x[:, :, parents],
    ]
    out = np.zeros((3, 3, FRAMES, persons * 25), np.float32)
    for s, stream in enumerate(streams):
        for m in range(stream.shape[0]):
            out[s, :, :, m * 25 : (m + 1) * 25] = stream[m][:, order].transpose(2, 0, 1)
    return out.astype(np.float16)


def run_reference(raw: Path, out: Path) -> dict[str, float]:
    from s2i_prep.specs import load_spec

    spec = load_spec(SPEC)
    order, parents = spec.column_order, spec.parent_array
    t0, c0 = time.perf_counter(), time.process_time()
    samples = []
    for path in sorted(raw.rglob("*.skeleton")):
        bodies = ref_read(path)
        if bodies:
            samples.append(ref_encode(bodies, order, parents, spec.centre))
    np.save(out, np.stack(samples))
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "samples": len(samples),
    }


# --------------------------------------------------------------------------------------------
# s2i, each conversion in a fresh process (cold start included, as a user sees it).


def _peak_rss_kb() -> int:
    """This process's own peak RSS (VmHWM, reset at exec). ``ru_maxrss`` is not used for the
    converting process: Linux carries the pre-exec high-water mark of the forked benchmark
    process over into it."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - not Linux


def _child(raw: str, out: str, workers: int, shard_size: int) -> None:
    """Runs in the subprocess: convert, then print timings and memory as JSON."""
    from s2i_prep.pipeline import ConvertConfig, convert

    def cpu(who: int) -> float:
        use = resource.getrusage(who)
        return use.ru_utime + use.ru_stime

    cpu0 = cpu(resource.RUSAGE_SELF)
    res = convert(
        ConvertConfig(
            input=Path(raw),
            output=Path(out),
            format=SPEC,
            workers=workers,
            shard_size=shard_size or None,
        )
    )
    own = _peak_rss_kb()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": res.seconds,
                "samples": res.samples,
                "skipped": res.skipped,
                "bytes": res.bytes_in,
                "parent_rss_mb": own / 1024,
                "worker_rss_mb": kids / 1024,
                "tree_rss_mb": (own + workers * kids) / 1024,
                "cpu_seconds": cpu(resource.RUSAGE_SELF) - cpu0 + cpu(resource.RUSAGE_CHILDREN),
            }
        )
    )


def run_s2i(raw: Path, out: Path, workers: int, shard_size: int = 0) -> dict[str, float]:
    """One conversion in a fresh process; ``shard_size`` 0 = the store's default."""
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(raw),
            str(out),
            str(workers),
            str(shard_size),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - t0
    return result


def stage_cpu(raw: Path, out: Path) -> dict[str, float]:
    """CPU seconds per stage of an in-process conversion (``thread_time`` of the stage calls):
    unlike wall time, robust when other work shares the machine. ``other`` is everything else in
    the process: statistics, the shard writes (zarr's threads included) and finalize."""
    from dataclasses import replace

    from s2i_prep.pipeline import ConvertConfig, Stages, convert

    spent: dict[str, float] = {"read": 0.0, "select": 0.0, "encode": 0.0}

    def timed(name, fn):
        def call(*args, **kwargs):
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - t

        return call

    class TimedReader:
        def __init__(self, reader) -> None:
            self.reader = reader
            self.discover = reader.discover
            self.read = timed("read", reader.read)

    base = Stages.default()
    stages = replace(
        base,
        select=timed("select", base.select),
        encode=timed("encode", base.encode),
        get_reader=lambda name, **opts: TimedReader(base.get_reader(name, **opts)),
    )
    cfg = ConvertConfig(input=raw, output=out, format=SPEC, workers=0)
    convert(replace(cfg, limit=4), stages=stages)  # imports and kernel cache out of the way
    shutil.rmtree(out)
    spent.update(read=0.0, select=0.0, encode=0.0)
    c0 = time.process_time()
    convert(cfg, stages=stages)
    spent["total"] = time.process_time() - c0
    spent["other"] = spent["total"] - spent["read"] - spent["select"] - spent["encode"]
    return spent


def bench_hdf5_staging(tmp: Path, samples: int, shard: int = 1024) -> dict[str, float]:
    """Seconds for the HDF5 writer to store ``samples`` compact float16 samples (shards + commit
    + finalize), as shipped and with the crash-safety staging of each shard switched off (the
    earlier behaviour: a stop could leave an unopenable file), alternating, best of 3 each."""
    from unittest import mock

    from s2i_prep.store import open_writer
    from s2i_prep.store.hdf5_store import Hdf5Backend

    shape = (3, 3, FRAMES, 50)
    data = np.random.default_rng(0).normal(size=(shard, *shape)).astype(np.float16)
    attrs = {k: {} for k in ("streams", "columns", "encoding", "spec", "spec_sha256", "stats",
                             "source", "s2i_version", "report", "class_count")}

    def write(name: str) -> float:
        t = time.perf_counter()
        w = open_writer(tmp / name, sample_shape=shape, dtype="float16", shard_size=shard)
        for start in range(0, samples, shard):
            k = min(shard, samples - start)
            cols = {"label": np.zeros(k, np.int64), "num_frames": np.full(k, 64),
                    "num_persons": np.ones(k, np.int64),
                    "sample_id": np.array([f"s{start + j:07d}" for j in range(k)])}
            w.write_shard(data[:k], cols, {})
        w.finalize(attrs, {})
        return time.perf_counter() - t

    staged, unstaged = [], []
    for rep in range(3):
        staged.append(write(f"staged{rep}.h5"))
        with mock.patch.object(Hdf5Backend, "_stage", lambda *a: None):
            unstaged.append(write(f"unstaged{rep}.h5"))
    return {"staged_s": min(staged), "unstaged_s": min(unstaged),
            "mb": samples * int(np.prod(shape)) * 2 / 1e6}


def _serve(root: str) -> None:
    """A warm converting process for the source tree ``root``: one JSON request per stdin line
    (``{"raw", "out", "workers"}``), one JSON answer per stdout line."""
    sys.path[:] = [root] + [p for p in sys.path if Path(p).resolve() != ROOT]
    for name in [m for m in sys.modules if m == "s2i_prep" or m.startswith("s2i_prep.")]:
        del sys.modules[name]
    from s2i_prep.pipeline import ConvertConfig, convert

    def children_cpu() -> float:
        use = resource.getrusage(resource.RUSAGE_CHILDREN)
        return use.ru_utime + use.ru_stime

    for line in sys.stdin:
        req = json.loads(line)
        out = Path(req["out"])
        if out.exists():
            shutil.rmtree(out)
        t0, c0, k0 = time.perf_counter(), time.process_time(), children_cpu()
        res = convert(ConvertConfig(input=Path(req["raw"]), output=out, format=SPEC,
                                    workers=req["workers"]))
        wall = time.perf_counter() - t0
        answer = {"seconds": wall, "setup_seconds": res.setup_seconds, "bytes": res.bytes_in,
                  "samples": res.samples, "parent_cpu_s": time.process_time() - c0,
                  "workers_cpu_s": children_cpu() - k0, "load": os.getloadavg()[0]}
        shutil.rmtree(out)
        print(json.dumps(answer), flush=True)


def scaling(n: int, pairs: int, trees: list[str]) -> dict[str, object]:
    """1 vs 2 workers on one N-file corpus, alternating, per source tree (see the docstring)."""
    import statistics

    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        raw = Path(tmp) / "raw"
        mb = make_corpus(raw, n) / 1e6
        servers = {
            tree: subprocess.Popen([sys.executable, __file__, "--serve", tree], cwd=ROOT,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for tree in trees
        }
        runs: dict[tuple[str, int], list[dict]] = {(t, w): [] for t in trees for w in (1, 2)}
        try:
            for pair in range(pairs + 1):
                for w in (1, 2):
                    for tree, proc in servers.items():
                        out = Path(tmp) / f"out_{len(runs)}_{w}.zarr"
                        proc.stdin.write(json.dumps({"raw": str(raw), "out": str(out),
                                                     "workers": w}) + "\n")
                        proc.stdin.flush()
                        answer = json.loads(proc.stdout.readline())
                        if pair:  # the first pair warms caches and kernels
                            runs[(tree, w)].append(answer)
        finally:
            for proc in servers.values():
                proc.stdin.close()
                proc.wait()
    med = statistics.median
    figures: dict[str, object] = {"files": n, "raw_mb": round(mb, 1), "pairs": pairs}
    for tree in trees:
        key = "this" if tree == str(ROOT) else Path(tree).name
        for w in (1, 2):
            rs = runs[(tree, w)]
            figures[f"{key}_w{w}_mb_s"] = round(med(mb / r["seconds"] for r in rs), 1)
            figures[f"{key}_w{w}_mb_s_after_startup"] = round(
                med(mb / (r["seconds"] - r["setup_seconds"]) for r in rs), 1)
            figures[f"{key}_w{w}_parent_cpu_ms_per_sample"] = round(
                med(1e3 * r["parent_cpu_s"] / r["samples"] for r in rs), 3)
            figures[f"{key}_w{w}_mb_per_cpu_s"] = round(
                med(mb / (r["parent_cpu_s"] + r["workers_cpu_s"]) for r in rs), 1)
            figures[f"{key}_w{w}_all_mb_s"] = [round(mb / r["seconds"]) for r in rs]
        ratios = [a["seconds"] / b["seconds"]
                  for a, b in zip(runs[(tree, 1)], runs[(tree, 2)], strict=True)]
        figures[f"{key}_ratio_2_over_1"] = round(med(ratios), 2)
        figures[f"{key}_ratio_2_over_1_all"] = [round(r, 2) for r in ratios]
        # What two free cores would give, from CPU time alone (robust to other load): with one
        # worker the worker (W ms CPU per sample) is the limit and the parent (P) runs beside
        # it; with two, W + P share two cores: ratio 2W / (W + P), rate 2 cores / (W + P).
        rs = runs[(tree, 2)]
        w_cpu = med(r["workers_cpu_s"] / r["samples"] for r in rs)
        p_cpu = med(r["parent_cpu_s"] / r["samples"] for r in rs)
        per_sample_mb = mb / rs[0]["samples"]
        figures[f"{key}_cpu_bound_ratio_2_over_1"] = round(2 * w_cpu / (w_cpu + p_cpu), 2)
        figures[f"{key}_cpu_bound_w2_mb_s"] = round(2 * per_sample_mb / (w_cpu + p_cpu), 1)
    figures["load_avg_1min"] = [round(r["load"], 2) for r in runs[(trees[0], 2)]]
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny corpus (smoke test)")
    ap.add_argument("-n", type=int, default=300, help="samples in the main corpus (N)")
    ap.add_argument("--h5-samples", type=int, default=8192,
                    help="samples for the HDF5 staging figure")
    ap.add_argument(
        "--mem-shard-size",
        type=int,
        default=64,
        help="shard size of the memory runs, so that N and 4N both span several shards "
        "(the parent holds one shard; the default shard is ~64 MiB)",
    )
    ap.add_argument(
        "--child",
        nargs=4,
        metavar=("RAW", "OUT", "WORKERS", "SHARD"),
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--scaling", type=int, metavar="N", default=0,
                    help="only the 1 vs 2 workers comparison, on N generated files")
    ap.add_argument("--pairs", type=int, default=4, help="w=1/w=2 pairs kept (--scaling)")
    ap.add_argument("--compare", action="append", default=[], metavar="TREE",
                    help="another source tree measured in the same run (--scaling)")
    ap.add_argument("--serve", metavar="TREE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    if args.scaling:
        figures = scaling(args.scaling, args.pairs, [str(ROOT), *args.compare])
        for key, value in figures.items():
            print(f"{key:>36}: {value}")
        print(json.dumps(figures))
        return
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]), int(args.child[3]))
        return
    n = 12 if args.quick else args.n
    shard = 4 if args.quick else args.mem_shard_size
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        tmp_path = Path(tmp)
        small, large = tmp_path / "raw_n", tmp_path / "raw_4n"
        bytes_n = make_corpus(small, n)
        bytes_4n = make_corpus(large, 4 * n, seed=1)
        ref = run_reference(small, tmp_path / "ref.npy")
        # Fill Numba's on-disk cache first: a fresh install compiles once (seconds), not per run.
        run_s2i(small, tmp_path / "warmup.zarr", 0)
        runs = {
            (w, size): run_s2i(raw, tmp_path / f"w{w}_{size}.zarr", w)
            for w in (1, 2)
            for size, raw in (("n", small), ("4n", large))
        }
        stages = stage_cpu(large, tmp_path / "stages.zarr")
        mem = {
            size: run_s2i(raw, tmp_path / f"mem_{size}.zarr", 1, shard)
            for size, raw in (("n", small), ("4n", large))
        }
        h5 = bench_hdf5_staging(tmp_path, 64 if args.quick else args.h5_samples)

    mb_n, mb_4n = bytes_n / 1e6, bytes_4n / 1e6
    figures: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}",
        "samples_n": n,
        "raw_mb_n": round(mb_n, 1),
        "raw_mb_4n": round(mb_4n, 1),
        "reference_mb_s": round(mb_n / ref["seconds"], 1),
        "reference_samples_s": round(ref["samples"] / ref["seconds"], 1),
    }
    for w in (1, 2):
        r_n, r_4n = runs[(w, "n")], runs[(w, "4n")]
        figures[f"s2i_w{w}_mb_s"] = round(mb_n / r_n["seconds"], 1)
        figures[f"s2i_w{w}_samples_s"] = round(r_n["samples"] / r_n["seconds"], 1)
        figures[f"s2i_w{w}_mb_s_4n"] = round(mb_4n / r_4n["seconds"], 1)
        # Marginal rate: the extra 3N samples over the extra time; start-up costs cancel out.
        # (None when noise swamps a tiny corpus, e.g. under --quick.)
        extra = r_4n["seconds"] - r_n["seconds"]
        marginal = (mb_4n - mb_n) / extra if extra > 0 else None
        figures[f"s2i_w{w}_marginal_mb_s"] = None if marginal is None else round(marginal, 1)
        figures[f"s2i_w{w}_startup_s"] = (
            None if marginal is None else round(r_n["seconds"] - mb_n / marginal, 2)
        )
    # CPU-time figures: MB per CPU-second of the whole process tree, robust to a busy machine.
    figures["reference_mb_per_cpu_s"] = round(mb_n / ref["cpu_seconds"], 1)
    for w in (1, 2):
        cpu = runs[(w, "4n")]["cpu_seconds"]
        figures[f"s2i_w{w}_mb_per_cpu_s_4n"] = round(mb_4n / cpu, 1)
    figures["speedup_vs_reference_cpu"] = round(
        figures["s2i_w1_mb_per_cpu_s_4n"] / figures["reference_mb_per_cpu_s"], 1
    )
    for name, cpu in stages.items():
        figures[f"cpu_{name}_mb_per_cpu_s"] = round(mb_4n / cpu, 1)
    figures["speedup_vs_reference_w1"] = round(
        figures["s2i_w1_mb_s"] / figures["reference_mb_s"], 1
    )
    m1, m2 = figures["s2i_w1_marginal_mb_s"], figures["s2i_w2_marginal_mb_s"]
    figures["speedup_vs_reference_w1_marginal"] = (
        None if m1 is None else round(m1 / figures["reference_mb_s"], 1)
    )
    figures["scaling_w2_over_w1"] = round(figures["s2i_w2_mb_s_4n"] / figures["s2i_w1_mb_s_4n"], 2)
    figures["scaling_w2_over_w1_marginal"] = None if not (m1 and m2) else round(m2 / m1, 2)
    figures["mem_shard_size"] = shard
    figures["tree_rss_mb_n"] = round(mem["n"]["tree_rss_mb"], 1)
    figures["tree_rss_mb_4n"] = round(mem["4n"]["tree_rss_mb"], 1)
    figures["memory_ratio_4n_over_n"] = round(mem["4n"]["tree_rss_mb"] / mem["n"]["tree_rss_mb"], 2)
    figures["tree_rss_mb_default_shard_n"] = round(runs[(1, "n")]["tree_rss_mb"], 1)
    figures["tree_rss_mb_default_shard_4n"] = round(runs[(1, "4n")]["tree_rss_mb"], 1)
    figures["hdf5_samples_mb"] = round(h5["mb"], 1)
    figures["hdf5_writer_unstaged_s"] = round(h5["unstaged_s"], 3)
    figures["hdf5_writer_staged_s"] = round(h5["staged_s"], 3)
    figures["hdf5_staged_over_unstaged"] = round(h5["staged_s"] / h5["unstaged_s"], 2)
    figures["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
