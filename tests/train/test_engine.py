"""Training-loop pieces: the lr schedule, top-k accuracy, non-finite losses, the run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from s2i_train.engine import evaluate, pretrain_one_epoch
from s2i_train.errors import NonFiniteLossError, S2ITrainError
from s2i_train.lr_sched import adjust_learning_rate, lr_at
from s2i_train.rundir import RunDir


def test_warmup_then_half_cosine() -> None:
    assert lr_at(0, 1.0, 0.1, 5, 25) == 0.0
    assert lr_at(2.5, 1.0, 0.1, 5, 25) == pytest.approx(0.5)
    assert lr_at(5, 1.0, 0.1, 5, 25) == pytest.approx(1.0)
    assert lr_at(15, 1.0, 0.1, 5, 25) == pytest.approx(0.55)
    assert lr_at(25, 1.0, 0.1, 5, 25) == pytest.approx(0.1)
    opt = torch.optim.SGD(
        [{"params": [torch.zeros(1)], "lr_scale": 0.5}, {"params": [torch.zeros(1)]}]
    )
    assert adjust_learning_rate(opt, 5, 1.0, 0.0, 5, 25) == pytest.approx(1.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 1.0])


def test_topk_accuracy() -> None:
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    res = evaluate(logits, torch.tensor([0, 1, 1]))
    assert res["top1"] == pytest.approx(100 / 3) and res["top5"] == 100.0 and res["n_test"] == 3


class _NanModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, imgs: torch.Tensor, seeds: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return self.w * math.nan, None, None


def test_non_finite_loss_names_epoch_and_step() -> None:
    model = _NanModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = (torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long), torch.arange(2))
    with pytest.raises(NonFiniteLossError, match="epoch 3, step 0"):
        pretrain_one_epoch(
            model, [batch], 1, opt, lambda o, e: 0.1, 3, 0, torch.device("cpu"), False
        )


def test_run_folder_rules(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r", "pretrain", resume=False, overwrite=False)
    run.log(epoch=0, loss=1.0)
    run.log(epoch=1, loss=0.5)
    with pytest.raises(S2ITrainError, match="--resume"):
        RunDir(tmp_path / "r", "pretrain", resume=False, overwrite=False)
    with pytest.raises(S2ITrainError, match="nothing to resume"):
        RunDir(tmp_path / "r", "pretrain", resume=True, overwrite=False)
    with pytest.raises(S2ITrainError, match="contradict"):
        RunDir(tmp_path / "r", "pretrain", resume=True, overwrite=True)
    run.drop_metrics_after(0)  # a resume from epoch 0 forgets the later line
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0]
    RunDir(tmp_path / "r", "pretrain", resume=False, overwrite=True)
    assert list((tmp_path / "r").iterdir()) == []
