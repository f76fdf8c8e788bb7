"""Every on-disk name of an s2i dataset: the code side of ``docs/FORMAT.md``.

Writers, readers and the verifier take their names from here so the documented contract and the
code cannot drift apart. Change :data:`LAYOUT_VERSION` whenever a change here (or in the meaning
of a stored value) would break a reader written against the previous version.
"""

from __future__ import annotations

import numpy as np

#: Version of the on-disk layout (``s2i_layout_version`` attribute).
LAYOUT_VERSION = "1"

#: The samples: (N, S, 3, H, W), float16 or uint8, one chunk per sample.
S2I = "s2i"
#: Per-sample columns that every dataset has, with their stored dtypes.
LABEL = "label"
SAMPLE_ID = "sample_id"
NUM_FRAMES = "num_frames"
NUM_PERSONS = "num_persons"
REQUIRED_COLUMNS: dict[str, str] = {
    LABEL: "int16",
    SAMPLE_ID: "str",
    NUM_FRAMES: "int32",
    NUM_PERSONS: "int8",
}
#: dtype of every other column: one per metadata field of the spec (setup, camera, subject, ...).
FIELD_DTYPE = "int32"

#: Split index arrays live at ``splits/<name>/train`` and ``splits/<name>/test`` (int64).
SPLITS = "splits"
SPLIT_PARTS = ("train", "test")
SPLIT_DTYPE = "int64"

#: Group attributes. Given by the pipeline at finalize, except the two the store adds itself.
ATTR_VERSION = "s2i_layout_version"
ATTR_STORAGE = "storage"
PIPELINE_ATTRS = (
    "streams",
    "columns",
    "encoding",
    "spec",
    "spec_sha256",
    "stats",
    "source",
    "s2i_version",
    "report",
    "class_count",
)
REQUIRED_ATTRS = (ATTR_VERSION, ATTR_STORAGE, *PIPELINE_ATTRS)
#: HDF5 only: names of the attributes stored as JSON text (all non-scalar values).
ATTR_JSON_NAMES = "json_attrs"

#: Sample dtypes a dataset may hold.
SAMPLE_DTYPES = ("float16", "uint8")
#: Codecs per backend ("auto" resolves to one of these, see :func:`resolve_codec`).
ZARR_CODECS = ("none", "zstd", "lz4")
HDF5_CODECS = ("none", "gzip", "lzf")

#: Build directory/file suffix, lock file suffix and the per-shard commit manifest.
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
MANIFEST = "s2i_manifest.json"
#: Written once when a partial output begins: what it was started from (options, inputs), so a
#: refused ``--resume`` can say exactly what changed.
RUN_INFO = "s2i_run.json"

#: Default shard: the largest power of two of samples whose raw bytes stay within this budget.
SHARD_TARGET_BYTES = 64 * 2**20
SHARD_MIN, SHARD_MAX = 16, 8192


def sample_nbytes(sample_shape: tuple[int, ...], dtype: str) -> int:
    """Raw (uncompressed) bytes of one stored sample."""
    return int(np.prod(sample_shape)) * np.dtype(dtype).itemsize


def default_shard_size(sample_shape: tuple[int, ...], dtype: str) -> int:
    """Samples per shard: about 64 MiB raw, a power of two in [16, 8192].

    Compact samples (~10-60 KB) get 1024-8192 per shard, 224x224 images 64-256, so shard files
    stay large enough to keep the file count low and small enough to write as one unit.
    """
    per = sample_nbytes(sample_shape, dtype)
    size = SHARD_MIN
    while size * 2 <= SHARD_MAX and size * 2 * per <= SHARD_TARGET_BYTES:
        size *= 2
    return size


def is_image_shape(sample_shape: tuple[int, ...], dtype: str) -> bool:
    """Heuristic used by ``codec="auto"``: uint8 samples and large float samples are images."""
    return dtype == "uint8" or sample_shape[-1] * sample_shape[-2] >= 128 * 128


def resolve_codec(backend: str, codec: str, sample_shape: tuple[int, ...], dtype: str) -> str:
    """The concrete codec for ``codec`` (may be ``"auto"``); figures: benchmarks/RESULTS_store.md.

    ``auto``, by measurement on 2 cores: compact float16 grids compress only ~1.4x (zstd) at the
    cost of ~40% of the write and half the scan speed, so they stay raw. uint8 images: zstd
    (1.76x; lz4 only 1.29x). float16 images: blosc-lz4 with byte shuffle (1.70x and no slower
    to write than raw; zstd without shuffle 1.35x). HDF5: raw, because its built-in filters
    (lzf 1.6x, gzip 2x) cut write and read speed 4-20x; use a .zarr output for compression.
    """
    from ..errors import StoreError

    allowed = ZARR_CODECS if backend == "zarr" else HDF5_CODECS
    if codec == "auto":
        if backend == "hdf5" or not is_image_shape(sample_shape, dtype):
            return "none"
        return "zstd" if dtype == "uint8" else "lz4"
    if codec not in allowed:
        raise StoreError(
            f"codec {codec!r} is not available for {backend} output; choose one of "
            f"auto, {', '.join(allowed)}"
            + (" (zstd/lz4 need a .zarr output)" if backend == "hdf5" else "")
        )
    return codec
