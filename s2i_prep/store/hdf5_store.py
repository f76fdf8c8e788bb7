"""HDF5 backend: the same names as the Zarr layout, in one file written with h5py built-ins only.

Compression is gzip (level 1) or lzf, both with the shuffle filter, or none; ``s2i`` also carries
the fletcher32 checksum so ``verify`` finds corrupted chunks. hdf5plugin (zstd/lz4) is not used:
a reader would then need the plugin too, and the Zarr backend already offers those codecs.
Group attributes that are not scalars are stored as JSON text; their names are listed in the
``json_attrs`` attribute.

HDF5 is not crash-safe: a process killed while it writes (or before its first flush) can leave a
file that no longer opens ("truncated file") or whose index disagrees with its data. So the file
is not written during the conversion. Each committed shard is staged as one ``.npz`` in
``<out>.partial/shards/`` (temp file + rename, so a staged shard is whole or absent), and the
HDF5 file is assembled from them in one pass at finalize. A stop at any moment leaves only whole
staged shards plus at most a half-assembled file that the next finalize rebuilds. The price is
one extra sequential copy of the samples (staged shards stay until the file is complete).
"""

from __future__ import annotations

import contextlib
import json
import os
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
    """Stages shards under ``<partial>/shards`` and assembles ``<partial>/data.h5`` at the end."""

    name = "hdf5"

    def __init__(self, partial: Path) -> None:
        self.path = partial / DATA_FILE  # what finalize renames to the output
        self.shards = partial / SHARD_DIR
        self._columns: dict[str, str] = {}  # columns declared before the first shard

    def create(
        self, sample_shape: tuple[int, ...], dtype: str, codec: str, shard_size: int
    ) -> None:
        self.shards.mkdir()
        self.open_existing(sample_shape, dtype, codec, shard_size)

    def open_existing(
        self, sample_shape: tuple[int, ...], dtype: str, codec: str, shard_size: int
    ) -> None:
        if not self.shards.is_dir():
            raise StoreError(
                f"{self.shards}: missing; this partial output cannot be resumed, start over "
                "with --overwrite"
            )
        self._sample_shape, self._dtype, self._codec = tuple(sample_shape), dtype, codec
        self._shard_size = shard_size

    def _shard_file(self, index: int) -> Path:
        return self.shards / f"{index:06d}.npz"

    def _staged(self) -> list[Path]:
        return sorted(p for p in self.shards.iterdir() if p.suffix == ".npz")

    def column_names(self) -> list[str]:
        return sorted(self._columns)

    def create_column(self, name: str, dtype: str) -> None:
        self._columns[name] = dtype

    def append(self, start: int, s2i: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        if start % self._shard_size:
            raise StoreError(f"shard must start at a multiple of {self._shard_size}, not {start}")
        path = self._shard_file(start // self._shard_size)
        tmp = path.with_name(f".{path.name}.tmp")
        arrays = {layout.S2I: s2i}
        arrays.update((_COLUMN_PREFIX + name, data) for name, data in columns.items())
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        fault_point("shard-tmp")
        os.replace(tmp, path)

    def truncate(self, count: int) -> None:
        """Drop staged shards beyond ``count`` samples, temp files and a half-assembled file."""
        keep = -(-count // self._shard_size)
        for entry in self.shards.iterdir():
            stem = entry.name.removesuffix(".npz")
            if entry.suffix != ".npz" or not stem.isdigit() or int(stem) >= keep:
                remove(entry)
        remove(self.path)

    def read_column(self, name: str) -> np.ndarray:
        """A whole committed column (a resumed pipeline needs them to compute the splits)."""
        parts = []
        for path in self._staged():
            with np.load(path, allow_pickle=False) as npz:
                parts.append(npz[_COLUMN_PREFIX + name])
        return np.concatenate(parts) if parts else np.array([])

    def finish(
        self, splits: dict[str, tuple[np.ndarray, np.ndarray]], attrs: dict[str, Any]
    ) -> None:
        """Assemble ``data.h5`` from the staged shards, then write splits and attributes."""
        import h5py

        staged = self._staged()
        total = 0
        names = dict(self._columns)
        for k, path in enumerate(staged):
            if path.name != self._shard_file(k).name:
                raise StoreError(f"{self.shards}: staged shard {k} is missing; start over with "
                                 "--overwrite")
            with np.load(path, allow_pickle=False) as npz:
                total += len(npz[_COLUMN_PREFIX + layout.LABEL])
                for key in npz.files:
                    if key.startswith(_COLUMN_PREFIX):
                        kind = npz[key].dtype
                        names[key[len(_COLUMN_PREFIX):]] = "str" if kind.kind == "U" else kind.name
        remove(self.path)  # a file half-assembled by a stopped finalize
        with h5py.File(self.path, "w") as fh:
            fh.create_dataset(
                layout.S2I,
                shape=(total, *self._sample_shape),
                maxshape=(None, *self._sample_shape),
                dtype=self._dtype,
                chunks=(1, *self._sample_shape),
                fillvalue=np.nan if self._dtype == "float16" else 0,
                fletcher32=True,
                **_compression(self._codec),
            )
            for name in sorted(names):
                dtype = h5py.string_dtype("utf-8") if names[name] == "str" else names[name]
                fh.create_dataset(name, shape=(total,), maxshape=(None,), dtype=dtype,
                                  chunks=(self._shard_size,))
            start = 0
            for path in staged:
                with np.load(path, allow_pickle=False) as npz:
                    s2i = npz[layout.S2I]
                    stop = start + len(s2i)
                    fh[layout.S2I][start:stop] = s2i
                    for name in names:
                        data = npz[_COLUMN_PREFIX + name]
                        fh[name][start:stop] = data.astype(object) if data.dtype.kind == "U" else data
                start = stop
                fault_point("hdf5-assemble")
            root = fh.require_group(layout.SPLITS)
            for name, parts in splits.items():
                sub = root.require_group(name)
                for part, idx in zip(layout.SPLIT_PARTS, parts, strict=True):
                    sub.create_dataset(part, data=np.asarray(idx, dtype=layout.SPLIT_DTYPE))
            encoded = []
            for key, value in attrs.items():
                if isinstance(value, (str, int, float, bool)):
                    fh.attrs[key] = value
                else:
                    fh.attrs[key] = json.dumps(value)
                    encoded.append(key)
            fh.attrs[layout.ATTR_JSON_NAMES] = json.dumps(sorted(encoded))

    def close(self, finished: bool = False) -> None:
        """Nothing is held open between shards."""


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
