"""Zarr v3 backend: one group, ``s2i`` sharded with one sample per chunk, columns chunked per shard.

Everything here is plain Zarr v3 (``bytes``/``zstd``/``blosc``/``crc32c`` codecs, default chunk
key encoding), so ``zarr.open_group(path)`` reads a dataset without s2i installed. zarr-python's
local store writes every key atomically (temp file + rename), so a killed writer leaves whole
shard files; the ones beyond the manifest are deleted on resume. During the build the group is
``<out>.partial/data.zarr`` beside the manifest (zarr warns about foreign files inside a group).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..urls import Url, location
from . import layout
from .remote import RemoteData, put_object
from .staging import fault_point, remove

DATA_NAME = "data.zarr"
#: Dimension names stored with the arrays (readable by xarray and other tools).
S2I_DIMS = ["sample", "stream", "channel", "y", "x"]


def _codecs(codec: str, dtype: str) -> list[Any]:
    """Bytes-to-bytes codecs of one sample chunk; crc32c last so corruption is detected on read."""
    import zarr.codecs as zc

    chain: list[Any] = []
    if codec == "zstd":
        chain.append(zc.ZstdCodec(level=1))
    elif codec == "lz4":
        chain.append(
            zc.BloscCodec(
                cname="lz4", clevel=5, shuffle="shuffle", typesize=np.dtype(dtype).itemsize
            )
        )
    chain.append(zc.Crc32cCodec())
    return chain


#: The index codecs of ``s2i``'s sharding codec, and the inner chunk codecs without compression.
_PLAIN_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]


@dataclass(frozen=True)
class ShardTarget:
    """Where and how the shard files of ``s2i`` are written without zarr-python: the array's
    folder (a local path, or the URL of its prefix in an object store), its geometry, and its
    compressor (``None``, or ``("zstd", config)`` / ``("blosc", config)`` as stored in the array
    metadata). Small and picklable, so a worker process can write shards while the parent keeps
    the store's metadata."""

    array_dir: str | Url
    sample_shape: tuple[int, ...]
    dtype: str
    shard_size: int
    compressor: tuple[str, tuple[tuple[str, Any], ...]] | None

    def path(self, index: int) -> Path | Url:
        """Shard ``index``'s file, or its object's URL."""
        return location(self.array_dir).joinpath("c", str(index),
                                                 *["0"] * len(self.sample_shape))

    def written(self, index: int) -> bool:
        """Whether shard ``index`` exists (an object store is asked afresh: another process may
        have written it since this one listed the prefix)."""
        path = self.path(index)
        if isinstance(path, Url):
            path.fs.invalidate_cache(path.path)
        return path.is_file()


def _target_of(array_dir: Path | Url, meta: dict[str, Any],
               shard_size: int) -> ShardTarget | None:
    """The :class:`ShardTarget` of an ``s2i`` array, or None for a layout it does not cover."""
    codec = meta["codecs"][0]
    conf = codec.get("configuration", {})
    inner = list(conf.get("codecs", ()))
    if (codec["name"] != "sharding_indexed" or list(conf.get("index_codecs", ())) != _PLAIN_CODECS
            or conf.get("index_location", "end") != "end" or len(inner) not in (2, 3)
            or inner[0]["name"] != "bytes" or inner[-1] != _PLAIN_CODECS[1]
            or inner[0].get("configuration", {}).get("endian", "little") != "little"):
        return None
    compressor = None
    if len(inner) == 3:
        name, config = inner[1]["name"], inner[1].get("configuration", {})
        if name not in ("zstd", "blosc"):
            return None
        compressor = (name, tuple(sorted(config.items())))
    shape = tuple(int(d) for d in meta["shape"][1:])
    if list(conf.get("chunk_shape", ())) != [1, *shape]:
        return None
    where = array_dir if isinstance(array_dir, Url) else str(array_dir)
    return ShardTarget(where, shape, str(np.dtype(meta["data_type"])), shard_size,
                       compressor)


_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


