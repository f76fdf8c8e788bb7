"""End-to-end fine-tuning (MAE's recipe: average pooling + fc_norm, layer-wise lr decay, drop path,
label smoothing), which with ``label_fraction`` is the semi-supervised protocol and with another
dataset's checkpoint the transfer protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from timm.optim import param_groups_layer_decay
from torch.nn.parallel import DistributedDataParallel

from s2i_train.backbone import build_encoder
from s2i_train.config import device_of
from s2i_train.distributed import init_distributed
from s2i_train.supervised import EvalConfig, prepare, print_init, train_and_test

__all__ = ["FinetuneConfig", "run_finetune"]


@dataclass(frozen=True)
class FinetuneConfig(EvalConfig):
    """Defaults are MAE's ViT-B fine-tuning (blr 5e-4, layer decay 0.65, drop path 0.1, label
    smoothing 0.1, wd 0.05, 5 warmup epochs, min lr 1e-6), without mixup/cutmix/RandAugment:
    image augmentations that would break the joint/time layout of a skeleton image."""

    epochs: int = 100
    warmup_epochs: float = 5.0
    blr: float = 5e-4
    min_lr: float = 1e-6
    layer_decay: float = 0.65
    drop_path: float = 0.1
    label_smoothing: float = 0.1


def run_finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    dist = init_distributed(device_of(cfg.device))
    try:
        setup = prepare(cfg, "finetune", dist)
        torch.manual_seed(cfg.seed)
        model, report = build_encoder(
            setup.geo, setup.train_ds.num_classes, global_pool="avg", drop_path_rate=cfg.drop_path
        )
        print_init(report, setup.geo.path, dist, cfg.show_progress)
        nn.init.trunc_normal_(model.head.weight, std=2e-5)
        nn.init.zeros_(model.head.bias)
        model.to(setup.device)
        groups = param_groups_layer_decay(
            model,
            weight_decay=cfg.weight_decay,
            layer_decay=cfg.layer_decay,
            no_weight_decay_list=model.no_weight_decay(),
        )
        lr = cfg.lr(dist.world)
        optimizer = torch.optim.AdamW(groups, lr=lr)
        net = (
            DistributedDataParallel(
                model, device_ids=[setup.device.index] if setup.device.type == "cuda" else None
            )
            if dist.enabled
            else model
        )
        train = setup.batches(setup.train_ds, train=True, augment=cfg.augment)
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        extra = {"init": report.to_dict() if report else None}
        return train_and_test(
            setup, model, net, optimizer, criterion, train.epoch, len(train), None, lr, extra
        )
    finally:
        dist.close()
