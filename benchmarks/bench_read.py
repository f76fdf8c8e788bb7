"""NTU parse-and-select throughput: s2i's Numba reader + CTR-GCN body selection against a
plain-Python reference reader (readline, split, float) measured in the same run, on one core.

    python benchmarks/bench_read.py [--files 300] [--seed 0] [--ref-files 60] [--quick]

Both sides are timed twice: converting every field (the raw API, ``s2i-prep dump``) and
converting positions only (what ``convert`` asks the reader for), each against the reference
doing the same amount of conversion.

Prints a table and a final JSON line. The corpus is made by ``s2i-prep synth`` (realistic NTU files:
noise bodies, furniture, id switches, empty frames, CRLF and LF) in a temporary folder.
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

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2i_prep.bodies import select_bodies  # noqa: E402
from s2i_prep.readers.ntu import parse_ntu_bytes  # noqa: E402
from s2i_prep.specs import load_spec  # noqa: E402
from s2i_prep.synthetic import write_synthetic  # noqa: E402
from tests.reference.ntu_ref import ctrgcn_select, read_plain  # noqa: E402


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--ref-files", type=int, default=60, help="files timed with the slow reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = ap.parse_args()
    if args.quick:
        args.files, args.ref_files, args.repeats = 12, 4, 1
    spec = load_spec("ntu25")
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic("ntu25", tmp, args.files, seed=args.seed, workers=0)
        paths = sorted(Path(tmp).rglob("*.skeleton"))
        nbytes = sum(p.stat().st_size for p in paths)
        ref_paths = paths[: args.ref_files]
        ref_bytes = sum(p.stat().st_size for p in ref_paths)
        for p in paths:                                     # warm page cache and compile
            p.read_bytes()
        parse_ntu_bytes(paths[0].read_bytes(), str(paths[0]), spec)

        def s2i_parse(fields: str) -> None:
            for p in paths:
                parse_ntu_bytes(p.read_bytes(), str(p), spec, fields)

        skipped = []

        def s2i_parse_select(fields: str) -> None:
            skipped.clear()
            for p in paths:
                raw = parse_ntu_bytes(p.read_bytes(), str(p), spec, fields)
                try:
                    select_bodies(raw, spec)
                except Exception:                           # an all-empty synthetic file
                    skipped.append(p.name)

        def reference(fields: str) -> None:
            for p in ref_paths:
                parsed = read_plain(str(p), fields)
                if parsed["bodies"]:
                    ctrgcn_select(parsed)

        t_parse = best_of(args.repeats, lambda: s2i_parse("all"))
        t_full = best_of(args.repeats, lambda: s2i_parse_select("all"))
        t_xyz = best_of(args.repeats, lambda: s2i_parse_select("xyz"))
        t_ref = best_of(max(1, args.repeats // 2), lambda: reference("all"))
        t_ref_xyz = best_of(max(1, args.repeats // 2), lambda: reference("xyz"))
    mb = nbytes / 1e6
    res = {
        "bench": "read_ntu",
        "files": len(paths),
        "mb": round(mb, 2),
        "kb_per_file": round(nbytes / len(paths) / 1e3, 1),
        "s2i_parse_mb_s": round(mb / t_parse, 1),
        "s2i_parse_select_mb_s": round(mb / t_full, 1),
        "s2i_parse_select_files_s": round(len(paths) / t_full, 1),
        "reference_mb_s": round(ref_bytes / 1e6 / t_ref, 2),
        "reference_files_s": round(len(ref_paths) / t_ref, 1),
        "s2i_xyz_parse_select_mb_s": round(mb / t_xyz, 1),
        "reference_xyz_mb_s": round(ref_bytes / 1e6 / t_ref_xyz, 2),
        "files_without_skeleton": len(skipped),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 used",
    }
    res["speedup_vs_reference"] = round(res["s2i_parse_select_mb_s"] / res["reference_mb_s"], 1)
    res["speedup_xyz_vs_reference_xyz"] = round(
        res["s2i_xyz_parse_select_mb_s"] / res["reference_xyz_mb_s"], 1)
    print(f"corpus: {res['files']} synthetic NTU files, {res['mb']} MB ({res['kb_per_file']} KB/file)")
    print(f"s2i parse            {res['s2i_parse_mb_s']:>8} MB/s")
    print(f"s2i parse + select   {res['s2i_parse_select_mb_s']:>8} MB/s  "
          f"{res['s2i_parse_select_files_s']:>8} files/s")
    print(f"plain Python + select{res['reference_mb_s']:>8} MB/s  {res['reference_files_s']:>8} files/s")
    print(f"speed-up             {res['speedup_vs_reference']:>8}x")
    print("positions only (fields='xyz', what convert reads):")
    print(f"s2i parse + select   {res['s2i_xyz_parse_select_mb_s']:>8} MB/s")
    print(f"plain Python + select{res['reference_xyz_mb_s']:>8} MB/s  (float() on x, y, z only)")
    print(f"speed-up             {res['speedup_xyz_vs_reference_xyz']:>8}x")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
