"""Dataset store: Zarr v3 / HDF5 writers with atomic shards, the read side, inspect and verify.

The on-disk contract is ``docs/FORMAT.md``; its names live in :mod:`s2i_prep.store.layout`.
"""

from .layout import LAYOUT_VERSION
from .reader import DatasetReader, open_dataset
from .validation import inspect_dataset, verify_dataset
from .writer import DatasetWriter, open_writer

__all__ = [
    "LAYOUT_VERSION",
    "DatasetReader",
    "DatasetWriter",
    "inspect_dataset",
    "open_dataset",
    "open_writer",
    "verify_dataset",
]
