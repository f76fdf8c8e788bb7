"""Score fusion: samples matched by id in any order, softmax sums, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2i_train.errors import S2ITrainError
from s2i_train.fusion import fuse


def _scores(folder: Path, logits: np.ndarray, labels: np.ndarray, ids: list[str]) -> Path:
    folder.mkdir()
    np.savez(
        folder / "test_scores.npz",
        logits=logits.astype(np.float32),
        labels=labels,
        index=np.arange(len(labels)),
        sample_ids=np.asarray(ids),
        meta=np.asarray(json.dumps({"kind": "finetune", "stream": folder.name})),
    )
    return folder


def test_fusion_beats_each_stream_when_they_err_on_different_samples(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2, 0])
    ids = ["a", "b", "c", "d"]
    # stream 1 is confidently right on a, b and weakly wrong on c, d; stream 2 the other way round
    s1 = np.array([[5, 0, 0], [0, 5, 0], [0.3, 0, 0], [0, 0.3, 0]])
    s2 = np.array([[0, 0.3, 0], [0.3, 0, 0], [0, 0, 5], [5, 0, 0]])
    order = [2, 0, 3, 1]  # the second run saved its samples in another order
    r1 = _scores(tmp_path / "joint", s1, labels, ids)
    r2 = _scores(tmp_path / "motion", s2[order], labels[order], [ids[i] for i in order])
    res = fuse([r1, r2])
    assert [r["top1"] for r in res["runs"]] == [50.0, 50.0]
    assert res["top1"] == 100.0 and res["gain_over_best"] == 50.0 and res["n_test"] == 4
    assert fuse([r1, r2], mode="logits")["top1"] == 100.0
    assert fuse([r1, r2], weights=[1.0, 0.0])["top1"] == 50.0


def test_fusion_refuses_other_samples_labels_or_classes(tmp_path: Path) -> None:
    labels = np.array([0, 1])
    r1 = _scores(tmp_path / "a", np.eye(2), labels, ["x", "y"])
    r2 = _scores(tmp_path / "b", np.eye(2), labels, ["x", "z"])
    with pytest.raises(S2ITrainError, match="other test samples"):
        fuse([r1, r2])
    r3 = _scores(tmp_path / "c", np.eye(2), labels[::-1], ["x", "y"])
    with pytest.raises(S2ITrainError, match="disagree on the labels"):
        fuse([r1, r3])
    r4 = _scores(tmp_path / "d", np.ones((2, 3)), labels, ["x", "y"])
    with pytest.raises(S2ITrainError, match="classes"):
        fuse([r1, r4])
    with pytest.raises(S2ITrainError, match="at least two"):
        fuse([r1])
    with pytest.raises(S2ITrainError, match="no saved test scores"):
        fuse([r1, tmp_path])
