"""The dataset-level results written at finalize: splits and attributes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._version import __version__
from ..specs import JointSpec
from ..urls import is_url
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
    for name, (train, test, path) in official(cfg.input, columns["sample_id"]).items():
        source = f"file {os.path.relpath(path, cfg.input)}"
        if name in splits:
            rule_train, rule_test = splits[name]
            moved = len(np.setxor1d(rule_train, train)) + len(np.setxor1d(rule_test, test))
            source += (f" (the spec's rule puts {moved} sample(s) differently)" if moved
                       else " (equal to the spec's rule)")
        splits[name] = (train, test)
        sources[name] = source
    return splits, sources


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
            "input": str(cfg.input if is_url(cfg.input) else cfg.input.resolve()),
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
