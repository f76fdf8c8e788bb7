"""Archive inputs (zip, tar, compressed tar, two archives at once) against the extracted folder.

    python benchmarks/bench_archives.py                # N = 600 NTU files
    python benchmarks/bench_archives.py --quick        # smoke run

One generated NTU corpus is packed every way s2i reads it and converted with
``s2i-prep convert --workers 2`` in a fresh subprocess each time (what a user runs), the folder
first as the reference of the same run. Reported per input: wall seconds, CPU seconds of the
process tree, and wall / CPU against the folder. For the compressed tars, the one-pass
decompression into the spill file (planning) is also timed alone, in this process, to show how
much of the run it is. The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_convert import make_corpus
from bench_distributed import _cpu_children

MEMBER_DIR = "nturgbd_skeletons/"


def pack(raw: Path, tmp: Path) -> dict[str, list[Path]]:
    """Every input kind of the corpus: name -> the inputs to list on the command line."""
    files = sorted(raw.rglob("*.skeleton"))
    out: dict[str, list[Path]] = {"folder": [raw]}
    for name, method in (("zip stored", zipfile.ZIP_STORED), ("zip deflated", zipfile.ZIP_DEFLATED)):
        dest = tmp / f"{name.replace(' ', '_')}.zip"
        with zipfile.ZipFile(dest, "w", method) as zf:
            for path in files:
                zf.write(path, MEMBER_DIR + path.name)
        out[name] = [dest]
    halves = []
    for i, part in enumerate((files[: len(files) // 2], files[len(files) // 2:])):
        dest = tmp / f"half{i}.zip"
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in part:
                zf.write(path, MEMBER_DIR + path.name)
        halves.append(dest)
    out["2 zips deflated"] = halves
    for name, suffix, mode in (("tar", ".tar", "w"), ("tar.gz", ".tar.gz", "w:gz"),
                               ("tar.bz2", ".tar.bz2", "w:bz2"), ("tar.xz", ".tar.xz", "w:xz")):
        dest = tmp / f"ntu{suffix}"
        with tarfile.open(dest, mode) as tf:
            for path in files:
                tf.add(path, MEMBER_DIR + path.name)
        out[name] = [dest]
    return out


def run(inputs: list[Path], out: Path, *args: str) -> tuple[float, float]:
    """(wall s, CPU s of the process tree) of one ``s2i-prep convert INPUT... OUTPUT``."""
    import subprocess

    cmd = [sys.executable, "-m", "s2i_prep.cli", "convert", "--format", "ntu25",
           *map(str, inputs), str(out), "-q", "--overwrite", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu0, t0 = _cpu_children(), time.perf_counter()
    status = subprocess.run(cmd, env=env, check=False).returncode
    if status not in (0, 3):  # 3: converted, with skips reported
        raise SystemExit(f"{' '.join(cmd)}: exit status {status}")
    return time.perf_counter() - t0, _cpu_children() - cpu0


def spill_seconds(path: Path, tmp: Path) -> float:
    """Seconds to index one compressed tar (decompress once into the spill file)."""
    from s2i_prep.readers import archive

    t0 = time.perf_counter()
    owner = type("Owner", (), {})()
    archive.list_members(path, (".skeleton",), tmp, owner=owner)
    seconds = time.perf_counter() - t0
    del owner  # frees the spill
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--quick", action="store_true")
    ns = ap.parse_args()
    n = 40 if ns.quick else ns.files
    tmp = Path(tempfile.mkdtemp(prefix="s2i-bench-arch-"))
    try:
        raw = tmp / "raw"
        nbytes = make_corpus(raw, n)
        inputs = pack(raw, tmp)
        run([raw], tmp / "warm.zarr", "--workers", "2")  # kernel cache, page cache
        print(f"{n} files, {nbytes / 1e6:.1f} MB; load average {os.getloadavg()[0]:.1f}")
        print(f"{'input':<16} {'MB on disk':>10} {'wall s':>8} {'CPU s':>8} {'wall/folder':>12} "
              f"{'CPU/folder':>11} {'spill s':>8}")
        figures: dict[str, dict[str, float]] = {}
        for name, paths in inputs.items():
            wall, cpu = run(paths, tmp / "out.zarr", "--workers", "2")
            size = sum(p.stat().st_size if p.is_file() else nbytes for p in paths)
            spill = spill_seconds(paths[0], tmp) if name.startswith("tar.") else 0.0
            figures[name] = {"wall_s": wall, "cpu_s": cpu, "mb": size / 1e6, "spill_s": spill}
            ref = figures["folder"]
            print(f"{name:<16} {size / 1e6:10.1f} {wall:8.2f} {cpu:8.2f} "
                  f"{wall / ref['wall_s']:11.2f}x {cpu / ref['cpu_s']:10.2f}x "
                  f"{spill:8.2f}" if spill else
                  f"{name:<16} {size / 1e6:10.1f} {wall:8.2f} {cpu:8.2f} "
                  f"{wall / ref['wall_s']:11.2f}x {cpu / ref['cpu_s']:10.2f}x")
        print(json.dumps({"files": n, "bytes": nbytes, "load": os.getloadavg()[0],
                          "runs": figures}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
