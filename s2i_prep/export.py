"""``export()``: the selected skeletons of a converted dataset, for pyskl or CTR-GCN code bases.

A dataset stores S2I tensors, not skeletons. Export **re-reads the raw input** the dataset was
converted from (its ``source.input``, or another path), with the dataset's stored spec and reader
options, selects the actors exactly as conversion did, and **verifies** every sample: the
re-read skeleton, encoded with the dataset's stored encoding, must equal the stored sample bit
for bit, otherwise export stops (the raw files changed, or another s2i version selects
differently). So an exported skeleton is provably the one the dataset's images were made from.
Why not store the skeletons in the dataset instead: the raw input is the source of truth users
keep anyway; storing ``(M, T, V, C)`` float32 per sample would grow a compact dataset several
fold for a feature most users never call; and the store layout stays untouched. See
docs/EXPORT.md.

Outputs (docs/EXPORT.md has the details):

- ``pyskl``: one annotation pickle ``{"split": {"<split>_train", "<split>_val", ...},
  "annotations": [{"frame_dir", "label", "total_frames", "keypoint" (M, T, V, C) float32,
  "keypoint_score" and "img_shape" for 2-D}]}``; absent joints are 0 (pyskl's padding).
- ``ctrgcn``: per split ``<split>.npz`` with ``x_train`` (N, T, M*V*C) float32 zero-padded,
  ``y_train`` one-hot, ``x_test``, ``y_test`` (CTR-GCN's NTU layout), plus ``name_train`` and
  ``name_test``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bodies import select_bodies
from .encoding import EncodeConfig, encode
from .errors import S2IError
from .planar import image_rule
from .readers import get_reader, reader_for_inputs
from .skeleton import RawSkeleton, Skeleton
from .specs import JointSpec, parse_spec_text
from .store import open_dataset

__all__ = ["TARGETS", "ExportResult", "export", "exported_skeletons"]

TARGETS = ("pyskl", "ctrgcn")
#: CTR-GCN pads every NTU sample to 300 frames; longer clips raise the padding, never truncate.
CTRGCN_FRAMES = 300


@dataclass(frozen=True)
class ExportResult:
    """What was written: the output paths, samples and splits."""

    outputs: tuple[Path, ...]
    samples: int
    splits: tuple[str, ...]


@dataclass(frozen=True)
class _Exported:
    skel: Skeleton
    label: int
    score: np.ndarray | None  # (M, T, V) for specs whose reader gives joint scores


def exported_skeletons(
    dataset: Path,
    input_path: Path | None = None,
    trust_pickle: bool = False,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[JointSpec, dict[str, Any], list[str], dict[str, _Exported]]:
    """Re-read the raw input of ``dataset``: its spec, attributes, sample ids and, per sample id,
    the selected skeleton (verified against the stored sample unless ``verify`` is false)."""
    with open_dataset(dataset) as ds:
        attrs = dict(ds.attrs)
        ids = [str(s) for s in ds.column("sample_id")]
        labels = ds.column("label").astype(np.int64)
        spec = parse_spec_text(attrs["spec"], f"{dataset} (stored spec)")
        options = dict((attrs.get("convert") or {}).get("reader_options") or {})
        cfg = EncodeConfig.from_dict(attrs["encoding"])
        recorded = attrs["source"].get("inputs") or [attrs["source"]["input"]]
        sources = [Path(input_path)] if input_path is not None else [Path(p) for p in recorded]
        for source in sources:
            if not source.exists():
                raise S2IError(
                    f"{dataset}: its raw input {source} does not exist; export re-reads the raw "
                    "files (give their location with --input)"
                )
        reader_name, spec = reader_for_inputs(tuple(sources), spec)
        options.pop("trust_pickle", None)  # never taken from a file: the user must say it again
        if trust_pickle:
            options["trust_pickle"] = True
        reader = get_reader(reader_name, **{**options, "fields": "all"})
        index = {name: i for i, name in enumerate(ids)}
        found: dict[str, _Exported] = {}
        for raw in _raw_samples(reader, sources, spec, set(ids)):
            i = index[raw.name]
            skel = select_bodies(raw, spec)
            if verify:
                got = encode(skel, spec, cfg)
                stored = ds.sample(i)
                if got.shape != stored.shape or got.tobytes() != np.ascontiguousarray(stored).tobytes():
                    raise S2IError(
                        f"{raw.source}: sample {raw.name} read now does not give the sample stored "
                        f"in {dataset} (the raw input changed since conversion, or this s2i "
                        "version selects or encodes differently); reconvert, or export with "
                        "--no-verify to take the skeletons as they are read now"
                    )
            found[raw.name] = _Exported(skel, int(labels[i]), _selected_scores(raw, skel))
            if progress is not None:
                progress(len(found))
    missing = [n for n in ids if n not in found]
    if missing:
        raise S2IError(
            f"{' + '.join(map(str, sources))}: {len(missing)} sample(s) of {dataset} are not in "
            "the raw input "
            f"(first: {', '.join(missing[:3])}); export needs the input the dataset was made from"
        )
    return spec, attrs, ids, found


def _raw_samples(reader: Any, sources: list[Path], spec: JointSpec,
                 wanted: set[str]) -> Iterator[RawSkeleton]:
    for path in (p for source in sources for p in reader.discover(source)):
        for raw in reader.read(path, spec):
            if raw.name in wanted:
                yield raw


def _selected_scores(raw: RawSkeleton, skel: Skeleton) -> np.ndarray | None:
    """The reader's joint scores of the selected actors and frames, matched by position."""
    score = raw.joint_fields.get("score")
    if score is None:
        return None
    out = np.zeros(skel.joints.shape[:3], np.float32)
    frames = skel.frame_index
    for m in range(skel.num_persons):
        bodies = [b for b in range(raw.joints.shape[0])
                  if np.array_equal(skel.joints[m], raw.joints[b, frames], equal_nan=True)]
        if not bodies:
            raise S2IError(f"{raw.source}: sample {raw.name}: cannot match actor {m} to a body")
        out[m] = np.where(np.isnan(skel.joints[m, ..., 0]), 0.0, score[bodies[0], frames])
    return out


