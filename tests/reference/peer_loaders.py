"""Test twins of how pyskl and CTR-GCN load their data, written from their loading code:
export round trips are checked through these, not through s2i."""

from __future__ import annotations

import pickle

import numpy as np


def pyskl_load(ann_file, split: str) -> list[dict]:
    """pyskl ``BaseDataset.load_annotations`` + ``PoseDataset``'s split filter: the annotations
    whose identifier (``filename`` if present, else ``frame_dir``) is in ``split``."""
    with open(ann_file, "rb") as fh:
        data = pickle.load(fh)
    split_map, data = data["split"], data["annotations"]
    identifier = "filename" if "filename" in data[0] else "frame_dir"
    members = set(split_map[split])
    return [x for x in data if x[identifier] in members]


def pyskl_format_gcn_input(results: dict, num_person: int) -> np.ndarray:
    """pyskl ``FormatGCNInput`` (one clip): keypoint (+ score channel for 2-D), persons padded
    with zeros or cut to ``num_person``; returns (1, M, T, V, C)."""
    keypoint = results["keypoint"]
    if "keypoint_score" in results:
        keypoint = np.concatenate((keypoint, results["keypoint_score"][..., None]), axis=-1)
    cur = keypoint.shape[0]
    if cur < num_person:
        pad = np.zeros((num_person - cur,) + keypoint.shape[1:], dtype=keypoint.dtype)
        keypoint = np.concatenate((keypoint, pad), axis=0)
    elif cur > num_person:
        keypoint = keypoint[:num_person]
    m, t, v, c = keypoint.shape
    return keypoint.reshape((m, 1, t, v, c)).transpose(1, 0, 2, 3, 4)


def ctrgcn_load(npz_path, split: str, persons: int, joints: int, dims: int):
    """CTR-GCN ``feeders/feeder_ntu.Feeder.load_data``: (N, C, T, V, M) data, labels from the
    one-hot rows, and the per-sample valid frame count of ``__getitem__``."""
    npz = np.load(npz_path)
    data = npz[f"x_{split}"]
    label = np.where(npz[f"y_{split}"] > 0)[1]
    n, t, _ = data.shape
    data = data.reshape((n, t, persons, joints, dims)).transpose(0, 4, 1, 3, 2)
    valid = [int(np.sum(d.sum(0).sum(-1).sum(-1) != 0)) for d in data]
    return data, label, valid
