"""HDF5 backend: the same names as the Zarr layout, in one file written with h5py built-ins only.

Compression is gzip (level 1) or lzf, both with the shuffle filter, or none; ``s2i`` also carries
the fletcher32 checksum so ``verify`` finds corrupted chunks. hdf5plugin (zstd/lz4) is not used:
a reader would then need the plugin too, and the Zarr backend already offers those codecs.
Group attributes that are not scalars are stored as JSON text; their names are listed in the
``json_attrs`` attribute.

HDF5 is not crash-safe: a process killed while it writes (or before its first flush) can leave a
file that no longer opens ("truncated file") or whose index disagrees with its data. So the HDF5
file is never trusted after an interruption. Each committed shard is also staged in
``<out>.partial/shards/`` as ``NNNNNN.npy`` (the samples, read back memory-mapped) and
``NNNNNN.cols.npz`` (its columns), each written under a temporary name and renamed, so a staged
file is whole or absent. An uninterrupted run appends every shard to ``data.h5`` as it goes (no
extra pass at the end); a resumed run deletes ``data.h5`` and replays the staged shards with
exactly the same sequence of HDF5 calls, so the result is byte-identical to an uninterrupted run
whatever moment the stop came at. The price: the samples are written twice (the staged copy is
a sequential write in the background writer thread) and the disk holds both until the end.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from . import layout
from .staging import fault_point, remove

DATA_FILE = "data.h5"
SHARD_DIR = "shards"
_COLUMN_PREFIX = "col."


def _compression(codec: str) -> dict[str, Any]:
    if codec == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if codec == "lzf":
        return {"compression": "lzf", "shuffle": True}
    return {}


def read_column(file: Any, name: str) -> np.ndarray:
    """A whole 1-D dataset in memory; strings as a numpy ``str`` array (h5py gives bytes)."""
    dset = file[name]
    if dset.dtype.kind == "O":
        return np.array(dset.asstr()[...], dtype=str)
    return np.asarray(dset[...])


class Hdf5Backend:
    """Writes ``<partial>/data.h5`` shard by shard, staging every shard under ``shards/``."""

    name = "hdf5"

    def __init__(self, partial: Path) -> None:
        self.path = partial / DATA_FILE  # what finalize renames to the output
        self.shards = partial / SHARD_DIR
        self.file: Any = None

    def create(
        self, sample_shape: tuple[int, ...], dtype: str, codec: str, shard_size: int
    ) -> None:
        self.shards.mkdir()
        self._open_new(sample_shape, dtype, codec, shard_size)

    def _open_new(
        self, sample_shape: tuple[int, ...], dtype: str, codec: str, shard_size: int
    ) -> None:
        import h5py

        self._shard_size = shard_size
        remove(self.path)
        self.file = h5py.File(self.path, "w")
        self.file.create_dataset(
            layout.S2I,
            shape=(0, *sample_shape),
            maxshape=(None, *sample_shape),
            dtype=dtype,
            chunks=(1, *sample_shape),
            fillvalue=np.nan if dtype == "float16" else 0,
            fletcher32=True,
            **_compression(codec),
        )

    def open_existing(
        self, sample_shape: tuple[int, ...], dtype: str, codec: str, shard_size: int
    ) -> None:
        """Start ``data.h5`` afresh; :meth:`truncate` then replays the committed staged shards."""
        if not self.shards.is_dir():
            raise StoreError(
                f"{self.shards}: missing; this partial output cannot be resumed, start over "
                "with --overwrite"
            )
        self._open_new(sample_shape, dtype, codec, shard_size)

    def _shard_file(self, index: int) -> Path:
        return self.shards / f"{index:06d}.npy"

    def _columns_file(self, index: int) -> Path:
        return self.shards / f"{index:06d}.cols.npz"

    def column_names(self) -> list[str]:
        return sorted(k for k, v in self.file.items() if k != layout.S2I and hasattr(v, "shape"))

    def create_column(self, name: str, dtype: str) -> None:
        import h5py

        h5dtype = h5py.string_dtype("utf-8") if dtype == "str" else dtype
        self.file.create_dataset(
            name, shape=(0,), maxshape=(None,), dtype=h5dtype, chunks=(self._shard_size,)
        )

    def append(self, start: int, s2i: Sequence[np.ndarray], columns: dict[str, np.ndarray]) -> None:
        if start % self._shard_size:
            raise StoreError(f"shard must start at a multiple of {self._shard_size}, not {start}")
        if not isinstance(s2i, np.ndarray):  # sample rows (views in shared memory, in band)
            s2i = np.stack(s2i)
        self._stage(start // self._shard_size, s2i, columns)
        self._append(start, s2i, columns)

    def _stage(self, index: int, s2i: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        cols, data = self._columns_file(index), self._shard_file(index)
        cols_tmp, data_tmp = (p.with_name(f".{p.name}.tmp") for p in (cols, data))
        with open(cols_tmp, "wb") as fh:
            np.savez(fh, **{_COLUMN_PREFIX + name: v for name, v in columns.items()})
        with open(data_tmp, "wb") as fh:
            np.save(fh, s2i, allow_pickle=False)
        fault_point("shard-tmp")
        os.replace(cols_tmp, cols)
        os.replace(data_tmp, data)

    def _append(self, start: int, s2i: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        stop = start + len(s2i)
        for name, data in ((layout.S2I, s2i), *columns.items()):
            dset = self.file[name]
            dset.resize(stop, axis=0)
            dset[start:stop] = data.astype(object) if data.dtype.kind in "TU" else data
        self.file.flush()

    def truncate(self, count: int) -> None:
        """Keep the staged shards of the first ``count`` samples and rebuild ``data.h5`` from
        them with the calls an uninterrupted run made; drop later shards and temp files."""
        keep = -(-count // self._shard_size)
        for entry in self.shards.iterdir():
            stem = entry.name.split(".", 1)[0]
            if entry.name not in (f"{stem}.npy", f"{stem}.cols.npz") or not stem.isdigit() \
                    or int(stem) >= keep:
                remove(entry)
        start = 0
        for index in range(keep):
            try:
                with np.load(self._columns_file(index), allow_pickle=False) as npz:
                    columns = {k[len(_COLUMN_PREFIX):]: npz[k] for k in npz.files}
                s2i = np.load(self._shard_file(index), mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise StoreError(f"{self.shards}: staged shard {index} is unreadable ({exc}); "
                                 "start over with --overwrite") from None
            if index == 0:  # as the writer does before its first shard: sorted, stored dtypes
                for name in sorted(columns):
                    data = columns[name]
                    self.create_column(name, "str" if data.dtype.kind == "U" else data.dtype.name)
            self._append(start, s2i, columns)
            start += len(s2i)
            del s2i
            fault_point("hdf5-replay")
        if start != count:
            raise StoreError(f"{self.shards}: staged shards hold {start} samples, the manifest "
                             f"{count}; start over with --overwrite")

    def read_column(self, name: str) -> np.ndarray:
        """A whole committed column (a resumed pipeline needs them to compute the splits)."""
        return read_column(self.file, name)

    def finish(
        self, splits: dict[str, tuple[np.ndarray, np.ndarray]], attrs: dict[str, Any]
    ) -> None:
        """Write splits and attributes and close the finished file."""
        root = self.file.require_group(layout.SPLITS)
        for name, parts in splits.items():
            sub = root.require_group(name)
            for part, idx in zip(layout.SPLIT_PARTS, parts, strict=True):
                sub.create_dataset(part, data=np.asarray(idx, dtype=layout.SPLIT_DTYPE))
        encoded = []
        for key, value in attrs.items():
            if isinstance(value, (str, int, float, bool)):
                self.file.attrs[key] = value
            else:
                self.file.attrs[key] = json.dumps(value)
                encoded.append(key)
        self.file.attrs[layout.ATTR_JSON_NAMES] = json.dumps(sorted(encoded))
        fault_point("hdf5-finish")
        self.close()

    def close(self, finished: bool = False) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class Hdf5Source:
    """Read side: arrays and attributes of a finished HDF5 dataset."""

    def __init__(self, path: Path) -> None:
        import h5py

        try:
            self.file = h5py.File(path, "r")
        except Exception as exc:
            raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from None

    def attrs(self) -> dict[str, Any]:
        raw = {k: _plain(v) for k, v in self.file.attrs.items()}
        try:
            names = json.loads(raw.pop(layout.ATTR_JSON_NAMES, "[]"))
        except (TypeError, ValueError):
            names = []
        for key in names:
            if key in raw:
                with contextlib.suppress(TypeError, ValueError):  # left as text if malformed
                    raw[key] = json.loads(raw[key])
        return raw

    def array_names(self) -> list[str]:
        return sorted(k for k, v in self.file.items() if hasattr(v, "shape"))

    def array(self, name: str) -> Any:
        return self.file[name]

    def read_column(self, name: str) -> np.ndarray:
        return read_column(self.file, name)

    def split_names(self) -> list[str]:
        group = self.file.get(layout.SPLITS)
        return sorted(group.keys()) if group is not None else []

    def split_part(self, name: str, part: str) -> np.ndarray | None:
        key = f"{layout.SPLITS}/{name}/{part}"
        return self.file[key][...] if key in self.file else None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _plain(value: Any) -> Any:
    """h5py attribute values as plain Python scalars."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value
