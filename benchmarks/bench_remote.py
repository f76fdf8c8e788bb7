"""Object-store conversion and the shard read path over S3 (moto on localhost) against local disk.

    python benchmarks/bench_remote.py              # 512 NTU files, batches of 64
    python benchmarks/bench_remote.py --quick      # smoke run

moto's server runs in this process on 127.0.0.1: what it shows is the cost of the S3 protocol path
(HTTP requests, s3fs/aiobotocore, moto's own handling), not the latency or bandwidth of a real
object store, where every round trip costs 10-50 ms more. Figures per step, each against the same
step on local disk measured in the same run:

- convert: local -> local, local -> s3:// output, s3:// input -> local (``--workers 0``, after a
  warm-up run, so only I/O differs);
- read: ``S2IDataset(read="shard")`` batches of random samples and of consecutive samples
  (one ``cat_ranges`` per shard touched vs ``preadv``), and ``read="memory"`` loading.

The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_convert import make_corpus


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _best(fn, repeat: int = 3) -> float:
    return min(_timed(fn) for _ in range(repeat))


def _count_requests() -> list[int]:
    """Count the HTTP requests s3fs sends from now on (aiobotocore's endpoint, patched)."""
    from aiobotocore.endpoint import AioEndpoint

    count = [0]
    send = AioEndpoint._send

    async def counted(self, request):
        count[0] += 1
        return await send(self, request)

    AioEndpoint._send = counted  # type: ignore[method-assign]
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--quick", action="store_true")
    ns = ap.parse_args()
    n = 48 if ns.quick else ns.files
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import logging

    import fsspec
    import numpy as np
    from moto.server import ThreadedMotoServer

    from s2i_prep import urls
    from s2i_prep.pipeline import ConvertConfig, convert
    from s2i_train.data import S2IDataset

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "bench", "secret": "bench"}
    urls.set_storage_options("s3", options)
    fs = fsspec.filesystem("s3", **options)
    fs.mkdir("bench")
    tmp = Path(tempfile.mkdtemp(prefix="s2i-bench-remote-"))
    res: dict[str, float] = {"files": n}
    try:
        raw = tmp / "raw"
        res["raw_mb"] = make_corpus(raw, n) / 1e6
        fs.put(str(raw), "bench/raw", recursive=True)

        def conv(src: str | Path, out: str | Path) -> None:
            convert(ConvertConfig(input=src, output=out, workers=0, overwrite=True,
                                  shard_size=128))

        conv(raw, tmp / "warm.zarr")  # compiles the kernels: not part of any figure
        res["convert_local_s"] = _timed(lambda: conv(raw, tmp / "local.zarr"))
        requests = _count_requests()
        res["convert_to_s3_s"] = _timed(lambda: conv(raw, "s3://bench/out.zarr"))
        res["convert_to_s3_requests"] = requests[0]
        requests[0] = 0  # the same with 4x the shards: the difference is the cost of a shard
        convert(ConvertConfig(input=raw, output="s3://bench/small-shards.zarr", workers=0,
                              shard_size=32))
        shards = (-(-n // 32), -(-n // 128))
        res["requests_per_shard"] = (requests[0] - res["convert_to_s3_requests"]) / (
            shards[0] - shards[1]) if shards[0] > shards[1] else float("nan")
        res["convert_from_s3_s"] = _timed(lambda: conv("s3://bench/raw", tmp / "from.zarr"))

        rng = np.random.default_rng(0)
        local = S2IDataset(tmp / "local.zarr", read="shard", as_float=False)
        remote = S2IDataset("s3://bench/out.zarr", read="shard", as_float=False,
                            storage_options=options)
        count = len(local)
        ns.batch = min(ns.batch, count // 2)
        shuffled = [rng.choice(count, ns.batch, replace=False).tolist()
                    for _ in range(ns.batches)]
        runs = [list(range(s, s + ns.batch)) for s in
                rng.integers(0, count - ns.batch, ns.batches).tolist()]
        from s2i_train.data._readers import ShardReader

        ranges = [0]
        fetch = ShardReader._remote_ranges

        def counted(self, shards, starts, ends):
            ranges[0] += len(starts)
            return fetch(self, shards, starts, ends)

        ShardReader._remote_ranges = counted  # type: ignore[method-assign]
        for name, batches in (("random", shuffled), ("consecutive", runs)):
            for label, ds in (("local", local), ("s3", remote)):
                ds.__getitems__(batches[0])  # shard indexes cached, connections open
                ranges[0] = 0
                sec = _best(lambda ds=ds, batches=batches: [ds.__getitems__(b) for b in batches])
                res[f"read_{name}_{label}_ms_per_batch"] = 1e3 * sec / len(batches)
                res[f"read_{name}_{label}_samples_per_s"] = len(batches) * ns.batch / sec
                if label == "s3":
                    res[f"read_{name}_ranges_per_batch"] = ranges[0] / (3 * len(batches))
        for label, path, opts in (("local", tmp / "local.zarr", None),
                                  ("s3", "s3://bench/out.zarr", options)):
            res[f"memory_load_{label}_s"] = _best(lambda path=path, opts=opts: S2IDataset(
                path, read="memory", storage_options=opts), 2)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{n} NTU files ({res['raw_mb']:.1f} MB raw), {count} samples; moto S3 on localhost "
          "(NOT real S3 latency)")
    print(f"convert  local -> local      {res['convert_local_s']:6.2f} s")
    print(f"requests s3:// output: {res['convert_to_s3_requests']} in all, "
          f"{res['requests_per_shard']:.1f} per shard (from a second run with 4x the shards)")
    for key, what in (("convert_to_s3_s", "local -> s3://"), ("convert_from_s3_s",
                                                             "s3:// -> local")):
        print(f"convert  {what:<19} {res[key]:6.2f} s   "
              f"{res[key] / res['convert_local_s']:.2f}x local")
    for name in ("random", "consecutive"):
        loc, s3 = (res[f"read_{name}_{x}_ms_per_batch"] for x in ("local", "s3"))
        print(f"read     {name:<12} batch of {ns.batch}: local {loc:7.2f} ms, s3 {s3:7.2f} ms "
              f"({s3 / loc:.1f}x; {res[f'read_{name}_ranges_per_batch']:.1f} byte ranges in one "
              "cat_ranges per batch)")
    loc, s3 = res["memory_load_local_s"], res["memory_load_s3_s"]
    print(f"memory   load all samples: local {loc:.2f} s, s3 {s3:.2f} s ({s3 / loc:.1f}x)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
