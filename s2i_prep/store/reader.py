"""``open_dataset``: the read side shared by inspect, verify and preview (Zarr or HDF5 alike).

This is the reference reader, not the training fast path: it goes through zarr-python/h5py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..urls import Url, location
from . import layout, remote, staging
from .hdf5_store import Hdf5Source
from .writer import backend_of
from .zarr_store import ZarrSource


class DatasetReader:
    """A finished s2i dataset: decoded attributes, arrays, columns and splits.

    Attributes:
        path: the dataset path.
        backend: ``"zarr"`` or ``"hdf5"``.
        attrs: group attributes, JSON values decoded (HDF5 JSON text included).
    """

    def __init__(self, path: Path | Url, check_version: bool = True) -> None:
        self.path = location(path)
        if isinstance(self.path, Url) and backend_of(self.path) != "zarr":
            raise StoreError(f"{self.path}: HDF5 datasets are read from local files only; "
                             "copy it to a local or shared disk, or convert to .zarr")
        if not self.path.exists():
            hint = ""
            if staging.partial_path(self.path).exists():
                hint = " (only an unfinished partial output exists: resume or rerun the conversion)"
            raise StoreError(f"{self.path}: no such dataset{hint}")
        if (isinstance(self.path, Url) and check_version and not remote.is_finished(self.path)
                and staging.partial_path(self.path).exists()):  # built in place: see remote.py
            raise StoreError(f"{self.path}: an unfinished conversion is being built here (its "
                             "root has no s2i_layout_version yet): resume or rerun it")
        self.backend = backend_of(self.path)
        self._source: ZarrSource | Hdf5Source = (
            ZarrSource if self.backend == "zarr" else Hdf5Source
        )(self.path)
        self.attrs: dict[str, Any] = self._source.attrs()
        version = self.attrs.get(layout.ATTR_VERSION)
        if check_version and version != layout.LAYOUT_VERSION:
            self.close()
            raise StoreError(
                f"{self.path}: layout version {version!r}, this s2i reads version "
                f"{layout.LAYOUT_VERSION!r}" + (" (not an s2i dataset?)" if version is None else "")
            )

    def __len__(self) -> int:
        return int(self.array(layout.S2I).shape[0])

    def array_names(self) -> list[str]:
        """Top-level arrays: ``s2i`` and the per-sample columns."""
        return self._source.array_names()

    def column_names(self) -> list[str]:
        """Per-sample columns (every top-level array but ``s2i``)."""
        return [n for n in self.array_names() if n != layout.S2I]

    def array(self, name: str) -> Any:
        """The lazy array object (zarr ``Array`` or h5py ``Dataset``); KeyError if absent."""
        return self._source.array(name)

    def column(self, name: str) -> np.ndarray:
        """A whole per-sample column in memory; strings come back as a numpy ``str`` array."""
        return self._source.read_column(name)

    def sample(self, index: int) -> np.ndarray:
        """One stored sample, (S, 3, H, W)."""
        return np.asarray(self.array(layout.S2I)[index])

    def splits(self) -> dict[str, dict[str, np.ndarray | None]]:
        """``{name: {"train": idx, "test": idx}}``; a missing part is ``None``."""
        return {
            name: {part: self._source.split_part(name, part) for part in layout.SPLIT_PARTS}
            for name in self._source.split_names()
        }

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> DatasetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_dataset(path: str | Path | Url, check_version: bool = True) -> DatasetReader:
    """Open a finished dataset (StoreError if absent, unreadable or of another layout version).
    ``path`` may be an fsspec URL of a Zarr dataset (``s3://bucket/out.zarr``, s2i_prep.urls)."""
    return DatasetReader(location(path), check_version=check_version)