@functools.lru_cache(maxsize=8)
def _compressor(spec: tuple[str, tuple[tuple[str, Any], ...]]) -> Callable[[Any], bytes]:
    """numcodecs' encoder built exactly as zarr-python builds it for this codec configuration
    (``zarr.codecs.ZstdCodec`` / ``BloscCodec``), so the chunk bytes are the same."""
    name, items = spec
    config = dict(items)
    if name == "zstd":
        from numcodecs.zstd import Zstd

        return Zstd.from_config({"level": config["level"], "checksum": config["checksum"]}).encode
    from numcodecs.blosc import Blosc

    return Blosc.from_config({
        "cname": config["cname"], "clevel": config["clevel"],
        "shuffle": _BLOSC_SHUFFLE[config["shuffle"]], "blocksize": config["blocksize"],
        "typesize": config["typesize"],
    }).encode


def shard_pieces(rows: Sequence[np.ndarray], shard_size: int,
                 compressor: tuple[str, tuple[tuple[str, Any], ...]] | None = None,
                 ) -> list[memoryview]:
    """The bytes zarr writes for one shard of one-sample chunks (``bytes``, optionally zstd or
    blosc, then ``crc32c``), as consecutive pieces (written with ``writev``, never joined).

    Each sample little-endian in C order (compressed when asked), followed by its crc32c, then the
    shard index ((offset, nbytes) as little-endian uint64 per chunk, 2**64 - 1 for an empty slot
    of a short last shard) followed by the index's crc32c. zarr-python spends ~90-130 us per
    sample in its per-chunk codec pipeline for this; here it is one checksum (and compression)
    call per sample, and no shard-sized copy. ``rows`` may be views anywhere (shared memory).
    """
    import google_crc32c

    k = len(rows)
    encode = _compressor(compressor) if compressor is not None else None
    chunks: list[Any] = []
    for row in rows:
        data = np.ascontiguousarray(row, dtype=row.dtype.newbyteorder("<")).reshape(-1)
        raw = data.view(np.uint8)
        chunks.append(raw if encode is None else encode(raw))
    crcs = np.fromiter((google_crc32c.value(c) for c in chunks), np.dtype("<u4"), k)
    crc_bytes = crcs.view(np.uint8).reshape(k, 4)
    sizes = np.fromiter((len(c) + 4 for c in chunks), np.uint64, k)
    index = np.full((shard_size, 2), np.iinfo(np.uint64).max, np.dtype("<u8"))
    index[:k, 1] = sizes
    index[:k, 0] = np.cumsum(sizes) - sizes
    index_bytes = index.view(np.uint8).ravel()
    index_crc = np.array([google_crc32c.value(index_bytes)], np.dtype("<u4")).view(np.uint8)
    parts = [memoryview(piece) for i in range(k) for piece in (chunks[i], crc_bytes[i])]
    parts += [memoryview(index_bytes), memoryview(index_crc)]
    return parts


def write_shard_file(target: ShardTarget, index: int, rows: Sequence[np.ndarray]) -> None:
    """Write shard ``index`` of ``target`` from its sample rows, atomically: temp file + rename,
    as zarr's local store does (``truncate`` removes a left-over temp file), or in an object
    store one PUT of the whole object. The one shard writer of the Zarr output, run by the
    parent or by a worker (:mod:`s2i_prep.conversion.shards`)."""
    path = target.path(index)
    pieces = shard_pieces(rows, target.shard_size, target.compressor)
    if isinstance(path, Url):
        put_object(path, pieces)
        fault_point("shard-tmp")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        write_all(fh.fileno(), pieces)
    fault_point("shard-tmp")
    os.replace(tmp, path)


#: Pieces per ``writev`` call (POSIX guarantees at least 16; Linux and macOS allow 1,024).
_IOV_MAX = 1024


def write_all(fd: int, parts: list[memoryview]) -> None:
    """Write ``parts`` back to back to ``fd`` with ``writev``, resuming after short writes."""
    i = 0
    while i < len(parts):
        written = os.writev(fd, parts[i : i + _IOV_MAX])
        while i < len(parts) and written >= len(parts[i]):  # whole pieces (and empty ones)
            written -= len(parts[i])
            i += 1
        if written:
            parts[i] = parts[i][written:]


def read_column(group: Any, name: str) -> np.ndarray:
    """A whole 1-D array in memory; strings as a numpy ``str`` array (not ``StringDType``)."""
    data = np.asarray(group[name][...])
    return np.array(data.tolist(), dtype=str) if data.dtype.kind == "T" else data


