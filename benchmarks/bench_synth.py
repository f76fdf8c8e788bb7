"""Synthetic data generation throughput: files/s and MB/s written by ``write_synthetic``.

    python benchmarks/bench_synth.py [--format ntu25] [--samples 10000] [--workers N ...]
                                     [--dir /dev/shm] [--quick]

Writes into a temporary folder (deleted afterwards), once per worker count given, and prints a
table and a final JSON line. The load average is printed too: other processes on the machine
slow every figure down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2i_prep.parallel import cap_threads, default_workers  # noqa: E402

cap_threads()

from s2i_prep.synthetic import write_synthetic  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--format", default="ntu25", choices=["ntu25", "pku25", "ucla20"])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[default_workers()])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--dir",
        default=None,
        help="where to write (default: the system temp dir);"
        " /dev/shm takes the disk out of the figures",
    )
    ap.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.workers = 12, [0]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        write_synthetic(args.format, tmp, 1)  # compile or load the kernels once
    rows = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            s = write_synthetic(args.format, tmp, args.samples, seed=args.seed, workers=workers)
        rows.append(
            {
                "workers": workers,
                "samples": len(s.samples),
                "files": s.files,
                "mb": round(s.bytes / 1e6, 1),
                "seconds": round(s.seconds, 2),
                "files_per_s": round(s.files / s.seconds, 1),
                "mb_per_s": round(s.bytes / 1e6 / s.seconds, 1),
            }
        )
        r = rows[-1]
        print(
            f"{args.format} workers={workers}: {r['files']} files, {r['mb']} MB "
            f"in {r['seconds']} s "
            f"-> {r['files_per_s']} files/s, {r['mb_per_s']} MB/s"
        )
    print(
        json.dumps(
            {
                "bench": "synth",
                "format": args.format,
                "dir": args.dir or tempfile.gettempdir(),
                "results": rows,
                "machine": {
                    "cpus": os.cpu_count(),
                    "usable": default_workers(),
                    "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine(),
                    "loadavg_1min": round(os.getloadavg()[0], 2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
