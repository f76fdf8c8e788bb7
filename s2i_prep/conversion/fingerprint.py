"""What a partial output was started from, and whether ``--resume`` may continue it.

The options (with the spec's digest and the s2i version) are hashed for the writer's check; the
inputs are compared only up to the committed cursor, so files not converted yet may change. A
refusal names the option or counts the converted inputs that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import S2IError
from ..specs import JointSpec
from .config import RUN_ONLY, ConvertConfig
from ..readers import archive
from ..readers.archive import split_member
from .planning import printable
from .tasks import InputFile
from ..urls import Url


def run_options(cfg: ConvertConfig, spec: JointSpec) -> dict[str, Any]:
    """What determines the output besides the input files (hashed into the fingerprint)."""
    opts = {k: v for k, v in cfg.to_dict().items() if k not in RUN_ONLY}
    return {"options": opts, "spec": spec.digest(), "s2i_version": __version__}


def fingerprint(options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def input_entry(cfg: ConvertConfig, f: InputFile) -> list[Any]:
    """``[name, size, mtime]``: the name relative to the input folder, or the member's name in
    an archive input (with the member's own timestamp). With several inputs the name is the
    planned path itself (``b.zip:member``, ``folder/file``), so it says which input it is in.
    An object under a URL input: its key below the prefix, with its version (ETag or time)."""
    if len(cfg.input) > 1:
        return [f.path, f.nbytes, f.mtime_ns]
    source = cfg.input[0]
    prefix = archive.member_ref(source, "")  # a member of the archive input: "a.zip:"
    if f.path.startswith(prefix):  # (a folder's files start with "folder/")
        return [f.path[len(prefix):], f.nbytes, f.mtime_ns]
    if isinstance(source, Url):
        root = str(source) + "/"
        return [f.path[len(root):] if f.path.startswith(root) else source.name,
                f.nbytes, f.mtime_ns]
    # Discovered paths are the input folder joined with a normalised relative path: slicing is
    # relpath's answer then, at a fraction of its cost (it made planning O(ms) per 10 files).
    root = os.fspath(source).rstrip(os.sep) + os.sep
    rest = f.path[len(root):] if f.path.startswith(root) else ""
    if not rest or os.path.normpath(rest) != rest:
        rest = os.path.relpath(f.path, source)
    return [rest, f.nbytes, f.mtime_ns]


class InputDigest:
    """sha256 of the first n input entries, advanced incrementally as shards are committed."""

    def __init__(self, entries: list[list[Any]]) -> None:
        self.entries = entries
        self._h = hashlib.sha256()
        self._n = 0

    def of_first(self, n: int) -> str:
        if n < self._n:  # never happens in order; recompute rather than guess
            self._h, self._n = hashlib.sha256(), 0
        for rel, nbytes, mtime in self.entries[self._n : n]:
            self._h.update(os.fsencode(rel) + f"\t{nbytes}\t{mtime}\n".encode())
        self._n = max(self._n, n)
        return self._h.hexdigest()


def _flag(key: str) -> str:
    name = key.rsplit(".", 1)[-1]
    return {"input": "INPUT", "format": "--format/--spec"}.get(name, "--" + name.replace("_", "-"))


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def resume_check(partial: Path, options: dict[str, Any], entries: list[list[Any]],
                  digest: InputDigest) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """The writer's ``check_resume``: refuse a resume that would not equal a fresh run, naming
    exactly what differs. Options must match; of the inputs, only those already converted (before
    the committed cursor) must be unchanged: files not reached yet may be fixed, added or removed.
    """

    def check(before: dict[str, Any], state: dict[str, Any]) -> None:
        if "options" not in before or "inputs_sha256" not in state:
            return  # an output begun by an older version: the writer's fingerprint decides
        why = []
        old, new = _flat(before["options"].get("options", {})), _flat(options["options"])
        for key in sorted(set(old) | set(new)):
            if key == "input" and old.get(key) != new.get(key):
                why.append(_input_option_change(old.get(key), new.get(key)))
            elif old.get(key) != new.get(key):
                why.append(f"{_flag(key)} was {old.get(key)!r}, now {new.get(key)!r}")
        if before["options"].get("spec") != options["spec"]:
            why.append("the joint spec's content changed")
        if before["options"].get("s2i_version") != options["s2i_version"]:
            why.append(f"s2i was version {before['options'].get('s2i_version')}, "
                       f"now {options['s2i_version']}")
        n = int(state.get("inputs", 0))
        if digest.of_first(n) != state["inputs_sha256"]:
            why.append(_input_changes([list(e) for e in before.get("inputs", [])], entries, n))
        if why:
            raise S2IError(
                f"{partial}: cannot resume: " + "; ".join(why)
                + ". Rerun with the original inputs and options, or pass --overwrite to start over"
            )

    return check


def _input_option_change(old: Any, new: Any) -> str:
    """'input b.zip was added, input c.zip removed' between two recorded input options."""
    def listed(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else list(value or [])

    before, now = listed(old), listed(new)
    added = [p for p in now if p not in before]
    removed = [p for p in before if p not in now]
    parts = [f"input {p} was added" for p in added] + [f"input {p} was removed" for p in removed]
    if len(before) == len(now) == 1:
        return f"INPUT was {before[0]!r}, now {now[0]!r}"
    return ", ".join(parts) + f" (INPUT was {' + '.join(before)}, now {' + '.join(now)})"


def _input_changes(before: list[list[Any]], now: list[list[Any]], n: int) -> str:
    """'of the 1,200 input files already converted, 2 were changed (e.g. ...), 1 removed'."""
    old = {e[0]: e for e in before[:n]}
    new = {e[0]: e for e in now}
    changed = [k for k in old if k in new and new[k] != old[k]]
    removed = [k for k in old if k not in new]
    first_old = set(old)
    added = [e[0] for e in now[:n] if e[0] not in first_old]
    parts = []
    for what, names in (("changed", changed), ("removed", removed), ("added among them", added)):
        if names:
            where = _inputs_of(names)
            parts.append(f"{len(names)} {what} (e.g. {printable(names[0])}){where}")
    detail = ", ".join(parts) or "their order changed"
    return f"of the {n} input files already converted, {detail}"


def _inputs_of(names: list[str]) -> str:
    """' in input b.zip' for entry names of a multi-input run (which start with their input's
    path: see :func:`input_entry`); '' for the relative names of a single input."""
    tops = sorted({split[0] if (split := split_member(n)) else "" for n in names} - {""})
    return f" in {'input ' if len(tops) == 1 else 'inputs '}{', '.join(tops)}" if tops else ""
