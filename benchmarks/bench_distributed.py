"""Conversion on Dask against local worker processes, and archive input against a folder.

    python benchmarks/bench_distributed.py             # N = 600 NTU files
    python benchmarks/bench_distributed.py --quick     # smoke run
    python benchmarks/bench_distributed.py --tree /tmp/base   # the same, converting with another
                                                              # source tree (a before/after)

Each conversion runs as ``s2i-prep convert`` in a fresh subprocess (what a user runs), on one
generated NTU corpus: ``--workers 1``, ``--workers 2``, ``--dask local:1``, ``--dask local:2``,
and the same corpus as a ``.zip`` with ``--workers 2``. Reported per run: wall seconds, CPU
seconds of the whole process tree (``RUSAGE_CHILDREN`` around the run: the driver, its workers,
and for Dask the nannies and worker processes, which are waited for), the driver process's own
CPU per file (``RUSAGE_SELF`` at its exit: its threads, and for ``local:N`` the scheduler, which
runs in the driver; not its workers), files/s, and the ratios.
The machine is shared, so wall figures move with the load; CPU figures move much less. The last
stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_convert import make_corpus


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: ``s2i-prep`` writing its own process's CPU seconds (all its threads, no child) at exit.
_DRIVER = """import atexit, os, resource, sys
def _report():
    u = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["S2I_BENCH_CPU"], "w") as fh:
        fh.write(repr(u.ru_utime + u.ru_stime))
atexit.register(_report)
sys.argv[0] = "s2i-prep"
from s2i_prep.cli import main
sys.exit(main())
"""


def run(src: Path, out: Path, *args: str, tree: Path = ROOT) -> tuple[float, float, float]:
    """(wall s, CPU s of the process tree, CPU s of the driver process) of one
    ``s2i-prep convert``."""
    cpu_file = out.with_name("driver-cpu.txt")
    cmd = [sys.executable, "-c", _DRIVER, "convert", "--format", "ntu25", str(src),
           str(out), "-q", "--overwrite", *args]
    env = {**os.environ, "PYTHONPATH": str(tree), "S2I_BENCH_CPU": str(cpu_file)}
    cpu0, t0 = _cpu_children(), time.perf_counter()
    status = subprocess.run(cmd, env=env, check=False).returncode
    if status not in (0, 3):  # 3: converted, with skips reported
        raise SystemExit(f"{' '.join(cmd)}: exit status {status}")
    return time.perf_counter() - t0, _cpu_children() - cpu0, float(cpu_file.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="",
                    help="comma-separated modes to run (e.g. 'workers 2,dask local:2'); "
                         "default: all, with the ratios")
    ap.add_argument("--tree", type=Path, default=ROOT,
                    help="source tree whose s2i_prep converts (default: this one)")
    ns = ap.parse_args()
    n = 40 if ns.quick else ns.files
    tmp = Path(tempfile.mkdtemp(prefix="s2i-bench-dist-"))
    try:
        raw = tmp / "raw"
        nbytes = make_corpus(raw, n)
        zipped = tmp / "ntu.zip"
        if not ns.only or "zip" in ns.only:
            with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(raw.rglob("*.skeleton")):
                    zf.write(path, "nturgbd_skeletons/" + path.name)
        run(raw, tmp / "warm.zarr", "--workers", "1", tree=ns.tree)  # kernel cache, page cache
        modes = {
            "workers 1": (raw, "--workers", "1"),
            "workers 2": (raw, "--workers", "2"),
            "dask local:1": (raw, "--dask", "local:1"),
            "dask local:2": (raw, "--dask", "local:2"),
            "zip, workers 2": (zipped, "--workers", "2"),
        }
        if ns.only:
            modes = {name: modes[name] for name in ns.only.split(",")}
        figures: dict[str, dict[str, float]] = {}
        print(f"{n} files, {nbytes / 1e6:.1f} MB; tree {ns.tree}; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'mode':<16} {'wall s':>8} {'CPU s':>8} {'files/s':>9} {'CPU ms/file':>12} "
              f"{'driver ms/file':>15}")
        for name, (src, *args) in modes.items():
            wall, cpu, driver = run(src, tmp / "out.zarr", *args, tree=ns.tree)
            figures[name] = {"wall_s": wall, "cpu_s": cpu, "files_per_s": n / wall,
                             "cpu_ms_per_file": 1e3 * cpu / n, "driver_cpu_s": driver,
                             "driver_ms_per_file": 1e3 * driver / n}
            print(f"{name:<16} {wall:8.2f} {cpu:8.2f} {n / wall:9.1f} {1e3 * cpu / n:12.2f} "
                  f"{1e3 * driver / n:15.3f}")
        ratios = {} if ns.only else {
            "local 2/1 (wall)": figures["workers 1"]["wall_s"] / figures["workers 2"]["wall_s"],
            "dask 2/1 (wall)": figures["dask local:1"]["wall_s"] / figures["dask local:2"]["wall_s"],
            "dask:2 / workers 2 (wall)":
                figures["dask local:2"]["wall_s"] / figures["workers 2"]["wall_s"],
            "zip / folder (wall, 2 workers)":
                figures["zip, workers 2"]["wall_s"] / figures["workers 2"]["wall_s"],
        }
        for key, value in ratios.items():
            print(f"{key}: {value:.2f}x")
        print(json.dumps({"files": n, "bytes": nbytes, "tree": str(ns.tree),
                          "load": os.getloadavg()[0],
                          "runs": figures, "ratios": ratios}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
