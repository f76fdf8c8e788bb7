"""``inspect_dataset`` (describe) and ``verify_dataset`` (check against docs/FORMAT.md)."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..urls import Url
from . import layout
from .reader import DatasetReader, open_dataset
from .zarr_store import missing_shard_files

#: Problems of one kind listed before "... and N more".
_MAX_LISTED = 5


def spec_text_digest(spec_text: str) -> str:
    """SHA-256 of the stored spec YAML in canonical JSON form: equals ``JointSpec.digest()``."""
    import yaml

    raw = yaml.safe_load(spec_text)
    return hashlib.sha256(
        json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _disk_bytes(path: Path | Url) -> int:
    if isinstance(path, Url):
        return int(path.fs.du(path.path))
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _listed(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:_MAX_LISTED])
    extra = len(indices) - _MAX_LISTED
    return shown + (f" and {extra} more" if extra > 0 else "")


def inspect_dataset(path: str | Path) -> dict[str, Any]:
    """A JSON-ready description: counts, classes, splits, encoding, streams, skipped files."""
    with open_dataset(path) as ds:
        attrs = ds.attrs
        arr = ds.array(layout.S2I)
        labels = ds.column(layout.LABEL)
        values, counts = np.unique(labels, return_counts=True)
        report = attrs.get("report") or {}
        skipped = report.get("skipped") or []
        return {
            "path": str(ds.path),
            "backend": ds.backend,
            "layout_version": attrs.get(layout.ATTR_VERSION),
            "s2i_version": attrs.get("s2i_version"),
            "num_samples": len(ds),
            "sample_shape": list(arr.shape[1:]),
            "dtype": str(arr.dtype),
            "streams": attrs.get("streams"),
            "encoding": attrs.get("encoding"),
            "storage": attrs.get(layout.ATTR_STORAGE),
            "class_count": attrs.get("class_count"),
            "classes": {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)},
            "metadata_fields": [n for n in ds.column_names() if n not in layout.REQUIRED_COLUMNS],
            "splits": {
                name: {
                    part: (None if idx is None else int(len(idx))) for part, idx in parts.items()
                }
                for name, parts in ds.splits().items()
            },
            "split_sources": attrs.get("split_sources") or {},
            "source": attrs.get("source"),
            "counts": report.get("counts"),
            "skipped": skipped,
            "bytes_on_disk": _disk_bytes(ds.path),
        }


def verify_dataset(path: str | Path) -> list[str]:
    """Every way the dataset breaks the layout contract, one message each (empty list = valid).

    Reads every shard, so corrupted or truncated files are found, not just bad metadata.
    """
    try:
        ds = open_dataset(path, check_version=False)
    except StoreError as exc:
        return [str(exc)]
    with ds:
        problems = _check_attrs(ds)
        n = _check_arrays(ds, problems)
        if n is not None:
            _check_columns(ds, n, problems)
            _check_splits(ds, n, problems)
            _check_samples(ds, n, problems)
    return problems


def _check_attrs(ds: DatasetReader) -> list[str]:
    attrs = ds.attrs
    problems = []
    if attrs.get(layout.ATTR_VERSION) != layout.LAYOUT_VERSION:
        problems.append(
            f"{layout.ATTR_VERSION}: expected {layout.LAYOUT_VERSION!r}, "
            f"found {attrs.get(layout.ATTR_VERSION)!r}"
        )
    missing = [k for k in layout.REQUIRED_ATTRS if k not in attrs]
    if missing:
        problems.append(f"attributes missing: {', '.join(missing)}")
    spec = attrs.get("spec")
    if isinstance(spec, str) and "spec_sha256" in attrs:
        try:
            digest = spec_text_digest(spec)
        except Exception as exc:  # yaml raises its own hierarchy
            problems.append(f"spec: stored spec text is not valid YAML ({exc})")
        else:
            if digest != attrs["spec_sha256"]:
                problems.append(
                    f"spec_sha256: {attrs['spec_sha256']} does not match the stored spec "
                    f"text ({digest})"
                )
    streams = attrs.get("streams")
    stats = attrs.get("stats")
    if isinstance(streams, list) and isinstance(stats, dict):
        for stream in streams:
            entry = stats.get(stream)
            if not isinstance(entry, dict):
                problems.append(f"stats: no entry for stream {stream!r}")
                continue
            if not isinstance(entry.get("count"), int):
                problems.append(f"stats[{stream!r}]['count']: expected an integer")
            elif entry["count"] > 0:  # nothing counted: the values are null
                for key in ("mean", "std", "min", "max"):
                    if not (isinstance(entry.get(key), list) and len(entry[key]) == 3):
                        problems.append(f"stats[{stream!r}][{key!r}]: expected 3 values (x, y, z)")
    report = attrs.get("report")
    if report is not None and not (
        isinstance(report, dict) and isinstance(report.get("skipped"), list)
    ):
        problems.append("report: expected {'skipped': [...], 'counts': {...}}")
    return problems


def _check_arrays(ds: DatasetReader, problems: list[str]) -> int | None:
    """Checks of ``s2i`` against the attributes; returns N, or None when ``s2i`` is unusable."""
    try:
        arr = ds.array(layout.S2I)
    except KeyError:
        problems.append(f"array {layout.S2I!r} missing")
        return None
    shape, dtype = tuple(arr.shape), str(arr.dtype)
    if len(shape) != 5 or shape[2] != 3:
        problems.append(f"{layout.S2I}: expected shape (N, S, 3, H, W), found {shape}")
        return None
    if dtype not in layout.SAMPLE_DTYPES:
        problems.append(f"{layout.S2I}: expected dtype float16 or uint8, found {dtype}")
    attrs = ds.attrs
    streams = attrs.get("streams")
    if isinstance(streams, list) and len(streams) != shape[1]:
        problems.append(
            f"{layout.S2I}: {shape[1]} streams stored, attribute 'streams' lists {len(streams)}"
        )
    enc = attrs.get("encoding")
    if isinstance(enc, dict):
        if enc.get("dtype") not in (None, dtype):
            problems.append(f"{layout.S2I}: dtype {dtype}, encoding says {enc.get('dtype')}")
        size = enc.get("image_size")
        if size:
            if list(shape[3:]) != list(size):
                problems.append(
                    f"{layout.S2I}: images are {shape[3]}x{shape[4]}, "
                    f"encoding says {size[0]}x{size[1]}"
                )
        else:
            if "frames" in enc and shape[3] != enc["frames"]:
                problems.append(
                    f"{layout.S2I}: {shape[3]} rows, encoding says frames={enc['frames']}"
                )
            cols = attrs.get("columns")
            if isinstance(cols, list) and len(cols) != shape[4]:
                problems.append(
                    f"{layout.S2I}: {shape[4]} columns, attribute 'columns' describes {len(cols)}"
                )
    return shape[0]


def _check_columns(ds: DatasetReader, n: int, problems: list[str]) -> None:
    names = ds.column_names()
    for name in layout.REQUIRED_COLUMNS:
        if name not in names:
            problems.append(f"array {name!r} missing")
    for name in names:
        arr = ds.array(name)
        want = layout.REQUIRED_COLUMNS.get(name, layout.FIELD_DTYPE)
        if tuple(arr.shape) != (n,):
            problems.append(
                f"{name}: expected shape ({n},) like {layout.S2I}, found {tuple(arr.shape)}"
            )
            continue
        data = ds.column(name)
        if (want == "str") != (data.dtype.kind == "U") or (
            want != "str" and str(data.dtype) != want
        ):
            problems.append(f"{name}: expected dtype {want}, found {arr.dtype}")
            continue
        if name == layout.SAMPLE_ID:
            unsorted = np.flatnonzero(data[1:] < data[:-1]) + 1
            dup = np.flatnonzero(data[1:] == data[:-1]) + 1
            if len(unsorted):
                problems.append(f"{name}: not sorted at index {_listed(unsorted)}")
            if len(dup):
                problems.append(f"{name}: duplicate ids at index {_listed(dup)}")
        if name == layout.LABEL:
            count = ds.attrs.get("class_count")
            if isinstance(count, int):
                bad = np.flatnonzero((data < 0) | (data >= count))
                if len(bad):
                    problems.append(
                        f"{name}: values outside 0..{count - 1} (class_count) "
                        f"at index {_listed(bad)}"
                    )


def _check_splits(ds: DatasetReader, n: int, problems: list[str]) -> None:
    for name, parts in ds.splits().items():
        seen = []
        for part, idx in parts.items():
            where = f"{layout.SPLITS}/{name}/{part}"
            if idx is None:
                problems.append(f"{where}: missing")
                continue
            if idx.ndim != 1 or str(idx.dtype) != layout.SPLIT_DTYPE:
                problems.append(
                    f"{where}: expected 1-D {layout.SPLIT_DTYPE}, found {idx.dtype} {idx.shape}"
                )
                continue
            bad = idx[(idx < 0) | (idx >= n)]
            if len(bad):
                problems.append(f"{where}: indices outside 0..{n - 1}: {_listed(bad)}")
            if len(np.unique(idx)) != len(idx):
                problems.append(f"{where}: repeated indices")
            seen.append(idx)
        if len(seen) == 2:
            both = np.intersect1d(seen[0], seen[1])
            if len(both):
                problems.append(
                    f"{layout.SPLITS}/{name}: train and test share samples {_listed(both)}"
                )


def _check_samples(ds: DatasetReader, n: int, problems: list[str]) -> None:
    """Every sample readable (checksums intact) and finite; damage is named per sample.

    A whole shard is read at once when it is intact. For Zarr the shard's index and every inner
    chunk's crc32c are checked first, straight from the shard file, so one flipped byte names
    the one sample it hit and zarr never starts (and abandons) a shard-wide read. Anything else
    that fails (HDF5's fletcher32, an unfamiliar Zarr layout) is read again sample by sample.
    """
    storage = ds.attrs.get(layout.ATTR_STORAGE) or {}
    shard = int(storage.get("shard_size") or 1024)
    arr = ds.array(layout.S2I)
    if ds.backend == "zarr":
        gone = missing_shard_files(ds.path, n, shard, arr.ndim)
        if gone:
            problems.append(
                f"{layout.S2I}: shard files missing for shards {_listed(np.array(gone))}"
            )
    for start in range(0, n, shard):
        stop = min(start + shard, n)
        damaged = None
        if ds.backend == "zarr":
            damaged = _zarr_shard_damage(ds.path, arr, start // shard, start, stop)
        if not damaged:  # intact by its checksums, or not checked: one read for the shard
            try:
                with _quiet_asyncio():
                    block = np.asarray(arr[start:stop])
            except Exception:  # noqa: BLE001 - any codec/IO failure: find the samples it hit
                damaged = {}
            else:
                _check_finite(block, start, problems)
                continue
        bad: dict[int, str] = dict(damaged)
        with _quiet_asyncio():
            for i in range(start, stop):
                if i in bad:
                    continue
                try:
                    sample = np.asarray(arr[i : i + 1])
                except Exception as exc:  # noqa: BLE001 - the reason is reported
                    bad[i] = f"{type(exc).__name__}: {exc}"
                else:
                    _check_finite(sample, i, problems)
            if len(bad) > len(damaged):
                gc.collect()  # while silenced: tasks the failed reads abandoned
        for reason in dict.fromkeys(bad.values()):
            which = np.array(sorted(i for i, r in bad.items() if r == reason))
            if len(which) > 2 and which[-1] - which[0] == len(which) - 1:  # a whole run
                named = f"samples {which[0]}..{which[-1]}"
            else:
                named = f"sample{'s' if len(which) > 1 else ''} {_listed(which)}"
            problems.append(f"{layout.S2I}: {named} unreadable ({reason})")


def _check_finite(block: np.ndarray, start: int, problems: list[str]) -> None:
    if block.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1)) + start
        if len(bad):
            problems.append(f"{layout.S2I}: non-finite values in samples {_listed(bad)}")


@contextlib.contextmanager
def _quiet_asyncio() -> Iterator[None]:
    """Silence asyncio's "Task was destroyed but it is pending!" lines.

    When one chunk of a shard-wide read fails, zarr-python abandons the other chunk tasks and
    asyncio logs each of them as they are collected: thousands of lines that say nothing about
    the data. They are collected here, while silenced; the failure itself is reported.
    """
    logger = logging.getLogger("asyncio")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        if failed:  # abandoned tasks exist only after a failure; collecting costs ~40 ms
            gc.collect()
        logger.setLevel(level)


_EMPTY = 2**64 - 1


def _zarr_shard_damage(
    path: Path | Url, arr: Any, shard: int, start: int, stop: int
) -> dict[int, str] | None:
    """Samples ``start..stop-1`` of shard file ``shard`` whose bytes fail their checksums.

    Reads the shard file directly: the index (``(offset, nbytes)`` per inner chunk, then its
    crc32c) and each chunk's trailing crc32c. Returns ``{sample: reason}`` (empty when intact),
    or None when ``s2i`` does not have the layout s2i writes (one sample per inner chunk,
    crc32c last, index at the end); the caller then reads sample by sample.
    """
    import google_crc32c

    meta = arr.metadata.to_dict()
    codec = meta["codecs"][0] if meta.get("codecs") else {}
    conf = codec.get("configuration", {})
    if (
        codec.get("name") != "sharding_indexed"
        or list(conf.get("chunk_shape", ()))[:1] != [1]
        or conf.get("index_location", "end") != "end"
        or not conf.get("codecs")
        or conf["codecs"][-1].get("name") != "crc32c"
        or [c.get("name") for c in conf.get("index_codecs", ())] != ["bytes", "crc32c"]
    ):
        return None
    per_shard = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
    file = path.joinpath(layout.S2I, "c", str(shard), *["0"] * (arr.ndim - 1))
    try:
        data = file.fs.cat_file(file.path) if isinstance(file, Url) else file.read_bytes()
    except OSError:  # a missing file is reported by missing_shard_files; zarr reads fill values
        return None
    index_size = 16 * per_shard
    body = len(data) - index_size - 4
    index = data[body:-4]
    if body < 0 or google_crc32c.value(index) != int.from_bytes(data[-4:], "little"):
        return dict.fromkeys(range(start, stop), f"shard {shard}: its index is damaged")
    entries = np.frombuffer(index, "<u8").reshape(per_shard, 2)
    damage = {}
    for i in range(start, stop):
        offset, size = (int(v) for v in entries[i - start])
        if offset == _EMPTY:
            damage[i] = f"shard {shard}: the sample's chunk is missing"
        elif size < 4 or offset + size > body:
            damage[i] = f"shard {shard}: the index points outside the file"
        else:
            chunk = data[offset : offset + size]
            if google_crc32c.value(chunk[:-4]) != int.from_bytes(chunk[-4:], "little"):
                damage[i] = f"shard {shard}: crc32c checksum mismatch"
    return damage
