"""PKU-MMD reader (``pku_txt``): one skeleton txt per video, cut into one sample per action.

Layout (both phases; the official folder names in brackets are accepted too)::

    <root>/skeleton/<video>.txt  [PKU_Skeleton_Renew]     a frame a line: 2 bodies x V x xyz
    <root>/label/<video>.txt     [Train_Label_PKU_final]  an action a line: label,start,end,conf
    <root>/split/*.txt           [Split]                  official splits: read_pku_split_file()

A body whose 75 numbers are all zero in a frame is absent there (NaN). Clip ``k`` of video ``v`` is
the sample ``v_00k``. The dataset does not say whether ``end`` is inclusive, and the peer pipelines
disagree, so the frame range is an option (:data:`CLIP_BOUNDS`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import (
    EmptySampleError,
    ParseError,
    ReadError,
    S2IError,
    SourceLocation,
    TruncatedError,
)
from ..kernels import parse_text
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .rawfile import encoding_problem, line_ending_problem, read_bytes

__all__ = [
    "CLIP_BOUNDS",
    "DEFAULT_CLIP_BOUNDS",
    "PkuReader",
    "find_label_file",
    "read_pku_label_file",
    "read_pku_skeleton",
    "read_pku_split_file",
]

SKELETON_DIRS = ("skeleton", "PKU_Skeleton_Renew")
LABEL_DIRS = ("label", "Train_Label_PKU_final")
SPLIT_DIRS = ("split", "Split")
#: Official split files (lower case, "-" read as "_") -> the pku25 split they define.
SPLIT_FILES = {
    "cross_subject.txt": "pku1-xsub",
    "cross_view.txt": "pku1-xview",
    "cross_subject_v2.txt": "pku2-xsub",
    "cross_view_v2.txt": "pku2-xview",
}
BODIES = 2
LABEL_COLUMNS = ("label", "start", "end", "confidence")

#: How a label row's ``start, end`` becomes the half-open frame range ``[first, stop)`` of the clip.
CLIP_BOUNDS: dict[str, str] = {
    "half_open": "frames start .. end-1: seq[start:end] (MAMP, ViewAdaptiveLSTM)",
    "one_based": "frames start-1 .. end-1: frames[start-1:end], 1-based inclusive (AimCLR)",
    "closed": "frames start .. end: seq[start:end+1], 0-based inclusive",
}
#: MAMP/ViewAdaptiveLSTM's convention: the PKU v1/v2 arrays that published results are measured
#: on were cut this way, so the same label row gives the same frames here.
DEFAULT_CLIP_BOUNDS = "half_open"
_SHIFT = {"half_open": (0, 0), "one_based": (-1, 0), "closed": (0, 1)}


def _clip_range(bounds: str, start: int, end: int) -> tuple[int, int]:
    d_first, d_stop = _SHIFT[bounds]
    return start + d_first, end + d_stop


@register_reader("pku_txt")
class PkuReader:
    """Reads PKU-MMD skeleton files; ``clip_bounds`` is one of :data:`CLIP_BOUNDS`
    (positions are all the format holds, so ``fields`` changes nothing)."""

    def __init__(self, clip_bounds: str = DEFAULT_CLIP_BOUNDS, fields: str = "all") -> None:
        self.fields = check_fields(fields)
        if clip_bounds not in CLIP_BOUNDS:
            choices = "; ".join(f"{k}: {v}" for k, v in CLIP_BOUNDS.items())
            raise S2IError(f"clip_bounds must be one of {choices}; found {clip_bounds!r}")
        self.clip_bounds = clip_bounds

    def discover(self, root: Path) -> list[Path]:
        """Skeleton txt files under ``root/skeleton`` (or ``PKU_Skeleton_Renew``), or under ``root``
        itself when it is the skeleton folder."""
        root = Path(root)
        dirs = [root / d for d in SKELETON_DIRS if (root / d).is_dir()] or [root]
        return sorted({p for d in dirs for p in d.rglob("*.txt") if p.is_file()})

    def official_splits(
        self, root: Path, sample_ids: Sequence[str]
    ) -> dict[str, tuple[np.ndarray, np.ndarray, Path]]:
        """The splits of the official split files under ``root/split`` (or ``Split``), as sample
        indices ``(train, test, file)``: a clip belongs to its video's list. The pipeline prefers
        them to the spec's rules of the same name. A split file that cannot be read is left out
        with a warning naming the problem (the spec's rule then applies): the splits are taken
        at the end of a conversion, which one bad text file must not lose."""
        videos = np.array([name.rsplit("_", 1)[0] for name in sample_ids], dtype=str)
        found: dict[str, tuple[np.ndarray, np.ndarray, Path]] = {}
        for d in SPLIT_DIRS:
            folder = Path(root) / d
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                name = SPLIT_FILES.get(path.name.lower().replace("-", "_"))
                if name is None or name in found:
                    continue
                try:
                    train, test = read_pku_split_file(path)
                except ReadError as exc:
                    warnings.warn(f"{exc}; split {name} follows the spec's rule instead",
                                  stacklevel=2)
                    continue
                found[name] = (np.flatnonzero(np.isin(videos, train)).astype(np.int64),
                               np.flatnonzero(np.isin(videos, test)).astype(np.int64), path)
        return found

    def read_recording(self, path: Path, spec: JointSpec) -> RawSkeleton:
        """The whole recording (both body slots, every frame) as one sample; needs no label file.

        ``s2i-prep dump --stage raw`` shows this: the file's content before it is cut into clips.
        """
        path = Path(path)
        return RawSkeleton(
            name=path.stem,
            source=str(path),
            joints=read_pku_skeleton(path, spec.num_joints, len(spec.dims)),
            body_ids=tuple(str(b) for b in range(BODIES)),
        )

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        """All labelled clips of one video, in label-file order."""
        path = Path(path)
        frames = read_pku_skeleton(path, spec.num_joints, len(spec.dims))
        label_path = find_label_file(path)
        rows = read_pku_label_file(label_path)
        samples = []
        for k, (line, label, start, end, confidence) in enumerate(rows):
            first, stop = _clip_range(self.clip_bounds, start, end)
            if not 0 <= first < stop <= frames.shape[1]:
                raise ReadError(
                    SourceLocation(str(label_path), line),
                    f"action {k} (start {start}, end {end}) is not inside the recording: "
                    f"clip_bounds {self.clip_bounds!r} gives frames {first}..{stop - 1}, "
                    f"{path.name} has frames 0..{frames.shape[1] - 1}",
                )
            samples.append(
                RawSkeleton(
                    name=f"{path.stem}_{k:03d}",
                    source=str(path),
                    joints=np.ascontiguousarray(frames[:, first:stop]),
                    body_ids=tuple(str(b) for b in range(BODIES)),
                    label=label - 1,
                    meta={"start": start, "end": end, "confidence": confidence, "clip": k},
                )
            )
        return samples


def read_pku_skeleton(path: Path, num_joints: int = 25, dims: int = 3) -> np.ndarray:
    """The whole recording as ``(2, T, V, C)`` float32, NaN where a body's numbers are all zero.

    Every line must hold exactly ``2 * V * C`` finite numbers that fit float32.
    """
    data = read_bytes(path)
    problem = encoding_problem(data)
    if problem:
        raise ParseError(SourceLocation(str(path), 1, 1), problem)
    width = BODIES * num_joints * dims
    table = parse_text.parse_float_rows(data, width)
    if table.status != parse_text.OK:
        where = SourceLocation(str(path), table.row + 1, _column(data, table.offset))
        cause = line_ending_problem(data, table.offset)
        if cause and table.status != parse_text.OUT_OF_RANGE:
            line = data.count(b"\n", 0, cause[0]) + 1
            raise ParseError(SourceLocation(str(path), line, _column(data, cause[0])), cause[1])
        token = parse_text.token_at(data, table.offset)
        if table.status == parse_text.BAD_NUMBER:
            raise ParseError(
                where,
                f"number {table.found + 1} of the line: expected a decimal number, found {token!r}",
            )
        if table.status == parse_text.NONFINITE:
            raise ParseError(
                where,
                f"number {table.found + 1} of the line is {token!r}: NaN and infinity are not "
                "accepted (see docs/READERS.md)",
            )
        if table.status == parse_text.OUT_OF_RANGE:
            raise ParseError(
                where,
                f"value out of range: number {table.found + 1} of the line, {token!r}, is beyond "
                f"float32 (|x| <= {float(np.finfo(np.float32).max):.7g})",
            )
        if table.ends_mid_line:
            raise TruncatedError(
                where,
                f"file ends inside a line: expected {width} numbers "
                f"(2 bodies x {num_joints} joints x {dims}), found {table.found}",
            )
        raise ParseError(
            where,
            f"expected {width} numbers (2 bodies x {num_joints} joints x {dims}), "
            f"found {table.found}",
        )
    if table.values.shape[0] == 0:
        raise EmptySampleError(SourceLocation(str(path)), "file holds no frames")
    joints = table.values.reshape(-1, BODIES, num_joints, dims).transpose(1, 0, 2, 3)
    joints = np.ascontiguousarray(joints)
    joints[(joints == 0).all(axis=(2, 3))] = np.nan
    return joints


def _column(data: bytes, offset: int) -> int:
    """1-based column of a byte offset (computed only when reporting an error)."""
    return offset - data.rfind(b"\n", 0, offset)


def find_label_file(skeleton_path: Path) -> Path:
    """The label file of a skeleton: ``../label/<video>.txt`` (or ``Train_Label_PKU_final``)."""
    base = Path(skeleton_path).parent.parent
    for d in LABEL_DIRS:
        candidate = base / d / Path(skeleton_path).name
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(base / d / Path(skeleton_path).name) for d in LABEL_DIRS)
    raise ReadError(SourceLocation(str(skeleton_path)), f"no label file found (tried {tried})")


_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT32 = (-(2**31), 2**31 - 1)


def read_pku_label_file(path: Path) -> list[tuple[int, int, int, int, int]]:
    """Rows ``(line, label, start, end, confidence)`` of a label file; blank lines are skipped.

    Each row is ``label,start,end,confidence``: ASCII decimal integers that fit 32 bits (blanks
    around commas allowed; no other digits, no ``_`` separators as Python's ``int()`` allows).
    """
    data = read_bytes(path)
    problem = encoding_problem(data)
    if problem:
        raise ParseError(SourceLocation(str(path), 1, 1), problem)
    text = data.decode("utf-8-sig", errors="replace")
    cause = line_ending_problem(data, 0)
    if cause and b"\n" not in data:  # CR-only ends: the file would read as one row
        raise ParseError(SourceLocation(str(path), 1, cause[0] + 1), cause[1])
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = SourceLocation(str(path), number)
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(LABEL_COLUMNS):
            raise ParseError(
                where,
                f"expected {len(LABEL_COLUMNS)} comma-separated integers "
                f"({','.join(LABEL_COLUMNS)}), found {len(fields)} fields: {line!r}",
            )
        if not all(_INTEGER.fullmatch(f) for f in fields):
            raise ParseError(
                where, f"expected integers {','.join(LABEL_COLUMNS)}, found {line.rstrip()!r}"
            )
        for name, f in zip(LABEL_COLUMNS, fields, strict=True):
            if len(f) > 12 or not _INT32[0] <= int(f) <= _INT32[1]:
                shown = f if len(f) <= 24 else f[:21] + "..."
                raise ParseError(
                    where, f"value out of range: {name} {shown} does not fit a 32-bit integer"
                )
        label, start, end, confidence = (int(f) for f in fields)
        if label < 1:
            raise ParseError(where, f"expected a 1-based class label, found {label}")
        if start > end:
            raise ParseError(where, f"start {start} is after end {end}")
        rows.append((number, label, start, end, confidence))
    if not rows:
        raise EmptySampleError(SourceLocation(str(path)), "label file lists no action")
    return rows


_HEADINGS = re.compile(r"\b(training|validataion|validation|testing)\s+videos\s*:", re.I)


def read_pku_split_file(path: Path) -> tuple[list[str], list[str]]:
    """Train and test video names of an official split file (``cross-subject.txt`` etc.).

    The file holds ``Training videos:`` and ``Validataion videos:`` (sic) each followed by a
    comma-separated list; the text is split on the two headings, then on commas, and stripped, so
    CRLF, trailing spaces and the correct spelling all work. A name in both lists is an error.
    """
    data = read_bytes(path)
    problem = encoding_problem(data)
    try:
        if problem:
            raise ValueError(problem)
        text = data.decode("utf-8-sig")
    except ValueError as exc:  # UnicodeDecodeError included
        raise ParseError(SourceLocation(str(path)), f"not a UTF-8 split file: {exc}") from None
    heads = list(_HEADINGS.finditer(text))
    kinds = [m.group(1).lower() == "training" for m in heads]
    if len(heads) != 2 or kinds != [True, False]:
        raise ParseError(
            SourceLocation(str(path)),
            "expected the headings 'Training videos:' then "
            "'Validataion videos:', found "
            f"{[m.group(0).strip() for m in heads]}",
        )
    train_text = text[heads[0].end() : heads[1].start()]
    test_text = text[heads[1].end() :]
    train = [n.strip() for n in train_text.split(",") if n.strip()]
    test = [n.strip() for n in test_text.split(",") if n.strip()]
    both = sorted(set(train) & set(test))
    if both:
        raise ParseError(
            SourceLocation(str(path)), f"{len(both)} videos are in both lists, e.g. {both[0]!r}"
        )
    return train, test
