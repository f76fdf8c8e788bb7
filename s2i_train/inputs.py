"""From command-line data options to batches on the device: dataset, rank-sharded sampler, loader
and the device transform, for one stream.

Batches carry the dataset index of every sample (``(x, y, index)``) so that masks and diffusion
noise can be drawn per sample (:func:`s2i_train.masking.sample_seeds`): the same sample gets the
same draw whatever rank or batch it lands in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from s2i_train import transforms
from s2i_train.data import ItemBatch, S2IDataset, S2ISampler, collate
from s2i_train.distributed import Dist
from s2i_train.errors import DatasetRequestError

__all__ = ["Batches", "open_dataset"]

NO_SPLIT = ("none", "all")


def open_dataset(
    paths: Sequence[str],
    splits: Sequence[str],
    subset: str,
    stream: str,
    label_fraction: float | None = None,
    seed: int = 0,
) -> S2IDataset:
    """``S2IDataset`` of one stream; ``splits`` is one name for every dataset or one per dataset
    (``none``/``all``: every sample of that dataset)."""
    if len(splits) not in (1, len(paths)):
        raise DatasetRequestError(
            f"{len(splits)} --split values for {len(paths)} --data; give one, or one per --data"
        )
    names = list(splits) * len(paths) if len(splits) == 1 else list(splits)
    chosen = [None if s.lower() in NO_SPLIT else s for s in names]
    # stored dtype (float16/uint8): half or a quarter of the bytes to the device, where
    # ToModelInput converts to float32
    return S2IDataset(
        list(paths),
        split=chosen,
        subset=subset,
        streams=[stream],
        label_fraction=label_fraction,
        seed=seed,
        as_float=False,
    )


class _Indexed(torch.utils.data.Dataset):
    """The dataset, with each batch's indices passed along to :func:`_collate`."""

    def __init__(self, ds: S2IDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, indices: list[int]) -> tuple[Any, np.ndarray]:
        return self.ds.__getitems__(indices), np.asarray(indices, dtype=np.int64)


def _collate(batch: tuple[Any, np.ndarray]) -> tuple[Any, torch.Tensor, torch.Tensor]:
    items, index = batch
    x, y = collate(items)
    if isinstance(items, ItemBatch) and len(items.groups) > 1:  # y follows the geometry groups
        index = index[np.concatenate([pos for pos, _ in items.groups])]
    return x, y, torch.from_numpy(index)


class Batches:
    """Epochs of ``(imgs, y, index)`` on ``device``: imgs (B, 3, size, size) normalised model input.

    ``train``: shuffled, rank-sharded, incomplete last batch dropped; ``augment`` adds the data
    path's temporal crop and 3-D rotation, drawn from a generator reseeded every epoch from
    (seed, epoch, rank) so a resumed run repeats them. Otherwise: every sample once, in order.
    """

    def __init__(
        self,
        ds: S2IDataset,
        batch_size: int,
        input_size: int,
        device: torch.device,
        dist: Dist,
        *,
        train: bool,
        augment: bool = False,
        seed: int = 0,
        workers: int = 0,
    ) -> None:
        self.ds, self.device, self.seed, self.dist = ds, device, seed, dist
        world, rank = (dist.world, dist.rank) if train else (1, 0)
        self.sampler = S2ISampler(
            ds, num_replicas=world, rank=rank, shuffle=train, seed=seed, drop_last=train
        )
        per_rank = len(self.sampler)
        if per_rank == 0:
            raise DatasetRequestError(f"no samples to read ({ds!r})")
        self.batch_size = min(batch_size, per_rank)  # a 1%-label subset may hold fewer than a batch
        self.generator = torch.Generator().manual_seed(seed)
        self.to_input = transforms.ToModelInput.for_dataset(
            ds, size=input_size, train=augment, generator=self.generator
        )
        self.loader = torch.utils.data.DataLoader(
            _Indexed(ds),
            batch_size=self.batch_size,
            sampler=self.sampler,
            collate_fn=_collate,
            drop_last=train,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
        )

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(epoch)
        self.generator.manual_seed(self.seed * 1_000_003 + epoch * 1009 + self.dist.rank)
        for x, y, index in self.loader:
            x = self.to_input(transforms.to_device(x, self.device))[:, 0]
            yield x, y.to(self.device, non_blocking=True), index.to(self.device, non_blocking=True)
