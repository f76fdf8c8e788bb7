"""HDF5 backend: the same names as the Zarr layout, in one file written with h5py built-ins only.

Compression is gzip (level 1) or lzf, both with the shuffle filter, or none; ``s2i`` also carries
the fletcher32 checksum so ``verify`` finds corrupted chunks. hdf5plugin (zstd/lz4) is not used:
a reader would then need the plugin too, and the Zarr backend already offers those codecs.
Group attributes that are not scalars are stored as JSON text; their names are listed in the
``json_attrs`` attribute. During the build the file lives at ``<out>.partial/data.h5`` beside the
manifest and is flushed after every shard.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from . import layout

DATA_FILE = "data.h5"


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
    """Writes the dataset arrays into ``<root>/data.h5``."""

    name = "hdf5"

    def __init__(self, partial: Path) -> None:
        self.path = partial / DATA_FILE  # what finalize renames to the output
        self.file: Any = None

    def create(
        self, sample_shape: tuple[int, ...], dtype: str, codec: str, shard_size: int
    ) -> None:
        import h5py

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
        self._shard_size = shard_size

    def open_existing(self, shard_size: int) -> None:
        import h5py

        try:
            self.file = h5py.File(self.path, "r+")
            self.file[layout.S2I]
        except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError for damaged files
            raise StoreError(
                f"{self.path}: cannot reopen the partial output ({exc}); "
                f"start over with --overwrite"
            ) from None
        self._shard_size = shard_size

    def column_names(self) -> list[str]:
        return sorted(k for k, v in self.file.items() if k != layout.S2I and hasattr(v, "shape"))

    def create_column(self, name: str, dtype: str) -> None:
        import h5py

        h5dtype = h5py.string_dtype("utf-8") if dtype == "str" else dtype
        self.file.create_dataset(
            name, shape=(0,), maxshape=(None,), dtype=h5dtype, chunks=(self._shard_size,)
        )

    def append(self, start: int, s2i: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        stop = start + len(s2i)
        for name, data in ((layout.S2I, s2i), *columns.items()):
            dset = self.file[name]
            dset.resize(stop, axis=0)
            dset[start:stop] = data.astype(object) if data.dtype.kind in "TU" else data
        self.file.flush()

    def truncate(self, count: int) -> None:
        for name in (layout.S2I, *self.column_names()):
            self.file[name].resize(count, axis=0)
        self.file.flush()

    def write_splits(self, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        root = self.file.require_group(layout.SPLITS)
        for name, parts in splits.items():
            sub = root.require_group(name)
            for part, idx in zip(layout.SPLIT_PARTS, parts, strict=True):
                if part in sub:
                    del sub[part]
                sub.create_dataset(part, data=np.asarray(idx, dtype=layout.SPLIT_DTYPE))

    def write_attrs(self, attrs: dict[str, Any]) -> None:
        encoded = []
        for key, value in attrs.items():
            if isinstance(value, (str, int, float, bool)):
                self.file.attrs[key] = value
            else:
                self.file.attrs[key] = json.dumps(value)
                encoded.append(key)
        self.file.attrs[layout.ATTR_JSON_NAMES] = json.dumps(sorted(encoded))

    def read_column(self, name: str) -> np.ndarray:
        """A whole committed column (a resumed pipeline needs them to compute the splits)."""
        return read_column(self.file, name)

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
