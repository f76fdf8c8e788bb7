"""``run_pretrain``: MAE / DiffMAE pretraining on one or several s2i datasets (universal pretraining
when they are of different skeleton formats), with a checkpoint after every epoch."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import torch
from timm.optim import param_groups_weight_decay
from torch.nn.parallel import DistributedDataParallel

from s2i_train.checkpoint import check_exact, load_checkpoint, load_init, save_checkpoint
from s2i_train.config import RunConfig, device_of, resume_mismatch
from s2i_train.distributed import init_distributed
from s2i_train.engine import pretrain_one_epoch
from s2i_train.errors import S2ITrainError
from s2i_train.inputs import Batches, open_dataset
from s2i_train.lr_sched import adjust_learning_rate
from s2i_train.masking import MASKINGS
from s2i_train.models import METHODS, create_model
from s2i_train.models.vit import ENCODER_SIZES
from s2i_train.rundir import RunDir

__all__ = ["PretrainConfig", "run_pretrain"]


@dataclass(frozen=True)
class PretrainConfig(RunConfig):
    """Pretraining options; defaults are MAE's recipe (mask 0.75, AdamW betas (0.9, 0.95), wd
    0.05, blr 1.5e-4, 512-d 8-block decoder) with raw-pixel targets: in a skeleton image a patch's
    mean colour *is* the joints' coordinates, which per-patch normalised targets throw away
    (measured: linear probe 64.8 % with them, 78.4 % without; docs/TRAINING.md)."""

    method: str = "mae"
    model: str = "vit_base"
    init: str | None = None
    mask: str = "random"
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False
    decoder_dim: int = 512
    decoder_depth: int = 8
    blr: float = 1.5e-4
    warmup_epochs: float = 40.0
    resume: bool = False
    overwrite: bool = False


def _check(cfg: PretrainConfig) -> PretrainConfig:
    if cfg.method not in METHODS:
        raise S2ITrainError(f"--method {cfg.method!r}: choose from {', '.join(METHODS)}")
    if cfg.model not in ENCODER_SIZES:
        raise S2ITrainError(f"--model {cfg.model!r}: choose from {', '.join(ENCODER_SIZES)}")
    if cfg.mask not in MASKINGS:
        raise S2ITrainError(f"--mask {cfg.mask!r}: choose from {', '.join(MASKINGS)}")
    cfg = dataclasses.replace(
        cfg, input_size=cfg.input_size or 224, patch_size=cfg.patch_size or 16
    )
    if cfg.input_size % cfg.patch_size:  # type: ignore[operator]
        raise S2ITrainError(
            f"--input-size {cfg.input_size} is not a multiple of --patch-size {cfg.patch_size}"
        )
    return cfg


def _default_workers(cfg: RunConfig, device: torch.device) -> int:
    return cfg.workers if cfg.workers is not None else (4 if device.type == "cuda" else 0)


def run_pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Pretrain, writing ``checkpoint.pt`` (every epoch, atomically) and ``metrics.jsonl`` under
    ``cfg.out``; returns the final figures."""
    cfg = _check(cfg)
    device = device_of(cfg.device)
    dist = init_distributed(device)
    try:
        return _pretrain(cfg, device, dist)
    finally:
        dist.close()


def _pretrain(cfg: PretrainConfig, device: torch.device, dist: Any) -> dict[str, Any]:
    ds = open_dataset(cfg.data, cfg.split, "train", cfg.stream)  # data errors before anything else
    run = RunDir(cfg.out, "pretrain", resume=cfg.resume, overwrite=cfg.overwrite, write=dist.main)
    torch.manual_seed(cfg.seed)
    model = create_model(
        f"{cfg.method}_{cfg.model}",
        img_size=cfg.input_size,
        patch_size=cfg.patch_size,
        decoder_dim=cfg.decoder_dim,
        decoder_depth=cfg.decoder_depth,
        mask_ratio=cfg.mask_ratio,
        masking=cfg.mask,
        norm_pix_loss=cfg.norm_pix_loss,
    )
    lr = cfg.lr(dist.world)
    optimizer = torch.optim.AdamW(
        param_groups_weight_decay(model, cfg.weight_decay), lr=lr, betas=(0.9, 0.95)
    )
    start, init_report = 0, None
    if run.resuming:
        state = load_checkpoint(run.checkpoint)
        if state.get("kind") != "pretrain":
            raise S2ITrainError(
                f"{run.checkpoint}: a {state.get('kind')} checkpoint, not a pretraining run"
            )
        differ = resume_mismatch(state["config"], _saved_config(cfg))
        if differ:
            raise S2ITrainError(
                f"{run.checkpoint}: --resume with different options: {'; '.join(differ)}"
            )
        check_exact(model, state["model"], str(run.checkpoint))
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"] + 1
        run.drop_metrics_after(state["epoch"])
    elif cfg.init:
        # an MAE decoder fits only MAE; DiffMAE keeps its own fresh decoder
        init_report = load_init(model, cfg.init, use_decoder=cfg.method == "mae")
        if dist.main and cfg.show_progress:  # -q: the report is still in metrics.jsonl
            print(f"--init {cfg.init}: {init_report.summary()}", file=sys.stderr)
    model.to(device)
    _optimizer_to(optimizer, device)
    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if dist.enabled
        else model
    )
    batches = Batches(
        ds,
        cfg.batch_size,
        cfg.input_size,
        device,
        dist,
        train=True,
        augment=cfg.augment,  # type: ignore[arg-type]
        seed=cfg.seed,
        workers=_default_workers(cfg, device),
    )
    run.save_config({**_saved_config(cfg), "dataset": repr(ds), "processes": dist.world, "lr": lr})
    if run.resuming is False:
        run.log(
            event="start",
            samples=len(ds),
            steps_per_epoch=len(batches),
            lr=lr,
            init=init_report.to_dict() if init_report else None,
        )

    def schedule(opt: torch.optim.Optimizer, epoch: float) -> float:
        return adjust_learning_rate(opt, epoch, lr, cfg.min_lr, cfg.warmup_epochs, cfg.epochs)

    stats: dict[str, float] = {}
    times: list[float] = []
    for epoch in range(start, cfg.epochs):
        stats = pretrain_one_epoch(
            net,
            batches.epoch(epoch),
            len(batches),
            optimizer,
            schedule,
            epoch,
            cfg.seed,
            device,
            show_progress=cfg.show_progress and dist.main,
        )
        loss = dist.mean(stats["loss"], device)
        images = dist.sum(stats["images"], device)
        times.append(stats["seconds"])
        if dist.main:
            save_checkpoint(
                run.checkpoint,
                {
                    "kind": "pretrain",
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "config": _saved_config(cfg),
                },
            )
            run.log(
                epoch=epoch,
                loss=loss,
                lr=stats["lr"],
                seconds=stats["seconds"],
                images_per_s=images / max(stats["seconds"], 1e-9),
            )
        dist.barrier()
    result = {
        "command": "pretrain",
        "method": cfg.method,
        "model": cfg.model,
        "stream": cfg.stream,
        "epochs": cfg.epochs,
        "final_loss": loss if times else None,
        "seconds_per_epoch": sum(times) / len(times) if times else None,
        "images_per_s": (len(batches) * batches.batch_size * dist.world * len(times) / sum(times))
        if times
        else None,
        "checkpoint": str(run.checkpoint),
    }
    run.save_result(result)
    return result if dist.main else {}  # rank 0 alone reports


def _saved_config(cfg: PretrainConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    for k in ("resume", "overwrite"):
        d.pop(k)
    return d


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and k != "step":
                state[k] = v.to(device)
