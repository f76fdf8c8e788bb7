"""S2ISampler: exactly once per epoch over ranks, disjoint, seeded, exact mid-epoch resumption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s2i_train.data import S2IDataset, S2ISampler, make_loader
from s2i_train.errors import DatasetRequestError

from .conftest import Datasets

REPO = Path(__file__).resolve().parents[2]


class Sized:
    """A dataset stand-in: only its length (and optionally shards) matters to the sampler."""

    def __init__(self, n: int, shard: int = 0) -> None:
        self.n, self.shard = n, shard

    def __len__(self) -> int:
        return self.n

    def shard_ids(self) -> np.ndarray:
        return np.arange(self.n) // self.shard


@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("locality", [False, True])
def test_ranks_are_disjoint_and_cover_every_sample_once(
    replicas: int, drop_last: bool, locality: bool
) -> None:
    n = 100
    for epoch in (0, 1):
        per_rank = []
        for rank in range(replicas):
            s = S2ISampler(
                Sized(n, 16),
                replicas,
                rank,
                seed=5,
                drop_last=drop_last,
                shard_locality=locality,
            )
            s.set_epoch(epoch)
            got = list(s)
            assert len(got) == len(s)
            per_rank.append(got)
        flat = [i for r in per_rank for i in r]
        assert len(flat) == len(set(flat))  # disjoint, no repeats
        if drop_last:
            assert {len(r) for r in per_rank} == {n // replicas}
            assert len(flat) == n - n % replicas
        else:
            assert sorted(flat) == list(range(n))  # every sample exactly once
            assert max(map(len, per_rank)) - min(map(len, per_rank)) <= 1


def test_order_is_seeded_per_epoch_and_unshuffled_is_in_order() -> None:
    a, b = S2ISampler(Sized(50), seed=1), S2ISampler(Sized(50), seed=1)
    assert list(a) == list(b) != list(range(50))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(50))
    assert list(S2ISampler(Sized(50), seed=2)) != first
    assert list(S2ISampler(Sized(10), shuffle=False)) == list(range(10))
    assert list(S2ISampler(Sized(10), 3, 1, shuffle=False)) == [1, 4, 7]


def test_shard_locality_keeps_batches_on_few_shards() -> None:
    n, shard = 4096, 256
    plain = S2ISampler(Sized(n, shard), seed=0)
    local = S2ISampler(Sized(n, shard), seed=0, shard_locality=True)
    assert local.window == 4 * shard

    def shards_per_batch(order: list[int]) -> float:
        return float(
            np.mean([len(set(np.array(order[a : a + 64]) // shard)) for a in range(0, n, 64)])
        )

    assert sorted(local) == list(range(n))
    assert shards_per_batch(list(local)) <= 5 < shards_per_batch(list(plain))
    with pytest.raises(DatasetRequestError, match="shard_ids"):
        S2ISampler(list(range(5)), shard_locality=True)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 200),
    replicas=st.integers(1, 4),
    data=st.data(),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 5),
    drop_last=st.booleans(),
    locality=st.booleans(),
)
def test_resume_mid_epoch_yields_exactly_the_unseen_samples(
    n: int,
    replicas: int,
    data: st.DataObject,
    seed: int,
    epoch: int,
    drop_last: bool,
    locality: bool,
) -> None:
    rank = data.draw(st.integers(0, replicas - 1))
    kw = {"seed": seed, "drop_last": drop_last, "shard_locality": locality}
    s = S2ISampler(Sized(n, 7), replicas, rank, **kw)
    s.set_epoch(epoch)
    full = list(s)
    cut = data.draw(st.integers(0, len(full)))
    it = iter(s)
    seen = [next(it) for _ in range(cut)]
    state = s.state_dict()
    resumed = S2ISampler(Sized(n, 7), replicas, rank, **kw)
    resumed.load_state_dict(state)
    resumed.set_epoch(epoch)  # the loop's usual call is a no-op for the resumed epoch
    assert len(resumed) == len(full) - cut or cut == len(full)  # what the next pass yields
    rest = list(resumed)
    assert seen + rest == full
    resumed.set_epoch(epoch + 1)
    assert len(list(resumed)) == len(full)


def test_resume_in_a_new_process(tmp_path: Path) -> None:
    s = S2ISampler(Sized(1000), num_replicas=3, rank=2, seed=11)
    s.set_epoch(4)
    it = iter(s)
    seen = [next(it) for _ in range(123)]
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(s.state_dict()))
    code = (
        "import json, sys\n"
        "from s2i_train.data import S2ISampler\n"
        "s = S2ISampler(range(1000), num_replicas=3, rank=2, seed=11)\n"
        "s.load_state_dict(json.load(open(sys.argv[1])))\n"
        "print(json.dumps(list(s)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(state_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=True,
    )
    rest = json.loads(out.stdout)
    s2 = S2ISampler(Sized(1000), num_replicas=3, rank=2, seed=11)
    s2.set_epoch(4)
    assert seen + rest == list(s2)
    assert not set(seen) & set(rest)


def test_resume_through_a_dataloader_with_prefetching_workers(
    datasets: Datasets,
) -> None:
    ds = S2IDataset(datasets.ntu, read="shard", as_float=False)
    sampler = S2ISampler(ds, seed=3)
    loader = make_loader(ds, batch_size=5, sampler=sampler, workers=2, context="fork")
    sampler.set_epoch(2)
    seen = []
    for step, (_, y) in enumerate(loader):
        seen.append(y)
        if step == 3:
            state = sampler.state_dict(consumed=(step + 1) * 5)
            break
    assert sampler.state_dict()["consumed"] > 20  # the workers drew indices ahead of the loop
    fresh = S2ISampler(ds, seed=3)
    fresh.load_state_dict(state)
    fresh.set_epoch(2)
    rest = [y for _, y in make_loader(ds, batch_size=5, sampler=fresh)]
    labels = torch.cat(seen + rest).numpy()
    expect = S2ISampler(ds, seed=3)
    expect.set_epoch(2)
    np.testing.assert_array_equal(labels, ds.labels[list(expect)])


def test_bad_arguments_and_mismatched_states_are_refused() -> None:
    with pytest.raises(DatasetRequestError, match="rank must be in 0..1"):
        S2ISampler(Sized(10), num_replicas=2, rank=2)
    with pytest.raises(DatasetRequestError, match="num_replicas"):
        S2ISampler(Sized(10), num_replicas=0)
    state = S2ISampler(Sized(10), seed=1).state_dict()
    with pytest.raises(DatasetRequestError, match="seed: saved 1, now 2"):
        S2ISampler(Sized(10), seed=2).load_state_dict(state)
    with pytest.raises(DatasetRequestError, match="num_samples: saved 10, now 11"):
        S2ISampler(Sized(11), seed=1).load_state_dict(state)
    with pytest.raises(DatasetRequestError, match="consumed must be in 0..10"):
        S2ISampler(Sized(10)).state_dict(consumed=11)
