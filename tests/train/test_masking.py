"""Masking strategies: exact visible counts, whole rows/columns, determinism and batch
independence."""

from __future__ import annotations

import pytest
import torch

from s2i_train.masking import MASKINGS, hash_uniform, keep_count, make_mask, sample_seeds

GRID = (8, 6)


@pytest.mark.parametrize("strategy", sorted(MASKINGS))
@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_every_sample_keeps_the_same_count(strategy: str, ratio: float) -> None:
    seeds = sample_seeds(3, 1, torch.arange(32))
    m = make_mask(strategy, seeds, GRID, ratio)
    k = keep_count(strategy, GRID, ratio)
    assert m.ids_keep.shape == (32, k)
    assert torch.equal(m.mask.sum(1), torch.full((32,), float(48 - k)))
    # ids_keep are exactly the unmasked patches, and ids_restore inverts the shuffle
    visible = torch.zeros_like(m.mask).scatter_(1, m.ids_keep, 1.0)
    assert torch.equal(visible, 1 - m.mask)
    order = torch.argsort(m.ids_restore, dim=1)
    assert torch.equal(order[:, :k].sort(1).values, m.ids_keep.sort(1).values)


def test_random_ratio_is_mae_default() -> None:
    m = make_mask("random", sample_seeds(0, 0, torch.arange(4)), (14, 14), 0.75)
    assert m.ids_keep.shape == (4, 49)


def test_joint_masks_whole_columns_and_temporal_whole_rows() -> None:
    seeds = sample_seeds(0, 0, torch.arange(16))
    cols = make_mask("joint", seeds, GRID, 0.5).mask.view(16, *GRID)
    assert torch.equal(cols, cols[:, :1, :].expand_as(cols))  # same in every row
    assert torch.equal(cols[:, 0].sum(1), torch.full((16,), 3.0))
    rows = make_mask("temporal", seeds, GRID, 0.75).mask.view(16, *GRID)
    assert torch.equal(rows, rows[:, :, :1].expand_as(rows))
    assert torch.equal(rows[:, :, 0].sum(1), torch.full((16,), 6.0))


def test_block_masks_are_contiguous_more_than_random() -> None:
    seeds = sample_seeds(0, 0, torch.arange(64))

    def same_neighbours(strategy: str) -> float:
        m = make_mask(strategy, seeds, (14, 14), 0.5).mask.view(64, 14, 14)
        return float(
            (m[:, 1:, :] == m[:, :-1, :]).float().mean()
            + (m[:, :, 1:] == m[:, :, :-1]).float().mean()
        )

    assert same_neighbours("block") > same_neighbours("random") + 0.3


def test_masks_depend_on_the_sample_not_the_batch() -> None:
    idx = torch.arange(10)
    whole = make_mask("random", sample_seeds(7, 2, idx), GRID, 0.75).mask
    part = make_mask("random", sample_seeds(7, 2, idx[[8, 3]]), GRID, 0.75).mask
    assert torch.equal(part, whole[[8, 3]])
    other_epoch = make_mask("random", sample_seeds(7, 3, idx), GRID, 0.75).mask
    assert not torch.equal(other_epoch, whole)


def test_hash_uniform_is_uniform_and_below_one() -> None:
    u = hash_uniform(sample_seeds(0, 0, torch.arange(256)), 1024)
    assert float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01
    hist = torch.histc(u, bins=10, min=0, max=1) / u.numel()
    assert float((hist - 0.1).abs().max()) < 0.01


def test_bad_requests() -> None:
    seeds = sample_seeds(0, 0, torch.arange(2))
    with pytest.raises(ValueError, match="unknown masking"):
        make_mask("tube", seeds, GRID, 0.75)
    with pytest.raises(ValueError, match="ratio"):
        make_mask("random", seeds, GRID, 1.0)
