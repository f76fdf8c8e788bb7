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


def is_pickle_input(path: Path) -> bool:
    """Whether ``path`` is a pickle file given as the whole input."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES


class _AnnotationUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module.startswith("numpy") and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"the pickle asks for {module}.{name}, which an annotation file does not need; "
            "refusing to load it"
        )


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
        raise S2IError(
            f"{path}: no annotation has a 'keypoint' array (M, T, V, C); the annotations hold only "
            f"{', '.join(keys)}. This looks like a table-of-contents pickle (mmaction2's Kinetics "
            "annotations keep the keypoints in separate files); convert the pickle that carries "
            "'keypoint' (and 'keypoint_score' for 2-D) in every annotation."
        )
    result = (list(annotations), None if split is None else {k: list(v) for k, v in split.items()})
    _CACHE[key] = result
    return result


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
        tag = f"annotation {i}" + (f" ({name})" if isinstance(name, str) else "")
        where = SourceLocation(str(path))

        def fail(problem: str) -> ParseError:
            return ParseError(where, f"{tag}: {problem}")

        if not isinstance(name, str) or not name:
            raise fail(f"frame_dir: expected a non-empty string, found {name!r}")
        label = ann.get("label")
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool) or label < 0:
            raise fail(f"label: expected an integer >= 0, found {label!r}")
        kp = ann.get("keypoint")
        dims = len(spec.dims)
        if kp is None:
            raise fail("no 'keypoint' array")
        if not (isinstance(kp, np.ndarray) and kp.dtype.kind == "f" and kp.ndim == 4):
            shape = getattr(kp, "shape", type(kp).__name__)
            raise fail(f"keypoint: expected a float array (M, T, V, C), found {shape}")
        if kp.shape[2] != spec.num_joints or kp.shape[3] != dims:
            raise fail(
                f"keypoint has shape {kp.shape}; spec {spec.format!r} needs "
                f"(M, T, {spec.num_joints}, {dims})"
            )
        joints = kp.astype(np.float32)
        finite = np.isfinite(joints)
        if not finite.all():
            m, t, v, _ = np.argwhere(~finite)[0]
            raise fail(f"keypoint[{m}, {t}, {v}] is not a finite number")
        fields: dict[str, np.ndarray] = {}
        score = ann.get("keypoint_score")
        if score is not None:
            if not (isinstance(score, np.ndarray) and score.shape == kp.shape[:3]):
                raise fail(
                    f"keypoint_score: expected shape {kp.shape[:3]}, "
                    f"found {getattr(score, 'shape', type(score).__name__)}"
                )
            score = score.astype(np.float32)
            joints[score == 0] = np.nan
            if self.fields == "all":
                fields["score"] = score
        else:
            padded = (joints == 0).all(axis=(2, 3))
            joints[padded] = np.nan
        meta: dict[str, int] = {}
        shape = ann.get("img_shape")
        if shape is not None:
            if not (isinstance(shape, (tuple, list)) and len(shape) == 2
                    and all(isinstance(v, (int, np.integer)) and v > 0 for v in shape)):
                raise fail(f"img_shape: expected (height, width), found {shape!r}")
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
