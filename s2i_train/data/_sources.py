"""One converted dataset opened for training: geometry, labels, the selected samples.

Everything here is read once in the main process through ``s2i_prep``'s reference reader (small:
attributes, the label column, split indices); the samples themselves are read by ``_readers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2i_prep.errors import StoreError
from s2i_prep.store import layout
from s2i_prep.store.reader import open_dataset
from s2i_prep.store.zarr_store import missing_shard_files
from s2i_prep.urls import Url

from ..errors import DatasetFormatError, DatasetRequestError
from ._readers import StoreGeometry

SUBSETS = layout.SPLIT_PARTS  # ("train", "test")


@dataclass(frozen=True)
class SourceInfo:
    """One dataset of an :class:`~s2i_train.data.S2IDataset`, as the training loop needs it.

    Attributes:
        path: the dataset (``.zarr`` directory or ``.h5`` file).
        format: skeleton format it was converted from (``source.format``, e.g. ``ntu25``).
        streams: the streams this dataset yields, in item order (a subset of ``stored_streams``).
        stored_streams: every stream stored, in stored order.
        form: ``"compact"`` (grid in metres: rows = frames, columns = persons x joints) or
            ``"image"`` (already mapped/resized to ``image_size``).
        dtype: stored dtype (``float16`` or ``uint8``).
        height, width: rows and columns of one stored plane.
        frames: rows of the compact grid before any image resize (``encoding.frames``).
        pixel_mapping: ``encoding.pixel_mapping`` (what ``s2i_train.transforms`` reproduces).
        class_count: the dataset's own label space.
        label_offset: added to its labels in the concatenated label space.
        stats: per-stream statistics of the stored values (``stats`` attribute).
        columns: the compact-grid column layout (``columns`` attribute).
    """

    path: Path | Url
    format: str
    streams: tuple[str, ...]
    stored_streams: tuple[str, ...]
    form: str
    dtype: str
    height: int
    width: int
    frames: int
    pixel_mapping: dict[str, Any]
    class_count: int
    label_offset: int
    stats: dict[str, Any] = field(repr=False)
    columns: tuple[dict[str, Any], ...] = field(repr=False)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of one item ``x``: (S, 3, H, W) with S = ``len(streams)``."""
        return (len(self.streams), 3, self.height, self.width)


@dataclass
class OpenedSource:
    """A source plus its selected samples (stored indices, local labels, names) and geometry."""

    info: SourceInfo
    geometry: StoreGeometry
    backend: str
    stream_index: tuple[int, ...]
    indices: np.ndarray  # int64 stored indices, ascending
    labels: np.ndarray  # int64 local labels of ``indices``
    sample_ids: np.ndarray  # str


def _codec_of(reader: Any, backend: str, storage: dict[str, Any]) -> str:
    """The codec name, and "other" when the ``s2i`` codec chain is not the one s2i writes."""
    codec = str(storage.get("codec", "other"))
    if backend != "zarr":
        return codec
    meta = reader.array(layout.S2I).metadata.to_dict()
    outer = meta["codecs"][0] if meta.get("codecs") else {}
    conf = outer.get("configuration", {})
    inner = [c["name"] for c in conf.get("codecs", ())]
    expected = {
        "none": ["bytes", "crc32c"],
        "zstd": ["bytes", "zstd", "crc32c"],
        "lz4": ["bytes", "blosc", "crc32c"],
    }
    key = meta.get("chunk_key_encoding", {})
    plain_keys = (
        key.get("name") == "default" and key.get("configuration", {}).get("separator", "/") == "/"
    )
    endian = next((c for c in conf.get("codecs", ()) if c["name"] == "bytes"), {})
    little = endian.get("configuration", {}).get("endian", "little") == "little"
    if (
        outer.get("name") != "sharding_indexed"
        or expected.get(codec) != inner
        or conf.get("index_location", "end") != "end"
        or [c["name"] for c in conf.get("index_codecs", ())] != ["bytes", "crc32c"]
        or not plain_keys
        or not little
    ):
        return "other"
    return codec


