"""pyskl / mmaction2 annotation pickles (``pyskl_pickle``): many samples in one ``.pkl``.

The layout (pyskl's NTU-60/120 3-D and 2-D, Kinetics-400, FineGYM, UCF101, HMDB51 files)::

    {"split": {name: [frame_dir, ...]},
     "annotations": [{"frame_dir": str, "label": int, "keypoint": (M, T, V, C) float,
                      "keypoint_score": (M, T, V) (2-D), "img_shape": (H, W) (2-D),
                      "total_frames": int, ...}, ...]}

(an older form is the bare list of annotations, without ``split``). The spec is the user's
(``--format ntu25``) or inferred from ``V`` and ``C`` (:func:`infer_format`); the input is the
pickle, whatever reader the spec names for raw files.

**Trust.** Unpickling can run arbitrary code named in the file, so this reader refuses to load
anything unless it is built with ``trust_pickle=True`` (``--trust-pickle``). Even then it loads
through an unpickler that resolves only the classes an annotation file needs (numpy arrays,
dtypes and scalars, a few builtins): a pickle asking for anything else is refused, naming it.

**Persons and frames.** The persons of an annotation are taken in their order (pyskl has already
chosen and ordered them; the caller converts with body selection ``first``, see
:func:`input_spec`). A person is absent in a frame where pyskl padded it: all coordinates exactly
0 (3-D), or every ``keypoint_score`` 0 (2-D); a 2-D joint with score 0 is absent. Non-finite
coordinates are an error. ``img_shape`` becomes the ``img_w``/``img_h`` metadata that scales 2-D
coordinates (planar.py).

**Splits.** The pickle's ``split`` becomes the dataset's splits (:meth:`official_splits`):
``<p>_train`` with ``<p>_val`` or ``<p>_test`` is split ``<p>`` (pyskl's ``xsub_train`` and
``xsub_val`` give ``xsub``); ``train`` with ``val`` or ``test`` is split ``default``; a list
without a partner is a split of that name with an empty test part.

A whole pickle is one input file: an annotation that breaks the layout rejects the file, naming
the annotation; an annotation without any person is an empty sample (skipped and reported).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParseError, ReadError, S2IError, SourceLocation
from ..skeleton import RawSkeleton
from ..specs import JointSpec
from . import check_fields, register_reader
from .rawfile import read_bytes

__all__ = [
    "PysklPickleReader", "PICKLE_SUFFIXES", "TRUST_MESSAGE", "is_pickle_input", "infer_format",
    "input_spec", "load_pickle", "pair_splits",
]

PICKLE_SUFFIXES = (".pkl", ".pickle")
TRUST_MESSAGE = (
    "{path}: refusing to load a pickle without --trust-pickle: unpickling runs whatever code the "
    "file names, so a pickle from an untrusted source can take over this machine. Pass "
    "--trust-pickle (Python: trust_pickle=True) only for pickles you trust, such as pyskl's or "
    "mmaction2's published annotation files."
)
#: (V, C) of the first annotation's keypoint -> shipped format.
INFERRED = {
    (25, 3): "ntu25", (17, 2): "coco17", (18, 2): "openpose18", (20, 3): "ucla20",
    (13, 3): "toyota13", (13, 2): "toyota13_2d",
}
#: What the restricted unpickler resolves: everything an annotation pickle is made of.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("builtins", "bytearray"), ("builtins", "slice"),
}
#: Bound on an annotation pickle (whole-dataset pickles are several GB).
_MAX_PICKLE_BYTES = 64 << 30
_CACHE: dict[tuple[str, int, int], tuple[list[dict], dict[str, list[str]] | None]] = {}


_INT32_MAX = 2**31 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _shown(x: Any) -> str:
    """A value for a message: arrays by dtype and shape, anything else by a bounded repr."""
    if isinstance(x, np.ndarray):
        return f"a {x.dtype} array of shape {x.shape}"
    return reprlib.repr(x)


def _float32(values: np.ndarray, name: str, fail: Any) -> np.ndarray:
    """``values`` as float32: every value finite and inside float32 (docs/READERS.md), else the
    error names the first bad element."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        pos = tuple(int(k) for k in np.argwhere(bad)[0])
        value = float(values[pos])
        index = f"{name}[{', '.join(map(str, pos))}]"
        if np.isfinite(value):
            raise fail(f"value out of range: {index} = {value!r} is beyond float32 "
                       f"(|x| <= {_FLOAT32_MAX:.8g})")
        raise fail(f"{index} is {value!r}: NaN and infinity are not accepted (docs/READERS.md)")
    return out


