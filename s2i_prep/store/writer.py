"""``open_writer`` / ``DatasetWriter``: whole-shard appends with an atomic commit per shard.

The writer owns the safety rules (lock, partial output, manifest, resume, publish) and leaves the
array I/O to a backend (:mod:`.zarr_store` or :mod:`.hdf5_store`), so both formats behave alike.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..urls import Url, location
from . import layout, staging
from .hdf5_store import Hdf5Backend
from .remote import RemoteStaging
from .zarr_store import ShardTarget, ZarrBackend

_ZARR_SUFFIXES = (".zarr",)
_HDF5_SUFFIXES = (".h5", ".hdf5")


def backend_of(path: Path) -> str:
    """``"zarr"`` or ``"hdf5"`` from the output's suffix, else StoreError."""
    suffix = path.suffix.lower()
    if suffix in _ZARR_SUFFIXES:
        return "zarr"
    if suffix in _HDF5_SUFFIXES:
        return "hdf5"
    raise StoreError(
        f"{path}: output must end with .zarr (Zarr v3) or .h5/.hdf5 (HDF5), "
        f"found {suffix or 'no suffix'!r}"
    )


def _bad_json_value(value: Any, where: str = "") -> str | None:
    """Where in ``value`` the first value JSON cannot hold is (``"stats.sum[2]"``), or None."""
    if isinstance(value, float) and not np.isfinite(value):
        return f"{where or 'value'} is {value}"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _bad_json_value(item, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            found = _bad_json_value(item, f"{where}[{k}]")
            if found:
                return found
    return None


def jsonable(value: Any, what: str = "value") -> Any:
    """``value`` with numpy scalars/arrays and paths as JSON types (StoreError if impossible).

    The error names the offending entry (``stats.sum[2] is inf``), never the whole value: a
    resume state or an attribute can be megabytes of internal bookkeeping.
    """

    def convert(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.loads(json.dumps(value, default=convert, allow_nan=False))
    except (TypeError, ValueError) as exc:
        where = None
        if isinstance(exc, ValueError):  # a NaN or inf somewhere: find it in the lenient form
            where = _bad_json_value(json.loads(json.dumps(value, default=convert)))
        raise StoreError(f"cannot store the {what}: {where or exc} (not valid JSON)") from None


def _column_dtype(name: str) -> str:
    return layout.REQUIRED_COLUMNS.get(name, layout.FIELD_DTYPE)


def _typed_column(name: str, values: Any, k: int) -> np.ndarray:
    """One shard's column in its stored dtype; refuses lengths or values that do not fit."""
    dtype = _column_dtype(name)
    data = np.asarray(values)
    if data.shape != (k,):
        raise StoreError(
            f"column {name!r}: expected {k} values (one per sample), found shape {data.shape}"
        )
    if dtype == "str":
        if data.dtype.kind not in "UT":
            raise StoreError(f"column {name!r}: expected strings, found dtype {data.dtype}")
        return np.array(data.tolist(), dtype=str)
    if data.dtype.kind not in "iub":
        raise StoreError(f"column {name!r}: expected integers, found dtype {data.dtype}")
    info = np.iinfo(dtype)
    if k and (data.min() < info.min or data.max() > info.max):
        raise StoreError(
            f"column {name!r}: values {data.min()}..{data.max()} do not fit the stored {dtype}"
        )
    return data.astype(dtype)


def _index_array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


class DatasetWriter:
    """Appends shards of samples to a partial output and publishes it at :meth:`finalize`.

    Attributes:
        shard_size: samples per shard (every write but the last has exactly this many).
        num_samples: samples committed so far (after a resume: what survived the interruption).
        resume_state: the ``state`` given with the last committed shard (``{}`` if none).
    """

    def __init__(
        self,
        path: Path,
        *,
        sample_shape: tuple[int, int, int, int],
        dtype: str,
        codec: str,
        shard_size: int | None,
        resume: bool,
        overwrite: bool,
        fingerprint: str,
        run_info: dict[str, Any] | None = None,
        check_resume: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = location(path)
        self.backend_name = backend_of(self.path)
        self.sample_shape = tuple(int(d) for d in sample_shape)
        if len(self.sample_shape) != 4 or min(self.sample_shape) < 1:
            raise StoreError(
                f"sample_shape must be (S, 3, H, W) with positive sizes, found {sample_shape}"
            )
        if dtype not in layout.SAMPLE_DTYPES:
            raise StoreError(
                f"sample dtype must be one of {', '.join(layout.SAMPLE_DTYPES)}, found {dtype!r}"
            )
        if shard_size is not None and shard_size < 1:
            raise StoreError(f"shard_size must be a positive number of samples, found {shard_size}")
        self.dtype = dtype
        self.codec = layout.resolve_codec(self.backend_name, codec, self.sample_shape, dtype)
        self.fingerprint = fingerprint
        self.overwrite = overwrite
        # a local output, or a Zarr group written in place into an object store (store/remote.py)
        self._staging: staging.LocalStaging | RemoteStaging = (
            RemoteStaging(self.path) if isinstance(self.path, Url)
            else staging.LocalStaging(self.path)
        )
        self.partial = self._staging.partial
        self.num_samples = 0
        self.resume_state: dict[str, Any] = {}
        self._columns: list[str] = []
        self._short_shard = False
        self._backend: ZarrBackend | Hdf5Backend = (
            ZarrBackend(self.partial, self._staging.remote) if self.backend_name == "zarr"
            else Hdf5Backend(self.partial)
        )
        self._closed = False
        self._run_info = run_info
        self._check_resume = check_resume
        self._staging.acquire()
        created = False
        try:
            if self._staging.output_exists():
                if not overwrite:
                    raise StoreError(
                        f"{self.path}: output already exists; pass --overwrite to replace it"
                    )
                self._staging.check_ours("dataset")
                self._staging.clear_output()
            manifest = None
            if self._staging.partial_exists():
                if not (resume or overwrite):
                    raise StoreError(
                        f"{self.partial}: an interrupted conversion left this partial output; "
                        f"pass --resume to continue it or --overwrite to start over"
                    )
                self._staging.check_ours("partial")
                manifest = self._staging.read_manifest() if resume else None
            # A partial output that never committed a sample (stopped before its first shard,
            # even between creating its files and writing the manifest) holds nothing: restart.
            if manifest is not None and int(manifest.get("committed") or 0) > 0:
                self._staging.claim()
                self._resume(manifest, shard_size)
            else:
                if self._staging.partial_exists():
                    self._staging.remove_partial()
                if shard_size is None and manifest is not None:
                    shard_size = int(manifest.get("shard_size") or 0) or None  # keep it on restart
                self.shard_size = shard_size or layout.default_shard_size(self.sample_shape, dtype)
                self._staging.create_partial()
                created = True
                staging.fault_point("partial-created")
                self._staging.claim()
                if run_info is not None:
                    self._staging.write_json(layout.RUN_INFO, run_info, indent=None)
                self._backend.create(self.sample_shape, dtype, self.codec, self.shard_size)
                staging.fault_point("backend-created")
                self._commit()
        except BaseException:
            if created:  # stopped before its first commit: a partial output holding nothing
                self._staging.remove_partial()
            self.close()
            raise

    # -- resume -------------------------------------------------------------------------------
    def _resume(self, manifest: dict[str, Any], shard_size: int | None) -> None:
        if self._check_resume is not None:
            # The caller names what changed (which option, which inputs) before the bare check.
            self._check_resume(self._read_run_info(), dict(manifest.get("state") or {}))
        if manifest.get("fingerprint") != self.fingerprint:
            raise StoreError(
                f"{self.partial}: was started with different inputs or options (fingerprint "
                f"{str(manifest.get('fingerprint'))[:12]}..., now {self.fingerprint[:12]}...); "
                "rerun with the original options, or pass --overwrite to start over"
            )
        expected: dict[str, Any] = {
            "s2i_layout_version": layout.LAYOUT_VERSION,
            "backend": self.backend_name,
            "sample_shape": list(self.sample_shape),
            "dtype": self.dtype,
            "codec": self.codec,
        }
        if shard_size is not None:
            expected["shard_size"] = shard_size
        for key, value in expected.items():
            if manifest.get(key) != value:
                raise StoreError(
                    f"{self.partial}: {key} was {manifest.get(key)!r} when this output began, "
                    f"now {value!r}; rerun with the original options or pass --overwrite"
                )
        self.shard_size = int(manifest["shard_size"])
        self.num_samples = int(manifest["committed"])
        self.resume_state = dict(manifest.get("state") or {})
        self._columns = list(manifest.get("columns") or [])
        self._short_shard = self.num_samples % self.shard_size != 0
        self._backend.open_existing(self.sample_shape, self.dtype, self.codec, self.shard_size)
        self._backend.truncate(self.num_samples)

    def _read_run_info(self) -> dict[str, Any]:
        return self._staging.read_json(layout.RUN_INFO)

    def _commit(self) -> None:
        """Record what is on disk now; called only after the data of a shard are written."""
        self._staging.check_claim()
        self._staging.write_json(
            layout.MANIFEST,
            {
                "s2i_layout_version": layout.LAYOUT_VERSION,
                "backend": self.backend_name,
                "fingerprint": self.fingerprint,
                "sample_shape": list(self.sample_shape),
                "dtype": self.dtype,
                "codec": self.codec,
                "shard_size": self.shard_size,
                "committed": self.num_samples,
                "columns": self._columns,
                "state": self.resume_state,
                "pid": os.getpid(),
                "updated": time.time(),
            },
            indent=None,  # the C encoder: the state grows with the skip report, per commit
        )

    # -- writing ------------------------------------------------------------------------------
    @property
    def shard_target(self) -> ShardTarget | None:
        """Where shard files may be written out of process (:func:`~.zarr_store.write_shard_file`,
        then :meth:`commit_shard`); None when the backend writes its shards itself (HDF5)."""
        return getattr(self._backend, "target", None)

    def write_shard(self, s2i: Sequence[np.ndarray], columns: dict[str, np.ndarray],
                    state: dict) -> None:
        """Append k samples (k == shard_size, or fewer for the last shard) and commit them.

        Args:
            s2i: (k, S, 3, H, W) samples of the writer's dtype, as one array or k sample rows.
            columns: per-sample arrays of length k: label, sample_id, num_frames, num_persons and
                every metadata field.
            state: JSON-serialisable pipeline state returned as ``resume_state`` after a resume.
        """
        self._check_open()
        if isinstance(s2i, np.ndarray):
            if s2i.shape[1:] != self.sample_shape or s2i.ndim != 5:
                raise StoreError(
                    f"shard samples: expected shape (k, {', '.join(map(str, self.sample_shape))})"
                    f", found {s2i.shape}"
                )
            dtypes = {s2i.dtype}
        else:
            shapes = {row.shape for row in s2i}
            if shapes - {self.sample_shape}:
                raise StoreError(f"shard samples: expected rows of shape {self.sample_shape}, "
                                 f"found {min(shapes - {self.sample_shape})}")
            dtypes = {row.dtype for row in s2i}
        if dtypes - {np.dtype(self.dtype)}:
            raise StoreError(f"shard samples: expected dtype {self.dtype}, "
                             f"found {min(map(str, dtypes - {np.dtype(self.dtype)}))}")
        self._append(len(s2i), s2i, columns, state)

    def commit_shard(self, k: int, columns: dict[str, np.ndarray], state: dict) -> None:
        """Commit the next shard, of ``k`` samples, whose file is already written at
        :attr:`shard_target` (by a worker process); appends its columns like :meth:`write_shard`."""
        self._check_open()
        if self.shard_target is None:
            raise StoreError(f"{self.path}: this backend writes its own shards")
        index = self.num_samples // self.shard_size
        if not self.shard_target.written(index):
            raise StoreError(f"{self.partial}: shard {index} was not written (with --dask, every "
                             "worker must see the output at the same path as the driver, or "
                             "write an object-store URL); rerun with --resume")
        self._append(k, None, columns, state)

    def _append(self, k: int, s2i: Sequence[np.ndarray] | None, columns: dict[str, np.ndarray],
                state: dict) -> None:
        if not 1 <= k <= self.shard_size:
            raise StoreError(f"shard samples: expected 1..{self.shard_size} samples, found {k}")
        if self._short_shard:
            raise StoreError(
                f"{self.path}: a shard of fewer than {self.shard_size} samples was written; "
                "only the last shard may be short"
            )
        missing = [c for c in layout.REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise StoreError(f"shard columns: missing {', '.join(missing)}")
        names = sorted(columns)
        if self._columns and names != self._columns:
            raise StoreError(f"shard columns: expected {self._columns}, found {names}")
        typed = {name: _typed_column(name, columns[name], k) for name in names}
        state = jsonable(state, "resume state")
        if not self._columns:
            existing = set(
                self._backend.column_names()
            )  # a first shard cut short before its commit
            for name in names:
                if name not in existing:
                    self._backend.create_column(name, _column_dtype(name))
            self._columns = names
        try:
            self._backend.append(self.num_samples, s2i, typed)
        except (
            OSError
        ) as exc:  # disk full, permissions, ...: the manifest still holds the last shard
            raise StoreError(
                f"{self.partial}: writing samples {self.num_samples}..{self.num_samples + k - 1} "
                f"failed: {exc}; fix the cause and rerun with --resume"
            ) from exc
        staging.fault_point("shard-data")
        self.num_samples += k
        self.resume_state = state
        self._short_shard = k < self.shard_size
        self._commit()
        staging.fault_point("shard-committed")

    def committed_columns(self) -> dict[str, np.ndarray]:
        """The per-sample columns of every committed sample, e.g. after a resume."""
        self._check_open()
        return {name: self._backend.read_column(name) for name in self._columns}

    def finalize(self, attrs: dict, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
        """Write splits and attributes, then move the finished output to its final path."""
        self._check_open()
        missing = [key for key in layout.PIPELINE_ATTRS if key not in attrs]
        if missing:
            raise StoreError(f"{self.path}: dataset attributes missing: {', '.join(missing)}")
        checked: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, parts in splits.items():
            if len(parts) != 2:
                raise StoreError(f"split {name!r}: expected (train, test) index arrays")
            arrays = (_index_array(parts[0]), _index_array(parts[1]))
            for part, idx in zip(layout.SPLIT_PARTS, arrays, strict=True):
                if idx.size and (idx.min() < 0 or idx.max() >= self.num_samples):
                    raise StoreError(
                        f"split {name}/{part}: indices {idx.min()}..{idx.max()} "
                        f"outside 0..{self.num_samples - 1}"
                    )
            checked[name] = arrays
        full = jsonable(dict(attrs), "dataset attributes")
        full[layout.ATTR_VERSION] = layout.LAYOUT_VERSION
        full[layout.ATTR_STORAGE] = {
            "backend": self.backend_name,
            "codec": self.codec,
            "checksum": "crc32c" if self.backend_name == "zarr" else "fletcher32",
            "shard_size": self.shard_size,
            "chunk_samples": 1,
            "sample_shape": list(self.sample_shape),
            "dtype": self.dtype,
        }
        try:
            if not self._columns:
                for name, dtype in layout.REQUIRED_COLUMNS.items():
                    self._backend.create_column(name, dtype)
            self._backend.finish(checked, full)
            staging.fault_point("finished")
            self._staging.publish(self._backend.path, self.overwrite)
        finally:
            self.close()
        return self.path

    def discard(self) -> None:
        """Delete the partial output (a failed run that committed nothing) and release the lock."""
        if self._closed:
            return
        try:
            self._backend.close()
            self._staging.remove_partial()
        finally:
            self.close()

    def close(self) -> None:
        """Release the lock without finalizing; the partial output stays for ``resume``."""
        if not self._closed:
            self._backend.close()
            self._staging.release()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: writer is closed")

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_writer(
    path: Path,
    *,
    sample_shape: tuple[int, int, int, int],
    dtype: str,
    codec: str = "auto",
    shard_size: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    fingerprint: str = "",
    run_info: dict[str, Any] | None = None,
    check_resume: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> DatasetWriter:
    """Start (or with ``resume=True`` continue) building a dataset at ``path``.

    Zarr v3 if ``path`` ends with ``.zarr``, HDF5 if ``.h5``/``.hdf5``. The output is built as
    ``<path>.partial`` under an exclusive lock (``<path>.lock``) and appears at ``path`` only when
    :meth:`DatasetWriter.finalize` succeeds. ``fingerprint`` (a hash of inputs and options from
    the pipeline) must match for a resume; ``resume=True`` without a partial output, or with one
    that committed nothing yet, starts afresh. ``run_info`` (JSON) is saved when a partial output
    begins; on a resume ``check_resume(run_info, state)`` may refuse with a precise reason first.
    Only recognisable s2i datasets and partial outputs are ever deleted or replaced.
    """
    return DatasetWriter(
        location(path),
        sample_shape=sample_shape,
        dtype=dtype,
        codec=codec,
        shard_size=shard_size,
        resume=resume,
        overwrite=overwrite,
        fingerprint=fingerprint,
        run_info=run_info,
        check_resume=check_resume,
    )
