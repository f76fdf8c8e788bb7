"""Pretraining throughput: the real data path against a batch already on the device.

Times MAE (or DiffMAE) training steps three ways in one run, on the same model and device:

* ``data path``: loader (``S2IDataset`` + ``S2ISampler``, DataLoader workers) -> device transforms
  (pixel mapping, temporal crop, rotation, resize, normalisation) -> forward/backward/step, i.e.
  what ``s2i-train pretrain`` does;
* ``in memory`` (the reference): the same step on one transformed batch kept on the device;
* ``loader only``: the data path without the model (how fast the input side alone runs).

The data path's cost is ``1 - data_path / in_memory`` (issue target on a GPU: under 5 %). bf16
autocast on CUDA, float32 on CPU. The last line is JSON.

    python benchmarks/bench_train.py --data ntu.zarr --model vit_base --batch-size 256 --workers 8
    python benchmarks/bench_train.py --quick      # tiny generated dataset and model (smoke test)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from s2i_train.distributed import Dist
from s2i_train.engine import autocast
from s2i_train.inputs import Batches, open_dataset
from s2i_train.masking import sample_seeds
from s2i_train.models import create_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _tiny_dataset(root: Path) -> Path:
    from s2i_prep.pipeline import ConvertConfig, convert
    from s2i_prep.synthetic import write_synthetic

    write_synthetic("ntu25", root / "raw", 48, classes=4, seed=0)
    convert(ConvertConfig(input=root / "raw", output=root / "ntu.zarr", format="ntu25", workers=0))
    return root / "ntu.zarr"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", type=Path, help="converted s2i dataset (default with --quick: generated)"
    )
    ap.add_argument("--split", default="none")
    ap.add_argument("--method", default="mae", choices=["mae", "diffmae"])
    ap.add_argument("--model", default="vit_base")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--patch-size", type=int, default=16)
    ap.add_argument("--decoder-dim", type=int, default=512)
    ap.add_argument("--decoder-depth", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="tiny dataset, vit_test at 32 px, 2 steps")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    if args.quick:
        args.model, args.input_size, args.patch_size = "vit_test", 32, 8
        args.batch_size, args.steps, args.warmup, args.workers = 8, 2, 1, 0
        args.decoder_dim, args.decoder_depth = 32, 1
        args.data = args.data or _tiny_dataset(Path(tmp.name))
    if args.data is None:
        ap.error("--data is required without --quick")
    device = torch.device(args.device)

    ds = open_dataset([str(args.data)], [args.split], "train", "joint")
    batches = Batches(
        ds,
        args.batch_size,
        args.input_size,
        device,
        Dist(),
        train=True,
        augment=True,
        workers=args.workers,
    )
    model = create_model(
        f"{args.method}_{args.model}",
        img_size=args.input_size,
        patch_size=args.patch_size,
        decoder_dim=args.decoder_dim,
        decoder_depth=args.decoder_depth,
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))

    def step(imgs: torch.Tensor, index: torch.Tensor) -> None:
        with autocast(device):
            loss, _, _ = model(imgs, sample_seeds(0, 0, index))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def stream():  # endless (imgs, index) from the data path
        epoch = 0
        while True:
            for imgs, _, index in batches.epoch(epoch):
                yield imgs, index
            epoch += 1

    def timed(fn, n: int) -> float:
        for _ in range(args.warmup):
            fn()
        _sync(device)
        t = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(device)
        return n * batches.batch_size / (time.perf_counter() - t)

    source = stream()
    fixed = next(source)
    # the reference is timed before and after the data path and the faster run kept, so thread
    # warm-up and a busy machine do not count against the reference
    in_memory = timed(lambda: step(*fixed), args.steps)
    data_path = timed(lambda: step(*next(source)), args.steps)
    in_memory = max(in_memory, timed(lambda: step(*fixed), args.steps))
    loader_only = timed(lambda: next(source), args.steps)
    cost = 1.0 - data_path / in_memory
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name}, {args.method}_{args.model} {args.input_size}/{args.patch_size}, "
        f"batch {batches.batch_size}, workers {args.workers}, read path {ds.read_path}"
    )
    print(f"in memory (reference)   {in_memory:10.1f} images/s")
    print(f"data path               {data_path:10.1f} images/s   ({100 * cost:+.1f} % cost)")
    print(f"loader + transforms     {loader_only:10.1f} images/s")
    print(
        json.dumps(
            {
                "device": name,
                "model": f"{args.method}_{args.model}",
                "batch": batches.batch_size,
                "input": args.input_size,
                "patch": args.patch_size,
                "workers": args.workers,
                "in_memory_img_s": round(in_memory, 1),
                "data_path_img_s": round(data_path, 1),
                "loader_img_s": round(loader_only, 1),
                "data_path_cost": round(cost, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