def is_pickle_input(path: Path) -> bool:
    """Whether ``path`` is a pickle file given as the whole input."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES


class _AnnotationUnpickler(pickle.Unpickler):
    """Resolves only what an annotation file is made of (after :func:`_check_memo`)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module.startswith("numpy") and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"the pickle asks for {module}.{name}, which an annotation file does not need; "
            "refusing to load it"
        )


def _check_memo(data: bytes) -> None:
    """Refuse memo indices no pickler writes, before the C unpickler sees them.

    The C unpickler grows its memo table to the largest index a ``PUT``/``LONG_BINPUT`` names,
    so four hostile bytes make it allocate gigabytes (a mutated 2.5 KB pickle peaked at 5.6 GB).
    Picklers number memo entries in order, so an index is never beyond the opcodes read so far.
    The scan walks the opcodes only (``pickletools.genops``), about 0.1 s per 100,000 of them.
    """
    for count, (op, arg, pos) in enumerate(pickletools.genops(data)):
        if op.name in ("PUT", "LONG_BINPUT") and isinstance(arg, int) and not 0 <= arg <= count:
            raise ValueError(f"memo index {arg} at byte {pos} is beyond the {count} opcodes before it")


def load_pickle(path: Path, trust: bool) -> tuple[list[dict], dict[str, list[str]] | None]:
    """The annotations and the split dictionary (None for the bare-list form) of ``path``.

    Cached per process and file version, so workers forked after discovery share the load.
    """
    path = Path(path)
    where = SourceLocation(str(path))
    if not trust:
        raise S2IError(TRUST_MESSAGE.format(path=path))
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key in _CACHE:
            return _CACHE[key]
    except OSError as exc:
        raise ReadError(where, f"cannot read file: {exc.strerror}") from None
    # Regular files only (a FIFO would block); annotation pickles of whole datasets reach several
    # GB, so the bound is the machine's problem, not a format limit.
    data = read_bytes(path, limit=_MAX_PICKLE_BYTES)
    try:
        _check_memo(data)
        doc = _AnnotationUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad input file
        raise ParseError(where, f"not a readable annotation pickle: {exc}") from None
    if isinstance(doc, list):
        annotations, split = doc, None
    elif isinstance(doc, Mapping) and "annotations" in doc:
        annotations, split = doc["annotations"], doc.get("split")
    else:
        found = sorted(doc) if isinstance(doc, Mapping) else type(doc).__name__
        raise ParseError(
            where, f"expected {{'split', 'annotations'}} or a list of annotations, found {found}"
        )
    if not isinstance(annotations, list) or not all(isinstance(a, Mapping) for a in annotations):
        raise ParseError(where, "annotations: expected a list of dictionaries")
    if split is not None and not (
        isinstance(split, Mapping)
        and all(isinstance(v, (list, tuple)) and all(isinstance(n, str) for n in v)
                for v in split.values())
    ):
        raise ParseError(where, "split: expected {name: [frame_dir, ...]}")
    if annotations and not any("keypoint" in a for a in annotations):
        keys = sorted({k for a in annotations[:50] for k in a})
        raise ParseError(
            where,
            f"no annotation has a 'keypoint' array (M, T, V, C); the annotations hold only "
            f"{', '.join(keys)}. This looks like a table-of-contents pickle (mmaction2's Kinetics "
            "annotations keep the keypoints in separate files); convert the pickle that carries "
            "'keypoint' (and 'keypoint_score' for 2-D) in every annotation."
        )
    _check_expansion(where, annotations, len(data))
    result = (list(annotations), None if split is None else {k: list(v) for k, v in split.items()})
    _CACHE[key] = result
    return result


