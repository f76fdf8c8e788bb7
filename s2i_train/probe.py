"""Frozen-encoder evaluations: the linear probe (MAE's: BatchNorm without affine + linear head on
the cls token, LARS) and k-nearest-neighbour classification of the features."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.optim import Lars
from torch.nn.parallel import DistributedDataParallel

from s2i_train.backbone import build_encoder
from s2i_train.config import device_of
from s2i_train.distributed import init_distributed
from s2i_train.engine import Batch, evaluate, extract_features
from s2i_train.supervised import EvalConfig, prepare, print_init, save_scores, train_and_test

__all__ = ["KnnConfig", "LinprobeConfig", "run_knn", "run_linprobe"]


@dataclass(frozen=True)
class LinprobeConfig(EvalConfig):
    """MAE's linear probe: LARS, blr 0.1, no weight decay, 90 epochs with 10 of warmup.
    ``augment=False`` (the default) extracts the frozen features once and trains the head on them;
    with ``augment`` the encoder runs on augmented inputs every epoch, as MAE does."""

    epochs: int = 90
    warmup_epochs: float = 10.0
    blr: float = 0.1
    weight_decay: float = 0.0
    augment: bool = False
    pool: str = "cls"
    batch_size: int = 256


@dataclass(frozen=True)
class KnnConfig(EvalConfig):
    """k-NN on L2-normalised frozen cls features, similarity-weighted votes (DINO: k 20, T 0.07)."""

    k: int = 20
    pool: str = "cls"
    temperature: float = 0.07
    epochs: int = 0


# cls: the cls token after the final norm (MAE's default probe); avg: the mean of the patch
# tokens through a fresh, frozen LayerNorm (MAE's ``--global_pool``; the final norm is unused)
_POOLS = {"cls": "token", "avg": "avg"}


def _features(encoder: nn.Module) -> Any:
    """The pooled, normalised encoder output the probe or k-NN reads."""
    return lambda x: encoder.forward_head(encoder.forward_features(x), pre_logits=True)


def run_linprobe(cfg: LinprobeConfig) -> dict[str, Any]:
    dist = init_distributed(device_of(cfg.device))
    try:
        setup = prepare(cfg, "linprobe", dist)
        torch.manual_seed(cfg.seed)
        encoder, report = build_encoder(
            setup.geo, setup.train_ds.num_classes, global_pool=_POOLS[cfg.pool]
        )
        print_init(report, setup.geo.path, dist, cfg.show_progress)
        head = encoder.head
        nn.init.trunc_normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)
        encoder.head = nn.Sequential(
            nn.BatchNorm1d(encoder.embed_dim, affine=False, eps=1e-6), head
        )
        for name, p in encoder.named_parameters():
            p.requires_grad_(name.startswith("head."))
        if dist.enabled:
            encoder.head = nn.SyncBatchNorm.convert_sync_batchnorm(encoder.head)
        encoder.to(setup.device).eval()
        probe: nn.Module = DistributedDataParallel(encoder.head) if dist.enabled else encoder.head
        lr = cfg.lr(dist.world)
        optimizer = Lars(probe.parameters(), lr=lr, momentum=0.9, weight_decay=cfg.weight_decay)
        extra = {"init": report.to_dict() if report else None}
        if cfg.augment:
            train = setup.batches(setup.train_ds, train=True, augment=True)
            return train_and_test(
                setup,
                encoder,
                probe,
                optimizer,
                nn.CrossEntropyLoss(),
                train.epoch,
                len(train),
                _features(encoder),
                lr,
                extra,
            )
        # frozen features of the un-augmented training set, extracted once
        once = setup.batches(setup.train_ds, train=False)
        feats, labels, index = extract_features(
            _features(encoder),
            once.epoch(0),
            len(once),
            setup.device,
            "features",
            cfg.show_progress and dist.main,
        )
        cached = _CachedBatches(
            feats, labels, index, cfg.batch_size, cfg.seed, dist.rank, dist.world
        )
        return train_and_test(
            setup,
            encoder,
            probe,
            optimizer,
            nn.CrossEntropyLoss(),
            cached.epoch,
            len(cached),
            None,
            lr,
            extra,
        )
    finally:
        dist.close()


class _CachedBatches:
    """Seeded shuffled batches over precomputed features, sharded over ranks like the sampler."""

    def __init__(
        self,
        feats: torch.Tensor,
        labels: torch.Tensor,
        index: torch.Tensor,
        batch_size: int,
        seed: int,
        rank: int,
        world: int,
    ) -> None:
        self.feats, self.labels, self.index = feats, labels, index
        self.seed, self.rank, self.world = seed, rank, world
        self.per_rank = len(labels) // world
        self.batch_size = min(batch_size, self.per_rank)

    def __len__(self) -> int:
        return self.per_rank // self.batch_size

    def epoch(self, epoch: int) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.labels), generator=g)[self.rank :: self.world][
            : self.per_rank
        ]
        order = order.to(self.feats.device)
        for b in range(len(self)):
            sel = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.feats[sel], self.labels[sel], self.index[sel]


def run_knn(cfg: KnnConfig) -> dict[str, Any]:
    """Top-1/top-5 of k-NN over frozen features; no training, so rank 0 does it all."""
    dist = init_distributed(device_of(cfg.device))
    try:
        setup = prepare(cfg, "knn", dist)
        encoder, report = build_encoder(setup.geo, 0, global_pool=_POOLS[cfg.pool])
        print_init(report, setup.geo.path, dist, cfg.show_progress)
        encoder.to(setup.device).eval()
        fn = _features(encoder)
        show = cfg.show_progress and dist.main
        train = setup.batches(setup.train_ds, train=False)
        test = setup.batches(setup.test_ds, train=False)
        bank, bank_labels, _ = extract_features(
            fn, train.epoch(0), len(train), setup.device, "train features", show
        )
        query, labels, index = extract_features(
            fn, test.epoch(0), len(test), setup.device, "test features", show
        )
        scores = knn_scores(
            bank, bank_labels, query, setup.train_ds.num_classes, cfg.k, cfg.temperature
        )
        metrics = evaluate(scores, labels)
        result = {
            "command": "knn",
            "stream": cfg.stream,
            "model": setup.geo.model,
            "source": setup.geo.source,
            "k": cfg.k,
            **{k: metrics[k] for k in ("top1", "top5", "n_test")},
            "n_train": len(bank_labels),
        }
        if dist.main:
            setup.run.save_config(setup.saved_config())
            save_scores(
                setup.run.scores,
                scores,
                labels,
                index,
                setup.test_ds,
                {"kind": "knn", "stream": cfg.stream},
            )
            setup.run.log(event="test", **metrics)
            setup.run.save_result({**result, "scores": str(setup.run.scores)})
        return result
    finally:
        dist.close()


def knn_scores(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    query: torch.Tensor,
    classes: int,
    k: int,
    temperature: float,
    chunk: int = 1024,
) -> torch.Tensor:
    """(Q, classes) class votes: the k most cosine-similar bank items vote exp(sim / T)."""
    bank = F.normalize(bank, dim=1)
    out = []
    for a in range(0, len(query), chunk):
        sim = F.normalize(query[a : a + chunk], dim=1) @ bank.T
        top, idx = sim.topk(min(k, len(bank)), dim=1)
        votes = torch.zeros(len(sim), classes, device=sim.device)
        votes.scatter_add_(1, bank_labels[idx], (top / temperature).exp())
        out.append(votes)
    return torch.cat(out)