class ZarrBackend:
    """Writes the dataset arrays into a Zarr v3 group at ``root`` (the partial directory)."""

    name = "zarr"

    def __init__(self, partial: Path | Url, remote: RemoteData | None = None) -> None:
        # what finalize renames to the output; an object-store output is built in place
        self.path = partial / DATA_NAME if remote is None else remote.url
        self.remote = remote
        self.group: Any = None
        self._arrays: tuple[Any, dict[str, Any]] = (None, {})

    def _store(self) -> Any:
        return self.path if self.remote is None else self.remote.zarr_store()

    def create(
        self, sample_shape: tuple[int, ...], dtype: str, codec: str, shard_size: int
    ) -> None:
        import zarr

        self.group = zarr.open_group(self._store(), mode="w-", zarr_format=3)
        self.group.create_array(
            layout.S2I,
            shape=(0, *sample_shape),
            dtype=dtype,
            chunks=(1, *sample_shape),
            shards=(shard_size, *sample_shape),
            compressors=_codecs(codec, dtype),
            fill_value=np.nan if dtype == "float16" else 0,
            config={"write_empty_chunks": True},
            dimension_names=S2I_DIMS,
        )
        self._shard_size = shard_size
        self._set_layout()

    def _set_layout(self) -> None:
        """How ``s2i``'s shards are written without zarr-python (``_layout``; None: zarr-python
        writes them), and ``target``, where worker processes may write them: local outputs and
        object stores (one PUT per shard), not memory://, which lives in this process."""
        arr = self.group[layout.S2I]
        self._layout = _target_of(self.path.joinpath(layout.S2I), arr.metadata.to_dict(),
                                  self._shard_size)
        in_process = self.remote is not None and self.remote.url.protocol == "memory"
        self.target = None if in_process else self._layout

    def open_existing(
        self, sample_shape: tuple[int, ...], dtype: str, codec: str, shard_size: int
    ) -> None:
        import zarr

        try:
            self.group = zarr.open_group(
                self._store(), mode="r+", zarr_format=3, use_consolidated=False
            )
            self.group[layout.S2I]
        except Exception as exc:  # zarr raises several unrelated types for a damaged group
            raise StoreError(
                f"{self.path}: cannot reopen the partial output ({exc}); "
                "start over with --overwrite"
            ) from None
        self._shard_size = shard_size
        self._set_layout()

    def column_names(self) -> list[str]:
        return sorted(k for k in self.group.array_keys() if k != layout.S2I)

    def create_column(self, name: str, dtype: str) -> None:
        kwargs: dict[str, Any] = (
            {"dtype": str, "fill_value": ""}
            if dtype == "str"
            else {"dtype": dtype, "fill_value": 0}
        )
        self.group.create_array(
            name, shape=(0,), chunks=(self._shard_size,), dimension_names=["sample"], **kwargs
        )

    def _array(self, name: str) -> Any:
        """The array ``name``, opened once per group: only this writer changes it, and each
        opening reads its metadata again (a round trip per array and shard on an object store)."""
        group, arrays = self._arrays
        if group is not self.group:  # created, reopened or closed since
            self._arrays = group, arrays = self.group, {}
        if name not in arrays:
            arrays[name] = self.group[name]
        return arrays[name]

    def append(self, start: int, s2i: Sequence[np.ndarray] | None,
               columns: dict[str, np.ndarray]) -> None:
        """Append samples ``start..`` and their columns; ``s2i`` None: the shard's file was
        already written by :func:`write_shard_file` (in a worker), only the shapes grow."""
        import zarr

        stop = start + (len(next(iter(columns.values()))) if s2i is None else len(s2i))
        # Columns (and s2i without a layout of ours) go through zarr-python, a whole shard's
        # inner chunks in one codec batch. Arrays reopened here do not keep the creation-time
        # write_empty_chunks=True (it is not stored in the metadata), and without it zarr compares
        # every sample to the fill value (~130 us per compact sample).
        settings = {"codec_pipeline.batch_size": max(stop - start, 1),
                    "array.write_empty_chunks": True}
        with zarr.config.set(settings):
            for name, data in ((layout.S2I, s2i), *columns.items()):
                arr = self._array(name)
                arr.resize((stop, *arr.shape[1:]))
                if data is None:
                    continue
                if name == layout.S2I and self._layout is not None and start % self._shard_size == 0:
                    write_shard_file(self._layout, start // self._shard_size, data)
                else:
                    arr[start:stop] = data if isinstance(data, np.ndarray) else np.stack(data)

    def truncate(self, count: int) -> None:
        """Drop every sample beyond ``count``: shapes and the chunk/shard files past them."""
        for name in self.group.array_keys():
            arr = self.group[name]
            per_file = (arr.shards or arr.chunks)[0]
            keep = -(-count // per_file)
            arr.resize((count, *arr.shape[1:]))
            if self.remote is not None:
                self.remote.truncate(name, keep)
                continue
            chunk_dir = self.path / name / "c"
            if chunk_dir.is_dir():
                for entry in chunk_dir.iterdir():
                    if not entry.name.isdigit() or int(entry.name) >= keep:
                        remove(entry)
        if self.remote is not None:
            return  # a PUT leaves no temporary object
        for leftover in self.path.rglob(
            "*.partial"
        ):  # zarr's temporary files of an interrupted write
            remove(leftover)

    def finish(
        self, splits: dict[str, tuple[np.ndarray, np.ndarray]], attrs: dict[str, Any]
    ) -> None:
        """Write splits and attributes and consolidate the metadata of the finished group."""
        self.write_splits(splits)
        if self.remote is not None:  # the finished root, written last: see store/remote.py
            self.remote.write_finished_root(attrs)
            self.group = None
            return
        self.group.attrs.update(attrs)
        self.close(finished=True)

    def write_splits(self, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        root = self.group.require_group(layout.SPLITS)
        for name, parts in splits.items():
            sub = root.require_group(name)
            for part, idx in zip(layout.SPLIT_PARTS, parts, strict=True):
                sub.create_array(
                    part,
                    shape=idx.shape,
                    dtype=layout.SPLIT_DTYPE,
                    chunks=(max(len(idx), 1),),
                    dimension_names=["index"],
                    overwrite=True,
                )[...] = idx

    def read_column(self, name: str) -> np.ndarray:
        """A whole committed column (a resumed pipeline needs them to compute the splits)."""
        return read_column(self.group, name)

    def close(self, finished: bool = False) -> None:
        """Consolidate the metadata of a finished group (one fewer read per array when opening)."""
        import zarr

        if finished and self.group is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message="Consolidated metadata is currently not part"
                )
                zarr.consolidate_metadata(self.path, zarr_format=3)
        self.group = None


class ZarrSource:
    """Read side: arrays and attributes of a finished Zarr dataset."""

    def __init__(self, path: Path | Url) -> None:
        import zarr

        try:
            store = RemoteData(path).zarr_store(read_only=True) if isinstance(path, Url) else path
            self.group: Any = zarr.open_group(store, mode="r")
        except Exception as exc:
            raise StoreError(f"{path}: not a readable Zarr v3 group ({exc})") from None

    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def array_names(self) -> list[str]:
        return sorted(self.group.array_keys())

    def array(self, name: str) -> Any:
        return self.group[name]

    def read_column(self, name: str) -> np.ndarray:
        return read_column(self.group, name)

    def split_names(self) -> list[str]:
        if layout.SPLITS not in self.group:
            return []
        return sorted(self.group[layout.SPLITS].group_keys())

    def split_part(self, name: str, part: str) -> np.ndarray | None:
        key = f"{layout.SPLITS}/{name}/{part}"
        return self.group[key][...] if key in self.group else None

    def close(self) -> None:
        self.group = None


def missing_shard_files(path: Path | Url, num_samples: int, shard_size: int, ndim: int) -> list[int]:
    """Shards of ``s2i`` whose file is absent (zarr would silently read them as the fill value)."""
    count = -(-num_samples // shard_size)
    rest = ["0"] * (ndim - 1)
    base = path / layout.S2I / "c"
    if isinstance(path, Url):  # one listing, not one request per shard
        try:
            path.fs.invalidate_cache(base.path)
            found = set(path.fs.find(base.path))
        except FileNotFoundError:
            found = set()
        return [i for i in range(count) if base.key(str(i), *rest) not in found]
    return [i for i in range(count) if not base.joinpath(str(i), *rest).is_file()]