def open_source(
    path: Path | Url,
    split: str | None,
    subset: str,
    streams: tuple[str, ...] | None,
    label_offset: int,
) -> OpenedSource:
    """Open ``path`` and select ``split``/``subset``/``streams``; every bad request raises here."""
    try:
        reader = open_dataset(path)
    except StoreError as exc:
        raise DatasetFormatError(str(exc)) from None
    try:
        attrs = reader.attrs
        storage = attrs[layout.ATTR_STORAGE]
        encoding = attrs["encoding"]
        stored_streams = tuple(attrs["streams"])
        sample_shape = tuple(int(v) for v in storage["sample_shape"])
        num = len(reader)
        array = reader.array(layout.S2I)
        found = (tuple(int(v) for v in array.shape[1:]), str(array.dtype))
        if found != (sample_shape, str(storage.get("dtype"))) or len(stored_streams) != found[0][0]:
            raise DatasetFormatError(
                f"{path}: s2i holds {found[0]} {found[1]} samples but the attributes say "
                f"{sample_shape} {storage.get('dtype')} with streams {list(stored_streams)}"
            )
        if streams is None:
            chosen = stored_streams
        else:
            unknown = [s for s in streams if s not in stored_streams]
            if unknown:
                raise DatasetRequestError(
                    f"{path}: stream(s) {unknown} not stored; this dataset has "
                    f"{list(stored_streams)}"
                )
            chosen = tuple(streams)
        if split is None:
            indices = np.arange(num, dtype=np.int64)
        else:
            splits = reader.splits()
            if split not in splits:
                raise DatasetRequestError(
                    f"{path}: no split {split!r}; this dataset has {sorted(splits) or 'none'}"
                )
            part = splits[split][subset]
            if part is None:
                raise DatasetRequestError(f"{path}: split {split!r} has no {subset!r} part")
            indices = np.asarray(part, dtype=np.int64)
            if indices.size and (
                indices.min() < 0 or indices.max() >= num or (np.diff(indices) <= 0).any()
            ):
                raise DatasetFormatError(
                    f"{path}: splits/{split}/{subset} is not a sorted list of indices in "
                    f"0..{num - 1}"
                )
        labels = reader.column(layout.LABEL).astype(np.int64)
        class_count = int(attrs["class_count"])
        bad = (labels < 0) | (labels >= class_count)
        if bad.any():
            raise DatasetFormatError(
                f"{path}: label {int(labels[bad][0])} of sample {int(np.flatnonzero(bad)[0])} is "
                f"outside 0..{class_count - 1} (class_count)"
            )
        ids = reader.column(layout.SAMPLE_ID)
        backend = reader.backend
        codec = _codec_of(reader, backend, storage)
        shard_size = int(storage.get("shard_size") or 1024)
        if backend == "zarr":
            missing = missing_shard_files(path, num, shard_size, len(sample_shape) + 1)
            if missing:
                first = missing[0] * shard_size
                raise DatasetFormatError(
                    f"{path}: {len(missing)} shard file(s) of s2i missing (first: shard "
                    f"{missing[0]}, samples {first}..{min(first + shard_size, num) - 1}); "
                    f"run s2i-prep verify"
                )
        image_size = encoding.get("image_size")
        info = SourceInfo(
            path=path,
            format=str(attrs.get("source", {}).get("format", "unknown")),
            streams=chosen,
            stored_streams=stored_streams,
            form="compact" if image_size is None else "image",
            dtype=str(storage["dtype"]),
            height=sample_shape[2],
            width=sample_shape[3],
            frames=int(encoding["frames"]),
            pixel_mapping=dict(encoding.get("pixel_mapping") or {}),
            class_count=class_count,
            label_offset=label_offset,
            stats=dict(attrs.get("stats") or {}),
            columns=tuple(attrs.get("columns") or ()),
        )
        geometry = StoreGeometry(path, num, sample_shape, info.dtype, shard_size, codec)
        return OpenedSource(
            info=info,
            geometry=geometry,
            backend=backend,
            stream_index=tuple(stored_streams.index(s) for s in chosen),
            indices=indices,
            labels=labels[indices],
            sample_ids=ids[indices],
        )
    except (KeyError, TypeError) as exc:
        raise DatasetFormatError(
            f"{path}: attribute or array missing or malformed ({exc!r})"
        ) from None
    finally:
        reader.close()
