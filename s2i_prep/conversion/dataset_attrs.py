"""The dataset-level results written at finalize: splits and attributes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..specs import JointSpec
from ..urls import Url, is_url
from .assembly import Assembler
from .config import NOT_RECORDED, ConvertConfig
from .planning import Plan
from .stages import Stages


def splits_of(
    cfg: ConvertConfig, spec: JointSpec, reader: Any, columns: Mapping[str, list[Any]]
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """The spec's split rules over the metadata, overridden by split files the dataset ships
    (a reader's ``official_splits``); also where each split came from, and any disagreement.
    A rule that selects no sample at all (PKU-MMD's phase-2 splits over phase-1 data) is left
    out rather than written as two empty lists."""
    meta = {key: np.asarray(columns[key], dtype=np.int64) for key in spec.fields}
    splits = {rule.name: rule.indices(meta) for rule in spec.splits}
    splits = {name: parts for name, parts in splits.items() if len(parts[0]) or len(parts[1])}
    sources = {name: "rule" for name in splits}
    official = getattr(reader, "official_splits", None)
    if official is None:
        return splits, sources
    for name, (train, test, source) in _official_splits(official, cfg, columns).items():
        if name in splits:
            rule_train, rule_test = splits[name]
            moved = len(np.setxor1d(rule_train, train)) + len(np.setxor1d(rule_test, test))
            source += (f" (the spec's rule puts {moved} sample(s) differently)" if moved
                       else " (equal to the spec's rule)")
        splits[name] = (train, test)
        sources[name] = source
    return splits, sources


def _official_splits(
    official: Any, cfg: ConvertConfig, columns: Mapping[str, list[Any]]
) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """The split files of every input folder, as ``(train, test, source)``. A split that several
    inputs ship is the union of their lists (PKU-MMD split files list videos, so two folders of
    one release give the split of their union); one that then puts a sample in both train and
    test is left to the spec's rule, with a warning naming the files."""
    merged: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
    for root in cfg.input:
        for name, (train, test, path) in official(root, columns["sample_id"]).items():
            shown = os.path.relpath(path, root) if len(cfg.input) == 1 else str(path)
            if name in merged:
                a, b, files = merged[name]
                train, test, shown_all = np.union1d(a, train), np.union1d(b, test), [*files, shown]
            else:
                shown_all = [shown]
            merged[name] = (train.astype(np.int64), test.astype(np.int64), shown_all)
    out = {}
    for name, (train, test, files) in merged.items():
        both = np.intersect1d(train, test)
        if len(both):
            warnings.warn(
                f"split {name}: the split files {', '.join(files)} put {len(both)} sample(s) in "
                "both train and test; the split follows the spec's rule instead", stacklevel=3)
            continue
        out[name] = (train, test, ("file " if len(files) == 1 else "files ") + ", ".join(files))
    return out


def _shown(source: Path | Url) -> str:
    """An input as recorded: a local path resolved, a URL as given."""
    return str(source if is_url(source) else source.resolve())


def dataset_attrs(
    cfg: ConvertConfig,
    spec: JointSpec,
    stages: Stages,
    asm: Assembler,
    plan: Plan,
) -> dict[str, Any]:
    labels = asm.columns["label"]
    enc = cfg.encode
    return {
        "streams": list(enc.streams),
        "columns": stages.column_layout(spec),
        "encoding": {**enc.to_dict(), "pixel_mapping": stages.pixel_mapping(enc)},
        "spec": spec.to_yaml_text(),
        "spec_sha256": spec.digest(),
        "stats": asm.stats.to_dict(enc.streams),
        "source": {
            # ``input``: the one input (as before several were possible); ``inputs``: every one
            **({"input": _shown(cfg.input[0])} if len(cfg.input) == 1 else {}),
            "inputs": [_shown(p) for p in cfg.input],
            "format": spec.format,
            "files": len(plan.files),
            "bytes": sum(f.nbytes for f in plan.files),
        },
        "s2i_version": __version__,
        "convert": {k: v for k, v in cfg.to_dict().items() if k not in NOT_RECORDED},
        "report": {
            "skipped": [{"path": p, "reason": r, "kind": k} for p, r, k in asm.skipped],
            "counts": {
                "files": len(plan.files),
                "samples": asm.num_samples,
                "skipped": len(asm.skipped),
                "excluded": asm.excluded + plan.excluded,
                "limited": plan.limited,
            },
        },
        # the spec's label space; a spec without one falls back to the labels seen
        "class_count": spec.num_classes or (max(labels) + 1 if labels else 0),
    }
