"""Joint specs: one YAML file per skeleton format, loaded into a frozen, validated :class:`JointSpec`.

A spec is the single source of truth about a skeleton layout: joint names in file order, the bone
tree, the five S2I body parts, the centre and alignment joints, how metadata and the label come out
of a sample name, and the standard splits as rules over that metadata. ``docs/SPECS.md`` documents
the schema. Only ``yaml.safe_load`` is used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import SpecError, UnknownFormatError

__all__ = [
    "PART_NAMES", "JointSpec", "SplitRule", "load_spec", "list_specs", "parse_spec_text", "spec_dir",
]

#: The S2I body parts, in the column order of every image.
PART_NAMES: tuple[str, ...] = ("torso", "left_arm", "right_arm", "left_leg", "right_leg")

_TOP_KEYS = {
    "format", "description", "reader", "body_selection", "dims", "joints", "parts", "centre",
    "align", "max_persons", "exclude_lists", "sample_name", "reader_fields", "splits",
    "num_classes", "image",
}
_REQUIRED = ("format", "reader", "dims", "joints", "parts", "centre", "max_persons", "sample_name")
_BODY_SELECTIONS = ("ctrgcn", "first")


def spec_dir() -> Path:
    """Directory holding the built-in ``*.yaml`` specs (source tree or installed data files)."""
    here = Path(__file__).resolve().parent.parent / "skeleton_specs"
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "s2i" / "skeleton_specs"


def list_specs() -> list[str]:
    """Names of the built-in formats, e.g. ``["ntu25", "pku25", "ucla20"]``."""
    return sorted(p.stem for p in spec_dir().glob("*.yaml"))


@dataclass(frozen=True)
class SplitRule:
    """One standard split: a train and a test condition over integer metadata fields.

    A condition maps field -> list of values | ``"even"`` | ``"odd"`` | ``{min, max}`` |
    ``{not: <condition value>}``; all fields of a condition must hold (logical and).
    """

    name: str
    train: Mapping[str, Any]
    test: Mapping[str, Any]

    def indices(self, meta: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Sample indices (int64, ascending) of the train and test parts."""
        return _where(self.train, meta), _where(self.test, meta)


def _match(value: Any, column: np.ndarray) -> np.ndarray:
    if isinstance(value, str):
        return column % 2 == (0 if value == "even" else 1)
    if isinstance(value, Mapping):
        if "not" in value:
            return ~_match(value["not"], column)
        ok = np.ones(column.shape, bool)
        if "min" in value:
            ok &= column >= value["min"]
        if "max" in value:
            ok &= column <= value["max"]
        return ok
    return np.isin(column, np.asarray(value, dtype=np.int64))


def _where(cond: Mapping[str, Any], meta: Mapping[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(meta.values()))) if meta else 0
    ok = np.ones(n, bool)
    for key, value in cond.items():
        ok &= _match(value, np.asarray(meta[key]))
    return np.flatnonzero(ok).astype(np.int64)