def export(
    dataset: str | Path,
    out: str | Path,
    to: str,
    *,
    splits: tuple[str, ...] = (),
    input_path: str | Path | None = None,
    trust_pickle: bool = False,
    verify: bool = True,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write the skeletons of ``dataset`` as a pyskl pickle (``out`` a ``.pkl``) or CTR-GCN
    arrays (``out`` a folder); ``splits`` limits the splits written (default: all)."""
    if to not in TARGETS:
        raise S2IError(f"export target must be one of {', '.join(TARGETS)}, found {to!r}")
    out = Path(out)
    if to == "pyskl" and out.suffix not in (".pkl", ".pickle"):
        raise S2IError(f"{out}: a pyskl annotation file ends in .pkl")
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise S2IError(f"{out}: exists (use --overwrite to replace it)")
    with open_dataset(dataset) as ds:  # bad split names fail before the raw input is read
        stored = ds.splits()
    unknown = [s for s in splits if s not in stored]
    if unknown:
        raise S2IError(f"{dataset}: no split {unknown[0]!r}; its splits: {', '.join(stored) or 'none'}")
    spec, attrs, ids, found = exported_skeletons(
        Path(dataset), None if input_path is None else Path(input_path), trust_pickle, verify,
        progress,
    )
    chosen = {name: stored[name] for name in (splits or tuple(stored))}
    if to == "pyskl":
        doc = _pyskl(spec, ids, found, chosen)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(doc, fh, protocol=4)
        tmp.replace(out)
        return ExportResult((out,), len(doc["annotations"]), tuple(chosen))
    if not chosen:
        raise S2IError(f"{dataset}: has no split; CTR-GCN arrays are written per split")
    out.mkdir(parents=True, exist_ok=True)
    classes = int(attrs.get("class_count") or max(e.label for e in found.values()) + 1)
    paths = []
    for name, parts in chosen.items():
        arrays = {}
        for part, key in (("train", "train"), ("test", "test")):
            idx = parts.get(part)
            names = [ids[i] for i in (idx if idx is not None else [])]
            x, y = _ctrgcn_arrays(spec, [found[n] for n in names], classes)
            arrays[f"x_{key}"], arrays[f"y_{key}"] = x, y
            arrays[f"name_{key}"] = np.array(names, dtype=str)
        path = out / f"{name}.npz"
        np.savez(path, **arrays)
        paths.append(path)
    return ExportResult(tuple(paths), len(found), tuple(chosen))


def _pyskl(
    spec: JointSpec, ids: list[str], found: Mapping[str, _Exported],
    splits: Mapping[str, Mapping[str, np.ndarray | None]],
) -> dict[str, Any]:
    planar = len(spec.dims) == 2
    rule = image_rule(spec) if planar else None
    annotations = []
    for name in ids:
        e = found[name]
        kp = np.nan_to_num(e.skel.joints, nan=0.0).astype(np.float32)
        ann: dict[str, Any] = {"frame_dir": name, "label": e.label, "total_frames": kp.shape[1]}
        if planar:
            width, height = _image_size(rule, e.skel.meta)
            if rule.units == "normalized":  # pyskl works in pixels of img_shape
                kp = kp * np.array([width, height], np.float32)
            score = e.score if e.score is not None else (~np.isnan(e.skel.joints[..., 0])).astype(np.float32)
            ann.update(img_shape=(height, width), original_shape=(height, width),
                       keypoint_score=score)
        ann["keypoint"] = kp
        annotations.append(ann)
    split = {}
    for sname, parts in splits.items():
        for part, suffix in (("train", "train"), ("test", "val")):
            idx = parts.get(part)
            split[f"{sname}_{suffix}"] = [ids[i] for i in (idx if idx is not None else [])]
    return {"split": split, "annotations": annotations}


def _image_size(rule: Any, meta: Mapping[str, int]) -> tuple[int, int]:
    width, height = int(meta.get("img_w", -1)), int(meta.get("img_h", -1))
    if width > 0 and height > 0:
        return width, height
    if rule.size is None:
        return 1, 1
    return rule.size


def _ctrgcn_arrays(
    spec: JointSpec, samples: list[_Exported], classes: int
) -> tuple[np.ndarray, np.ndarray]:
    persons, joints, dims = spec.max_persons, spec.num_joints, len(spec.dims)
    frames = max([CTRGCN_FRAMES] + [e.skel.num_frames for e in samples])
    x = np.zeros((len(samples), frames, persons, joints, dims), np.float32)
    y = np.zeros((len(samples), classes), np.float32)
    for i, e in enumerate(samples):
        kp = np.nan_to_num(e.skel.joints, nan=0.0)  # (M, T, V, C)
        x[i, : kp.shape[1], : kp.shape[0]] = kp.transpose(1, 0, 2, 3)
        y[i, e.label] = 1.0
    return x.reshape(len(samples), frames, persons * joints * dims), y