def _check_expansion(where: SourceLocation, annotations: list, size: int) -> None:
    """Refuse a pickle that names the same objects over and over (a "pickle bomb").

    A pickle can refer back to an object for a few bytes, so 3 KB can list 100,000 annotations
    sharing one array, which the reader would then expand into 100,000 samples. Real annotation
    files store every array once, with at least ~100 bytes of framing per annotation; the bounds
    (arrays at most twice the file plus 64 MB, one annotation per 64 bytes plus 1,000) are far
    from them."""
    arrays = sum(
        value.nbytes
        for ann in annotations
        for key in ("keypoint", "keypoint_score")
        if isinstance(value := ann.get(key), np.ndarray)
    )
    if arrays > 2 * size + (64 << 20) or len(annotations) > size // 64 + 1000:
        raise ParseError(
            where,
            f"{len(annotations):,} annotations with {arrays:,} bytes of keypoint arrays in a "
            f"{size:,}-byte file: the pickle repeats the same objects by reference, which no "
            "annotation file does; refusing to expand it",
        )


def infer_format(path: Path, trust: bool) -> tuple[str, tuple[int, int]]:
    """The shipped format whose joints and dimensions match the pickle's first keypoint array."""
    annotations, _ = load_pickle(path, trust)
    for ann in annotations:
        kp = ann.get("keypoint")
        if isinstance(kp, np.ndarray) and kp.ndim == 4:
            shape = (int(kp.shape[2]), int(kp.shape[3]))
            if shape in INFERRED:
                return INFERRED[shape], shape
            raise S2IError(
                f"{path}: keypoint arrays have V={shape[0]} joints and C={shape[1]} coordinates; "
                f"no shipped format matches ({', '.join(f'{v}x{c}: {n}' for (v, c), n in INFERRED.items())}); "
                "name a spec with --spec"
            )
    raise S2IError(f"{path}: no annotation has a 4-D keypoint array to infer the format from")


def input_spec(spec: JointSpec) -> JointSpec:
    """The spec as used on pickle input: pyskl already chose and ordered the persons, so body
    selection is ``first`` (recorded in the dataset's copy of the spec)."""
    if spec.body_selection == "first":
        return spec
    return replace(spec, body_selection="first", raw={**spec.raw, "body_selection": "first"})


