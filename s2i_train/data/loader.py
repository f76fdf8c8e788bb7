"""Batches of an ``S2IDataset``: a ``DataLoader`` on the batched read path, or reader threads.

Worker processes hand every batch to the training process through a fresh shared-memory block
(as ``default_collate`` does); on the 2-core dev VM allocating and filling one costs about as much
as reading the batch (benchmarks/RESULTS.md, "Training loader"). Threads in the training process
avoid that copy: the readers spend their time in ``preadv``, crc32c, zstd/blosc and torch copies,
which release the GIL, so ``threads=2..4`` overlap reading with the training step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from ..errors import DatasetRequestError
from .dataset import collate

__all__ = ["ThreadLoader", "make_loader"]


def _pin(batch: Any) -> Any:
    """``batch`` with every tensor in page-locked memory (tuples and lists kept)."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, (list, tuple)):
        return type(batch)(_pin(b) for b in batch)
    return batch


class ThreadLoader:
    """Batches read by ``threads`` background threads, ``prefetch`` batches ahead, in order.

    ``dataset`` is an :class:`~s2i_train.data.S2IDataset` or any dataset (its ``__getitems__``
    when it has one, else one item at a time), ``collate_fn`` makes a batch of what it returns.

    Iterating it draws one pass of ``sampler`` (call ``sampler.set_epoch`` before each epoch, as
    with a ``DataLoader``); ``len`` is the number of batches of that pass.
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset[Any],
        batch_size: int,
        sampler: torch.utils.data.Sampler[int] | None = None,
        threads: int = 2,
        prefetch: int | None = None,
        drop_last: bool = False,
        pin_memory: bool = False,
        collate_fn: Callable[[Any], Any] = collate,
    ) -> None:
        if threads < 1:
            raise DatasetRequestError(f"threads must be >= 1, found {threads}")
        self.dataset = dataset
        self.sampler = (
            sampler if sampler is not None else torch.utils.data.SequentialSampler(dataset)
        )
        self.batch_sampler = torch.utils.data.BatchSampler(self.sampler, batch_size, drop_last)
        self.threads = threads
        self.prefetch = prefetch if prefetch is not None else 2 * threads
        self.pin_memory = pin_memory
        self.collate_fn = collate_fn

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def _fetch(self, indices: list[int]) -> Any:
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(indices) if getitems else [self.dataset[i] for i in indices]
        batch = self.collate_fn(items)
        return _pin(batch) if self.pin_memory else batch

    def __iter__(self) -> Iterator[Any]:
        pending: deque[Future[Any]] = deque()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="s2i-loader") as pool:
            try:
                for indices in self.batch_sampler:
                    pending.append(pool.submit(self._fetch, indices))
                    if len(pending) > self.prefetch:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()


def make_loader(
    dataset: torch.utils.data.Dataset[Any],
    batch_size: int,
    sampler: torch.utils.data.Sampler[int] | None = None,
    *,
    workers: int = 0,
    threads: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    context: str | None = None,
    prefetch_factor: int | None = None,
    collate_fn: Callable[[Any], Any] = collate,
) -> torch.utils.data.DataLoader | ThreadLoader:
    """Batches ``(x, y)`` of ``dataset`` through its batched read path (``__getitems__`` +
    :func:`collate`).

    ``workers > 0``: a ``DataLoader`` with that many worker processes (``context`` is the start
    method, ``"fork"``/``"spawn"``/``"forkserver"``; workers persist across epochs, so each
    opens its files once). ``threads > 0``: a :class:`ThreadLoader` in this process. Neither: a
    ``DataLoader`` reading in this process when asked for a batch. ``collate_fn`` receives what
    ``dataset.__getitems__`` returns (a wrapper dataset may add, e.g., the batch's indices).
    """
    if workers and threads:
        raise DatasetRequestError("choose worker processes or reader threads, not both")
    if threads:
        return ThreadLoader(
            dataset,
            batch_size,
            sampler,
            threads,
            prefetch_factor,
            drop_last,
            pin_memory,
            collate_fn,
        )
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False if sampler is not None else None,
        num_workers=workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        multiprocessing_context=context if workers > 0 else None,
        prefetch_factor=prefetch_factor if workers > 0 else None,
    )