@dataclass(frozen=True)
class JointSpec:
    """A validated skeleton format. Joint references are 0-based indices in file order."""

    format: str
    description: str
    reader: str
    body_selection: str
    dims: tuple[str, ...]
    joints: tuple[str, ...]
    parents: tuple[int, ...]
    parts: tuple[tuple[int, ...], ...]
    centre: int
    align_spine: tuple[int, int] | None
    align_shoulders: tuple[int, int] | None
    max_persons: int
    exclude_lists: tuple[str, ...]
    name_pattern: str
    name_values: Mapping[str, Mapping[str, int]]
    label_rule: Mapping[str, Any]
    fields: tuple[str, ...]
    splits: tuple[SplitRule, ...]
    num_classes: int | None
    source: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def column_order(self) -> np.ndarray:
        """Joint index of every S2I column for one person: the parts concatenated, (V,) int64."""
        return np.array([j for part in self.parts for j in part], dtype=np.int64)

    @property
    def part_of_column(self) -> np.ndarray:
        """Part index (0..4, see :data:`PART_NAMES`) of every column for one person, (V,) int8."""
        return np.array([p for p, part in enumerate(self.parts) for _ in part], dtype=np.int8)

    @property
    def parent_array(self) -> np.ndarray:
        """Parent of every joint, the root being its own parent (bone = 0 there), (V,) int64."""
        return np.array([j if p < 0 else p for j, p in enumerate(self.parents)], dtype=np.int64)

    def to_yaml_text(self) -> str:
        """The spec as canonical YAML (stored with every dataset)."""
        return yaml.safe_dump(dict(self.raw), sort_keys=False)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form of the spec: changes iff the spec's content does."""
        text = json.dumps(self.raw, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def parse_name(self, name: str) -> dict[str, int] | None:
        """Metadata fields from a sample name, or ``None`` when the name does not fit the pattern.

        Groups that did not take part in the match (alternatives) become -1. The pattern is
        matched in ASCII mode (``\\d`` is ``[0-9]``), and a field not mapped by ``values`` must
        be ASCII digits that fit 32 bits: ``A００２`` or ``a٠١`` never become metadata, whatever
        the pattern; such names do not match.
        """
        m = _name_regex(self.name_pattern).fullmatch(name)
        if m is None:
            return None
        out: dict[str, int] = {}
        for key, text in m.groupdict().items():
            if text is None:
                out[key] = -1
            elif key in self.name_values:
                mapped = self.name_values[key].get(text)
                if mapped is None:
                    return None
                out[key] = int(mapped)
            elif _ASCII_DIGITS.fullmatch(text) and len(text) <= 10 and int(text) < 2**31:
                out[key] = int(text)  # stored as an int32 column
            else:
                return None
        return out

    def label_of(self, meta: Mapping[str, int], reader_label: int | None = None) -> int | None:
        """0-based class label of a sample from its metadata (or the reader's, if the spec says so)."""
        rule = self.label_rule
        if rule.get("source") == "reader":
            return reader_label
        value = int(meta[rule["field"]])
        if "map" in rule:
            mapped = rule["map"].get(value)
            return None if mapped is None else int(mapped)
        return value + int(rule.get("offset", 0))


_ASCII_DIGITS = re.compile("[0-9]+", re.ASCII)


@functools.lru_cache(maxsize=32)
def _name_regex(pattern: str) -> re.Pattern[str]:
    """A spec's sample-name pattern compiled once, ASCII-only (``\\d`` never matches ``٠``)."""
    return re.compile(pattern, re.ASCII)


def _joint_ref(src: str, key: str, value: Any, index: Mapping[str, int]) -> int:
    if not isinstance(value, str) or value not in index:
        close = [n for n in index if isinstance(value, str) and value.lower() in n]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(src, key, f"unknown joint name {value!r}{hint}")
    return index[value]


def _check_condition(src: str, key: str, cond: Any, fields: Sequence[str]) -> None:
    if not isinstance(cond, Mapping) or not cond:
        raise SpecError(src, key, f"expected a mapping of field -> values, found {cond!r}")
    for fname, value in cond.items():
        if fname not in fields:
            raise SpecError(src, f"{key}.{fname}", f"unknown field {fname!r}; fields: {', '.join(fields)}")
        _check_value(src, f"{key}.{fname}", value)


def _check_value(src: str, key: str, value: Any) -> None:
    if isinstance(value, str):
        if value not in ("even", "odd"):
            raise SpecError(src, key, f"expected 'even', 'odd', a list, min/max or not, found {value!r}")
    elif isinstance(value, Mapping):
        if set(value) == {"not"}:
            _check_value(src, f"{key}.not", value["not"])
        elif not value or not set(value) <= {"min", "max"}:
            raise SpecError(src, key, f"expected keys min/max or not, found {sorted(value)}")
    elif not (isinstance(value, list) and all(isinstance(v, int) for v in value)):
        raise SpecError(src, key, f"expected a list of integers, found {value!r}")


def _parse(raw: Any, src: str) -> JointSpec:
    if not isinstance(raw, Mapping):
        raise SpecError(src, "<top>", f"expected a mapping, found {type(raw).__name__}")
    for key in _REQUIRED:
        if key not in raw:
            raise SpecError(src, key, "missing required key")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise SpecError(src, sorted(unknown)[0], f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")

    joints_raw = raw["joints"]
    if not isinstance(joints_raw, list) or not joints_raw:
        raise SpecError(src, "joints", "expected a non-empty list of {name, parent}")
    names: list[str] = []
    for i, item in enumerate(joints_raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise SpecError(src, f"joints[{i}]", f"expected {{name: str, parent: str|null}}, found {item!r}")
        if item["name"] in names:
            raise SpecError(src, f"joints[{i}].name", f"duplicate joint name {item['name']!r}")
        names.append(item["name"])
    index = {n: i for i, n in enumerate(names)}
    parents = []
    for i, item in enumerate(joints_raw):
        p = item.get("parent")
        parents.append(-1 if p is None else _joint_ref(src, f"joints[{i}].parent", p, index))
    roots = [i for i, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise SpecError(src, "joints", f"expected exactly one root (parent: null), found {len(roots)}")
    for start in range(len(names)):
        seen, j = set(), start
        while j >= 0:
            if j in seen:
                raise SpecError(src, f"joints[{start}].parent", f"cycle in parents through {names[j]!r}")
            seen.add(j)
            j = parents[j]

    parts_raw = raw["parts"]
    if not isinstance(parts_raw, Mapping) or list(parts_raw) != list(PART_NAMES):
        found = list(parts_raw) if isinstance(parts_raw, Mapping) else parts_raw
        raise SpecError(src, "parts", f"expected the parts {list(PART_NAMES)} in this order, found {found}")
    parts: list[tuple[int, ...]] = []
    owner: dict[int, str] = {}
    for pname in PART_NAMES:
        members = parts_raw[pname]
        if not isinstance(members, list) or not members:
            raise SpecError(src, f"parts.{pname}", "expected a non-empty list of joint names")
        idx = []
        for k, jn in enumerate(members):
            j = _joint_ref(src, f"parts.{pname}[{k}]", jn, index)
            if j in owner:
                raise SpecError(src, f"parts.{pname}[{k}]", f"joint {jn!r} repeats (already in {owner[j]})")
            owner[j] = pname
            idx.append(j)
        parts.append(tuple(idx))
    missing = [n for i, n in enumerate(names) if i not in owner]
    if missing:
        raise SpecError(src, "parts", f"joints in no part: {', '.join(missing)}")

    dims = raw["dims"]
    if not (isinstance(dims, list) and 2 <= len(dims) <= 3 and all(isinstance(d, str) for d in dims)):
        raise SpecError(src, "dims", f"expected 2 or 3 axis names, found {dims!r}")
    centre = _joint_ref(src, "centre", raw["centre"], index)
    align = raw.get("align") or {}
    if not isinstance(align, Mapping) or not set(align) <= {"spine", "shoulders"}:
        raise SpecError(src, "align", "expected a mapping with keys spine and/or shoulders")
    pairs: dict[str, tuple[int, int] | None] = {}
    for key in ("spine", "shoulders"):
        pair = align.get(key)
        if pair is None:
            pairs[key] = None
            continue
        if not (isinstance(pair, list) and len(pair) == 2):
            raise SpecError(src, f"align.{key}", f"expected [from_joint, to_joint], found {pair!r}")
        pairs[key] = (
            _joint_ref(src, f"align.{key}[0]", pair[0], index),
            _joint_ref(src, f"align.{key}[1]", pair[1], index),
        )
    max_persons = raw["max_persons"]
    if not isinstance(max_persons, int) or max_persons < 1:
        raise SpecError(src, "max_persons", f"expected a positive integer, found {max_persons!r}")
    selection = raw.get("body_selection", "first")
    if selection not in _BODY_SELECTIONS:
        raise SpecError(src, "body_selection", f"expected one of {_BODY_SELECTIONS}, found {selection!r}")

    sn = raw["sample_name"]
    if not isinstance(sn, Mapping) or "pattern" not in sn or "label" not in sn:
        raise SpecError(src, "sample_name", "expected keys pattern and label")
    try:
        pattern = re.compile(sn["pattern"], re.ASCII)
    except (re.error, TypeError) as exc:
        raise SpecError(src, "sample_name.pattern", f"invalid regular expression: {exc}") from None
    fields = list(pattern.groupindex)
    reader_fields = raw.get("reader_fields") or []
    if not isinstance(reader_fields, list) or not all(isinstance(f, str) for f in reader_fields):
        raise SpecError(src, "reader_fields", f"expected a list of field names, found {reader_fields!r}")
    fields += [f for f in reader_fields if f not in fields]
    values = sn.get("values") or {}
    for key in values:
        if key not in pattern.groupindex:
            raise SpecError(src, f"sample_name.values.{key}", f"no group {key!r} in the pattern")
    label = sn["label"]
    if not isinstance(label, Mapping):
        raise SpecError(src, "sample_name.label", f"expected a mapping, found {label!r}")
    if label.get("source") != "reader":
        if label.get("field") not in fields:
            raise SpecError(src, "sample_name.label.field", f"unknown field {label.get('field')!r}")
        if "map" in label and not isinstance(label["map"], Mapping):
            raise SpecError(src, "sample_name.label.map", "expected a mapping value -> label")

    splits = []
    for sname, rule in (raw.get("splits") or {}).items():
        key = f"splits.{sname}"
        if not isinstance(rule, Mapping) or set(rule) != {"train", "test"}:
            raise SpecError(src, key, "expected exactly the keys train and test")
        _check_condition(src, f"{key}.train", rule["train"], fields)
        _check_condition(src, f"{key}.test", rule["test"], fields)
        splits.append(SplitRule(sname, rule["train"], rule["test"]))

    num_classes = raw.get("num_classes")
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise SpecError(src, "num_classes", f"expected a positive integer, found {num_classes!r}")
    excl = raw.get("exclude_lists") or []
    return JointSpec(
        format=str(raw["format"]),
        description=str(raw.get("description", "")),
        reader=str(raw["reader"]),
        body_selection=selection,
        dims=tuple(dims),
        joints=tuple(names),
        parents=tuple(parents),
        parts=tuple(parts),
        centre=centre,
        align_spine=pairs["spine"],
        align_shoulders=pairs["shoulders"],
        max_persons=max_persons,
        exclude_lists=tuple(excl),
        name_pattern=sn["pattern"],
        name_values={k: dict(v) for k, v in values.items()},
        label_rule=dict(label),
        fields=tuple(fields),
        splits=tuple(splits),
        num_classes=num_classes,
        source=src,
        raw=dict(raw),
    )


def load_spec(name_or_path: str | Path) -> JointSpec:
    """Load a built-in format by name (``"ntu25"``) or a user spec from a ``.yaml`` path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = spec_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UnknownFormatError("format", str(name_or_path), list_specs())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), "<file>", f"cannot read spec: {exc.strerror}") from None
    return parse_spec_text(text, str(path))


def parse_spec_text(text: str, source: str = "<spec>") -> JointSpec:
    """Validate spec YAML held in memory, e.g. the copy every dataset stores in its attributes."""
    try:
        # libyaml's safe loader when present (10x faster: a conversion loads its spec up front,
        # serially); a document it rejects is parsed again in Python for the usual message.
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(source, "<yaml>", f"not valid YAML: {exc}") from None
    return _parse(raw, source)