def pair_splits(split: Mapping[str, Sequence[str]]) -> dict[str, tuple[list[str], list[str]]]:
    """pyskl split lists -> ``{split: (train names, test names)}`` (rules in the module doc)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    used: set[str] = set()
    for name in split:
        prefix = name[: -len("_train")] if name.endswith("_train") else None
        if name == "train":
            prefix = ""
        if prefix is None:
            continue
        for other in ("val", "test"):
            partner = f"{prefix}_{other}" if prefix else other
            if partner in split:
                out[prefix or "default"] = (list(split[name]), list(split[partner]))
                used |= {name, partner}
                break
    for name in split:
        if name not in used:
            out[name] = (list(split[name]), [])
    return out


@register_reader("pyskl_pickle")
class PysklPickleReader:
    """Reads every annotation of a pyskl/mmaction2 pickle; see the module docstring."""

    def __init__(self, fields: str = "all", trust_pickle: bool = False) -> None:
        self.fields = check_fields(fields)
        self.trust_pickle = bool(trust_pickle)

    def discover(self, root: Path) -> list[Path]:
        """The pickle itself, or every ``*.pkl``/``*.pickle`` under a folder; each is loaded
        here (refused without trust), so workers forked afterwards share it."""
        root = Path(root)
        if root.is_file():
            paths = [root]
        else:
            paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
        for path in paths:
            load_pickle(path, self.trust_pickle)
        return paths

    def read(self, path: Path, spec: JointSpec) -> list[RawSkeleton]:
        path = Path(path)
        annotations, _ = load_pickle(path, self.trust_pickle)
        return [self._sample(path, i, ann, spec) for i, ann in enumerate(annotations)]

    def official_splits(
        self, input_path: Path, sample_ids: Sequence[str]
    ) -> dict[str, tuple[np.ndarray, np.ndarray, Path]]:
        """The pickle's ``split`` as sample indices (names not converted are left out)."""
        root = Path(input_path)
        if not root.is_file():
            return {}
        _, split = load_pickle(root, self.trust_pickle)
        if not split:
            return {}
        index = {str(name): i for i, name in enumerate(sample_ids)}

        def positions(names: list[str]) -> np.ndarray:
            return np.array(sorted(index[n] for n in set(names) if n in index), dtype=np.int64)

        return {
            name: (positions(train), positions(test), root / "split")
            for name, (train, test) in pair_splits(split).items()
        }

    def _sample(self, path: Path, i: int, ann: Mapping[str, Any], spec: JointSpec) -> RawSkeleton:
        name = ann.get("frame_dir", ann.get("filename"))
        tag = f"annotation {i}" + (f" ({name})" if isinstance(name, str) and name else "")
        where = SourceLocation(str(path))

        def fail(problem: str) -> ParseError:
            return ParseError(where, f"{tag}: {problem}")

        if not isinstance(name, str) or not name:
            found = _shown(name) if "frame_dir" in ann or "filename" in ann else "no frame_dir"
            raise fail(f"frame_dir: expected a non-empty string, found {found}")
        if "label" not in ann:
            raise fail("no 'label'")
        label = ann["label"]
        if not _is_int(label) or not 0 <= label <= _INT32_MAX:
            raise fail(f"label: expected an integer in 0..{_INT32_MAX}, found {_shown(label)}")
        kp = ann.get("keypoint")
        dims = len(spec.dims)
        if kp is None:
            raise fail("no 'keypoint' array")
        if not (isinstance(kp, np.ndarray) and kp.dtype.kind in "fiu" and kp.ndim == 4):
            raise fail(f"keypoint: expected a 4-D float array (M, T, V, C), found {_shown(kp)}")
        if kp.shape[2] != spec.num_joints or kp.shape[3] != dims:
            raise fail(
                f"keypoint has shape {kp.shape}; spec {spec.format!r} needs "
                f"(M, T, {spec.num_joints}, {dims})"
            )
        total = ann.get("total_frames", kp.shape[1])
        if not _is_int(total) or total != kp.shape[1]:
            raise fail(
                f"total_frames is {_shown(total)} but keypoint holds {kp.shape[1]} frames "
                "(pyskl reads total_frames frames of keypoint)"
            )
        joints = _float32(kp, "keypoint", fail)
        fields: dict[str, np.ndarray] = {}
        score = ann.get("keypoint_score")
        if score is not None:
            if not (isinstance(score, np.ndarray) and score.dtype.kind in "fiu"
                    and score.shape == kp.shape[:3]):
                raise fail(f"keypoint_score: expected a float array of shape {kp.shape[:3]}, "
                           f"found {_shown(score)}")
            score = _float32(score, "keypoint_score", fail)
            np.copyto(joints, np.nan, where=(score == 0)[..., None])  # no index arrays
            if self.fields == "all":
                fields["score"] = score
        else:
            padded = (joints == 0).all(axis=(2, 3))
            np.copyto(joints, np.nan, where=padded[:, :, None, None])
        meta: dict[str, int] = {}
        shape = ann.get("img_shape")
        if shape is not None:
            if not (isinstance(shape, (tuple, list)) and len(shape) == 2
                    and all(_is_int(v) and 0 < v <= _INT32_MAX for v in shape)):
                raise fail(f"img_shape: expected (height, width), positive integers, found {_shown(shape)}")
            meta = {"img_h": int(shape[0]), "img_w": int(shape[1])}
        self._check_label(spec, name, int(label), fail)
        return RawSkeleton(
            name=name,
            source=str(path),
            joints=joints,
            body_ids=tuple(str(m) for m in range(joints.shape[0])),
            joint_fields=fields,
            label=int(label),
            meta=meta,
        )

    @staticmethod
    def _check_label(spec: JointSpec, name: str, label: int, fail: Any) -> None:
        """A spec deriving labels from names (NTU) must agree with the annotation's label."""
        if spec.label_rule.get("source") == "reader":
            return
        meta = spec.parse_name(name)
        if meta is None:
            return  # reported per sample by the pipeline (bad name)
        expected = spec.label_of(meta)
        if expected != label:
            raise fail(f"label {label} disagrees with the name: spec {spec.format!r} gives {expected}")
