"""Encoder benchmark: samples/s of ``encode`` (compact grid and 224x224 uint8) on one core, against
the plain numpy twins of ``tests/reference/encode_ref.py`` measured in the same run, plus
``to_image`` alone (the training loader's path) and ``StreamStats.update`` (batches of 64, and
one sample at a time as the pipeline's workers use it).

Inputs are generated smooth random-walk skeletons in NTU layout (25 joints, metres); by default
100 frames (about the NTU mean), half the samples with one actor and half with two, and the
second actor missing in 10% of the frames. The compact grid is 3 streams x 3 x 64 x 50.

    python benchmarks/bench_encode.py [--quick] [--frames-in 100] [--align]

Times are process CPU time (the machine is shared). Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2i_prep.encoding import EncodeConfig, StreamStats, encode, pixel_mapping_params, to_image  # noqa: E402
from s2i_prep.kernels import s2i as kernels  # noqa: E402
from s2i_prep.skeleton import Skeleton  # noqa: E402
from s2i_prep.specs import load_spec  # noqa: E402
from tests.reference import encode_ref as ref  # noqa: E402


def make_samples(n: int, n_frames: int, seed: int = 0) -> list[Skeleton]:
    """Smooth random-walk bodies; odd samples get a second actor missing in 10% of the frames."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        persons = 1 + i % 2
        pose = rng.normal(0.0, 0.4, (persons, 1, 25, 3))
        walk = np.cumsum(rng.normal(0.0, 0.02, (persons, n_frames, 25, 3)), axis=1)
        joints = (pose + walk + [0.0, 0.0, 3.0]).astype(np.float32)
        if persons == 2:
            joints[1, rng.random(n_frames) < 0.1] = np.nan
        out.append(Skeleton(f"s{i}", "bench", joints, np.arange(n_frames)))
    return out


def rate(fn, items, repeat: int) -> float:
    """Best-of-``repeat`` items per CPU second of ``fn`` over ``items``."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - t)
    return len(items) / best


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    ap.add_argument("--frames-in", type=int, default=100, help="frames per raw sample")
    ap.add_argument("--align", action="store_true", help="also rotate into the body frame")
    args = ap.parse_args(argv)
    spec = load_spec("ntu25")
    n, n_ref, n_img, repeat = (40, 4, 4, 1) if args.quick else (4000, 100, 400, 3)
    samples = make_samples(n, args.frames_in)
    compact = EncodeConfig(align=args.align)
    image = EncodeConfig(align=args.align, image_size=(224, 224), dtype="uint8")
    mapping = pixel_mapping_params(image)

    t = time.perf_counter()
    kernels.warm()
    warm_s = time.perf_counter() - t

    # s2i first, the numpy twins last: the twins' large temporaries change the allocator's state
    # (measured: the image figure drops by a third when taken after them).
    res = {
        "compact_samples_per_s": rate(lambda s: encode(s, spec, compact), samples, repeat),
        "image224_u8_samples_per_s": rate(
            lambda s: encode(s, spec, image), samples[:n_img], repeat
        ),
    }
    grids = [encode(s, spec, compact) for s in samples[:n_img]]
    res["to_image_224_u8_samples_per_s"] = rate(
        lambda g: to_image(g, (224, 224), mapping), grids, repeat
    )
    batches = [np.stack(grids[i : i + 64]) for i in range(0, len(grids), 64)]
    stats = StreamStats(3)
    per_batch = rate(stats.update, batches, repeat)
    res["stats_compact_samples_per_s"] = per_batch * len(grids) / len(batches)
    res["stats_one_sample_samples_per_s"] = rate(  # the pipeline's use: one StreamStats per sample
        lambda g: StreamStats(3).update(g[None]), grids, repeat
    )
    res["compact_numpy_ref_samples_per_s"] = rate(
        lambda s: ref.encode_compact(
            s.joints, spec, compact.streams, compact.frames, compact.align
        ),
        samples[:n_ref],
        1,
    )
    res["image224_u8_numpy_ref_samples_per_s"] = rate(
        lambda s: ref.to_image(
            ref.encode_compact(s.joints, spec, image.streams, image.frames, image.align),
            (224, 224),
        ),
        samples[:n_ref],
        1,
    )
    res["compact_speedup"] = res["compact_samples_per_s"] / res["compact_numpy_ref_samples_per_s"]
    res["image_speedup"] = (
        res["image224_u8_samples_per_s"] / res["image224_u8_numpy_ref_samples_per_s"]
    )

    print(f"{'measure':40s} {'value':>12s}")
    for key, value in res.items():
        print(f"{key:40s} {value:12.1f}")
    meta = {
        "bench": "encode",
        "quick": args.quick,
        "frames_in": args.frames_in,
        "align": args.align,
        "grid": list(encode(samples[0], spec, compact).shape),
        "warm_s": round(warm_s, 3),
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    line = {**meta, **{k: round(v, 1) for k, v in res.items()}}
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
