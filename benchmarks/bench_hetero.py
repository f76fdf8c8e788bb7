"""Reading the estimated-pose formats: s2i's readers + body selection against the peers' loaders.

For each format a synthetic corpus is written (``s2i-prep synth``), then timed on one core, best
of ``--repeat``:

- Kinetics-skeleton (``openpose18``): s2i = ``kinetics_json`` read + selection (every check,
  ranking, NaN for missed joints); reference = st-gcn's feeder logic (``json.load``, fill a
  (3, T, 18, 5) buffer, per-frame sort by score), ``tests/test_reader_kinetics.stgcn_feeder_twin``.
- Toyota Smarthome (``toyota13``): s2i = ``toyota_json`` read + selection; reference =
  ``json.load`` and ``reshape(3, 13).T`` of every detection (the official json_to_npz loop).
- pyskl pickle (``coco17``): s2i = trusted restricted unpickling + per-annotation checks;
  reference = plain ``pickle.load``.

Prints a table and ends with one JSON line. Usage: ``python benchmarks/bench_hetero.py``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2i_prep.bodies import select_bodies  # noqa: E402
from s2i_prep.readers import get_reader  # noqa: E402
from s2i_prep.readers import pyskl_pickle  # noqa: E402
from s2i_prep.specs import load_spec  # noqa: E402
from s2i_prep.synthetic import write_synthetic  # noqa: E402
from tests.test_reader_kinetics import stgcn_feeder_twin  # noqa: E402


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _s2i(fmt: str, paths: list[Path], **options) -> None:
    spec = load_spec(fmt)
    reader = get_reader(spec.reader if not options.get("trust_pickle") else "pyskl_pickle",
                        fields="xyz", **options)
    for path in paths:
        for raw in reader.read(path, spec):
            select_bodies(raw, spec)


def _toyota_reference(paths: list[Path]) -> None:
    for path in paths:
        doc = json.loads(path.read_bytes())
        out = [[np.asarray(d["pose3d"], np.float32).reshape(3, 13).T for d in frame]
               for frame in doc["frames"]]
        assert out is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fmt in ("openpose18", "toyota13", "coco17"):
            write_synthetic(fmt, tmp / fmt, args.samples, seed=1, workers=0)
        kin = get_reader("kinetics_json").discover(tmp / "openpose18")
        toy = get_reader("toyota_json").discover(tmp / "toyota13")
        pkl = [tmp / "coco17" / "coco17_2d.pkl"]
        cases = [
            ("Kinetics JSON (openpose18)", kin,
             lambda: _s2i("openpose18", kin),
             lambda: [stgcn_feeder_twin(json.loads(p.read_bytes())) for p in kin],
             "st-gcn feeder twin"),
            ("Toyota LCR-Net JSON (toyota13)", toy,
             lambda: _s2i("toyota13", toy), lambda: _toyota_reference(toy),
             "json.load + reshape"),
            ("pyskl 2-D pickle (coco17)", pkl,
             lambda: (pyskl_pickle._CACHE.clear(), _s2i("coco17", pkl, trust_pickle=True)),
             lambda: pickle.loads(pkl[0].read_bytes()), "pickle.load"),
        ]
        for name, paths, ours, ref, ref_name in cases:
            nbytes = sum(p.stat().st_size for p in paths)
            t_ours, t_ref = _best(ours, args.repeat), _best(ref, args.repeat)
            rows.append({
                "path": name, "samples": args.samples, "mb": round(nbytes / 1e6, 1),
                "s2i_mb_s": round(nbytes / 1e6 / t_ours, 1),
                "s2i_samples_s": round(args.samples / t_ours),
                "reference": ref_name, "ref_mb_s": round(nbytes / 1e6 / t_ref, 1),
                "ratio": round(t_ref / t_ours, 2),
            })
    print(f"{'path':<32} {'MB':>6} {'s2i MB/s':>9} {'samples/s':>10} {'ref MB/s':>9} {'ratio':>6}  reference")
    for r in rows:
        print(f"{r['path']:<32} {r['mb']:>6} {r['s2i_mb_s']:>9} {r['s2i_samples_s']:>10} "
              f"{r['ref_mb_s']:>9} {r['ratio']:>6}  {r['reference']}")
    print(json.dumps({"bench": "hetero", "rows": rows}))


if __name__ == "__main__":
    main()
