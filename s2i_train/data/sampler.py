"""``S2ISampler``: seeded, distributed, exactly resumable order of dataset indices."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch

from ..errors import DatasetRequestError

__all__ = ["S2ISampler"]

_STATE_VERSION = 1


class S2ISampler(torch.utils.data.Sampler[int]):
    """Per-epoch order of a dataset's indices for one of ``num_replicas`` ranks.

    Each epoch's order is a pure function of ``(seed, epoch)``: a permutation of all indices
    (or ``range(N)`` without ``shuffle``), dealt to ranks round-robin. Over the ranks of one epoch
    every sample appears exactly once; with ``drop_last`` the last ``N % num_replicas`` samples of
    the permutation are left out so every rank gets the same count (without it, ranks differ by at
    most one sample and nothing is repeated).

    Resumption is exact: :meth:`state_dict` records the epoch and how many of this rank's indices
    the training loop has consumed; a sampler in a new process given it by :meth:`load_state_dict`
    yields exactly the rest of that epoch. A ``DataLoader`` with workers draws indices ahead of
    the loop (``prefetch_factor`` batches per worker), so pass ``consumed`` (samples processed in
    this epoch on this rank) to :meth:`state_dict`; without it the count of indices handed out is
    used, which is exact only for a loader without workers or direct iteration.

    ``shard_locality`` orders each epoch for a dataset read from files: shards in a random order,
    each shard's samples shuffled, then samples shuffled within consecutive windows of ``window``
    indices (default: four shards' worth), so a batch touches a few shards and reads long runs.
    Use it for image datasets that do not fit in memory; the in-memory path does not need it.

    Call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        *,
        shard_locality: bool = False,
        window: int | None = None,
    ) -> None:
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise DatasetRequestError(
                f"num_replicas must be a positive integer, found {num_replicas!r}"
            )
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise DatasetRequestError(f"rank must be in 0..{num_replicas - 1}, found {rank!r}")
        if not isinstance(seed, int) or seed < 0:
            raise DatasetRequestError(f"seed must be a non-negative integer, found {seed!r}")
        self.num_samples_total = len(dataset)
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.shard_locality = shard_locality
        self._shards: np.ndarray | None = None
        if shard_locality:
            shard_ids = getattr(dataset, "shard_ids", None)
            if shard_ids is None:
                raise DatasetRequestError("shard_locality needs a dataset with shard_ids()")
            self._shards = np.asarray(shard_ids(), dtype=np.int64)
            if len(self._shards) != self.num_samples_total:
                raise DatasetRequestError("shard_ids() must give one shard per dataset item")
            if window is None:
                per_shard = (
                    np.bincount(self._shards - self._shards.min()).max() if len(self._shards) else 1
                )
                window = 4 * int(per_shard)
        if window is not None and (not isinstance(window, int) or window < 1):
            raise DatasetRequestError(f"window must be a positive integer, found {window!r}")
        self.window = window
        self.epoch = 0
        self._start = 0  # where the next pass starts in this rank's epoch (load_state_dict)
        self._handed = 0  # indices of the current epoch handed out so far

    # ------------------------------------------------------------------ the order

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The whole epoch's order over all ranks (before dealing), int64."""
        n = self.num_samples_total
        if not self.shuffle:
            order = np.arange(n, dtype=np.int64)
        else:
            rng = np.random.default_rng((self.seed, epoch))
            if self._shards is None:
                order = rng.permutation(n).astype(np.int64)
            else:
                order = self._locality_order(rng)
        if self.drop_last:
            order = order[: n - n % self.num_replicas]
        return order

    def _locality_order(self, rng: np.random.Generator) -> np.ndarray:
        assert self._shards is not None and self.window is not None
        by_shard = np.argsort(self._shards, kind="stable")
        bounds = np.flatnonzero(np.diff(self._shards[by_shard])) + 1
        runs = np.split(by_shard, bounds) if len(by_shard) else []
        parts = [rng.permutation(runs[s]) for s in rng.permutation(len(runs))]
        order = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        for a in range(0, len(order), self.window):
            order[a : a + self.window] = rng.permutation(order[a : a + self.window])
        return order

    def rank_indices(self, epoch: int | None = None) -> np.ndarray:
        """This rank's indices of ``epoch`` (default the current one), in order."""
        return self.epoch_order(self.epoch if epoch is None else epoch)[
            self.rank :: self.num_replicas
        ]

    # ------------------------------------------------------------------ Sampler protocol

    def __iter__(self) -> Iterator[int]:
        # not a generator itself: the count restarts when the pass is created, not at its first item
        indices = self.rank_indices()[self._start :].tolist()
        self._handed = self._start
        return self._pass(indices)

    def _pass(self, indices: list[int]) -> Iterator[int]:
        for i in indices:
            self._handed += 1
            yield i
        self._start = 0  # a finished pass: iterating again without set_epoch repeats the epoch

    def __len__(self) -> int:
        """Indices the next pass yields: this rank's share of an epoch, less a resumed part."""
        n = self.num_samples_total
        total = n - n % self.num_replicas if self.drop_last else n
        return len(range(self.rank, total, self.num_replicas)) - self._start

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` (a no-op for the epoch a loaded state resumes)."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self._start = self._handed = 0

    # ------------------------------------------------------------------ resumption

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """Where this rank is: epoch and samples of it consumed (``consumed`` overrides the count
        of indices handed out; counted from the start of the epoch, resumed part included)."""
        done = self._handed if consumed is None else int(consumed)
        if not 0 <= done <= len(self.rank_indices()):
            raise DatasetRequestError(
                f"consumed must be in 0..{len(self.rank_indices())} for this rank, found {done}"
            )
        return {"version": _STATE_VERSION, "epoch": self.epoch, "consumed": done, **self._identity()}

    def _identity(self) -> dict[str, Any]:
        """What a state must agree on to be resumed by this sampler (same order of samples)."""
        return {
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "shard_locality": self.shard_locality,
            "window": self.window,
            "num_samples": self.num_samples_total,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration yields this rank's not yet consumed indices of the epoch.

        Raises:
            DatasetRequestError: the state was taken with another dataset size, seed or layout of
                ranks, so resuming would not yield the unseen samples.
        """
        mine = self._identity()
        if state.get("version") != _STATE_VERSION:
            raise DatasetRequestError(
                f"sampler state version {state.get('version')!r}, expected {_STATE_VERSION}"
            )
        differ = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if differ:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differ.items())
            raise DatasetRequestError(f"sampler state does not match this sampler ({detail})")
        self.epoch = int(state["epoch"])
        self._start = self._handed = int(state["consumed"])
