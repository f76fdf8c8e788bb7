"""Multi-stream score fusion (3s-S2I): the saved test scores of separately trained models, one per
stream, summed per sample (softmax probabilities by default, or raw logits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2i_train.engine import evaluate
from s2i_train.errors import S2ITrainError
from s2i_train.supervised import load_scores

__all__ = ["fuse"]


def fuse(
    folders: list[str | Path], mode: str = "softmax", weights: list[float] | None = None
) -> dict[str, Any]:
    """Accuracy of the weighted sum of the runs' test scores, with each run's own accuracy.

    Runs are matched by sample id, so they must have tested the same samples (any order)."""
    if len(folders) < 2:
        raise S2ITrainError("fuse needs at least two evaluation folders")
    if mode not in ("softmax", "logits"):
        raise S2ITrainError(f"fusion mode {mode!r}: choose softmax or logits")
    weights = list(weights) if weights else [1.0] * len(folders)
    if len(weights) != len(folders):
        raise S2ITrainError(f"{len(weights)} weights for {len(folders)} folders")
    runs = [load_scores(f) for f in folders]
    ref = runs[0]
    order_ref = np.argsort(ref["sample_ids"], kind="stable")
    fused = None
    singles = []
    for run, w in zip(runs, weights, strict=True):
        if len(run["sample_ids"]) != len(ref["sample_ids"]) or set(run["sample_ids"]) != set(
            ref["sample_ids"]
        ):
            raise S2ITrainError(
                f"{run['path']} scored other test samples than {ref['path']}; "
                "fuse runs of one split"
            )
        if run["logits"].shape[1] != ref["logits"].shape[1]:
            raise S2ITrainError(
                f"{run['path']} has {run['logits'].shape[1]} classes, "
                f"{ref['path']} {ref['logits'].shape[1]}"
            )
        order = np.argsort(run["sample_ids"], kind="stable")
        if not np.array_equal(run["labels"][order], ref["labels"][order_ref]):
            raise S2ITrainError(
                f"{run['path']} and {ref['path']} disagree on the labels of the same samples"
            )
        logits = torch.from_numpy(run["logits"][order]).double()
        singles.append(
            {
                "path": str(run["path"]),
                "stream": run["meta"].get("stream"),
                "top1": evaluate(logits, torch.from_numpy(run["labels"][order]))["top1"],
            }
        )
        score = logits.softmax(dim=1) if mode == "softmax" else logits
        fused = w * score if fused is None else fused + w * score
    labels = torch.from_numpy(ref["labels"][order_ref])
    metrics = evaluate(fused, labels)  # type: ignore[arg-type]
    best = max(s["top1"] for s in singles)
    return {
        "command": "fuse",
        "mode": mode,
        "weights": weights,
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "n_test": metrics["n_test"],
        "best_single_top1": best,
        "gain_over_best": metrics["top1"] - best,
        "runs": singles,
    }
