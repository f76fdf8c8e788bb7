"""Read paths: stored samples of one dataset -> a numpy batch, by stored index.

Every reader fills ``out`` (n, S, 3, H, W) in the stored dtype for sorted, unique stored indices
(sample ``idx[j]`` into row ``rows[j]``, so a shuffled batch is read in storage order straight
into its place) and checks what it reads. Files are opened lazily in the process that reads: a
reader built in the main process and pickled or forked into DataLoader workers reopens there.
Figures behind the default choice: benchmarks/RESULTS.md, "Training loader".

- ``ShardReader``: Zarr v3 without zarr-python. Caches each shard's index (crc32c checked), reads
  each run of adjacent uncompressed samples with one ``preadv`` into their rows and checks every
  sample's crc32c in place; compressed chunks (zstd, blosc) are checked, then decoded in place.
  A dataset at an fsspec URL (``s3://``) is read the same way with range requests: one
  concurrent ``cat_ranges`` of coalesced byte ranges per batch, over every shard it touches.
- ``Hdf5Reader``: h5py ``read_direct`` per sample, per run when loading (fletcher32 checked).
- ``ZarrReader``: plain zarr-python, the reference the benchmark compares against.

The in-memory path (``S2IDataset(read="memory")``) loads through one of these once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2i_prep.urls import Url

from ..errors import SampleReadError

#: Shard index entry of a chunk that was never written.
_EMPTY = np.uint64(2**64 - 1)
#: Compressed chunks (and every chunk of a remote shard): one byte range per run of samples in a
#: shard when it wastes at most this factor of bandwidth over reading each sample separately;
#: else one ``pread`` (one range request) per sample.
_SPAN_SLACK = 2.0
#: Samples per ``preadv`` call: two buffers each, within Linux's IOV_MAX of 1024.
_IOV_PAIRS = 512


@dataclass(frozen=True)
class StoreGeometry:
    """What a reader needs to know about ``s2i`` (from the dataset attributes and metadata)."""

    path: Path | Url  # a local dataset, or an fsspec URL of a Zarr one (read with range requests)
    num_samples: int
    sample_shape: tuple[int, ...]
    dtype: str
    shard_size: int
    codec: str  # "none" | "zstd" | "lz4" (blosc) | anything else: not readable by ShardReader

    @property
    def sample_nbytes(self) -> int:
        return int(np.prod(self.sample_shape)) * np.dtype(self.dtype).itemsize


class _LazyFiles:
    """Per-process file handles: dropped on pickling and when the process id changes (fork)."""

    def __init__(self) -> None:
        self._pid = -1
        self._handles: dict[Any, Any] = {}
        self._lock = threading.Lock()  # reader threads (ThreadLoader) open each file once

    def get(self, key: Any, opener: Any) -> Any:
        handle = self._handles.get(key) if self._pid == os.getpid() else None
        if handle is not None:
            return handle
        with self._lock:
            if self._pid != os.getpid():
                self._handles = {}  # inherited across fork: never share an h5py handle
                self._pid = os.getpid()
            handle = self._handles.get(key)
            if handle is None:
                handle = self._handles[key] = opener()
        return handle

    def close(self) -> None:
        if self._pid == os.getpid():
            for handle in self._handles.values():
                if isinstance(handle, int):
                    os.close(handle)
                elif hasattr(handle, "close"):
                    handle.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]


class ShardReader:
    """Zarr v3 ``s2i`` read directly: shard index cached, chunks crc32c-checked and decoded."""

    name = "shard"

    def __init__(self, geo: StoreGeometry) -> None:
        if geo.codec not in ("none", "zstd", "lz4"):
            raise ValueError(f"ShardReader cannot decode codec {geo.codec!r}")
        self.geo = geo
        self._files = _LazyFiles()
        self._index: dict[int, np.ndarray] = {}
        self._index_pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"geo": self.geo, "_files": self._files, "_index": {}, "_index_pid": -1}

    def shard_path(self, shard: int) -> Path | Url:
        return self.geo.path.joinpath(self._shard_key(shard))

    def _shard_key(self, shard: int) -> str:
        return "/".join(("s2i", "c", str(shard), *["0"] * len(self.geo.sample_shape)))

    def _missing(self, shard: int) -> SampleReadError:
        first = shard * self.geo.shard_size
        last = min(first + self.geo.shard_size, self.geo.num_samples) - 1
        return SampleReadError(
            f"{self.geo.path}: shard file {self._shard_key(shard)} of samples "
            f"{first}..{last} is missing (the dataset is incomplete; run s2i-prep verify)"
        )

    def _fd(self, shard: int) -> int:
        def opener() -> int:
            try:
                return os.open(self.shard_path(shard), os.O_RDONLY)
            except FileNotFoundError:
                raise self._missing(shard) from None

        return int(self._files.get(shard, opener))

    def _remote_size(self, shard: int) -> int:
        """Bytes of a remote shard object (one request per shard and process, then cached)."""

        def opener() -> tuple[int]:
            url = self.shard_path(shard)
            try:
                return (int(url.fs.size(url.path)),)  # a tuple: _LazyFiles closes int handles
            except FileNotFoundError:
                raise self._missing(shard) from None
            except Exception as exc:  # noqa: BLE001 - any backend's network or service error
                raise SampleReadError(f"{url}: cannot read the shard: {type(exc).__name__}: "
                                      f"{exc}") from None

        return int(self._files.get(("size", shard), opener)[0])

    def _remote_ranges(self, shards: list[int], starts: list[int], ends: list[int]
                       ) -> list[bytes]:
        """Byte ranges of remote shards (``shards[k]``'s ``starts[k]:ends[k]``), fetched
        concurrently with one ``cat_ranges``; errors name the shard."""
        paths = [self.shard_path(k).path for k in shards]  # type: ignore[union-attr]
        try:
            blobs = self.geo.path.fs.cat_ranges(paths, starts, ends)  # type: ignore[union-attr]
        except FileNotFoundError:
            blobs = [FileNotFoundError()] * len(paths)
        except Exception as exc:  # noqa: BLE001 - any backend's network or service error
            raise SampleReadError(f"{self.geo.path}: cannot read shards {sorted(set(shards))}: "
                                  f"{type(exc).__name__}: {exc}") from None
        for shard, blob in zip(shards, blobs):
            if isinstance(blob, FileNotFoundError):
                raise self._missing(shard)
            if isinstance(blob, BaseException):
                raise SampleReadError(f"{self.shard_path(shard)}: cannot read the shard: "
                                      f"{type(blob).__name__}: {blob}")
        return blobs

    def shard_index(self, shard: int) -> np.ndarray:
        """(shard_size, 2) uint64 (offset, nbytes) of every inner chunk, crc32c checked, cached."""
        if self._index_pid != os.getpid():
            self._index, self._index_pid = {}, os.getpid()
        index = self._index.get(shard)
        if index is not None:
            return index
        import google_crc32c

        remote = isinstance(self.geo.path, Url)
        fd = -1 if remote else self._fd(shard)
        size = self._remote_size(shard) if remote else os.fstat(fd).st_size
        nbytes = 16 * self.geo.shard_size + 4
        where = f"{self.geo.path}: shard file {self._shard_key(shard)}"
        if size < nbytes:
            raise SampleReadError(f"{where}: {size} bytes, too short for its {nbytes}-byte index")
        if remote:
            raw = self._remote_ranges([shard], [size - nbytes], [size])[0]
        else:
            raw = os.pread(fd, nbytes, size - nbytes)
        body = raw[:-4]
        if len(raw) != nbytes or google_crc32c.value(body) != int.from_bytes(raw[-4:], "little"):
            raise SampleReadError(f"{where}: shard index fails its crc32c check (corrupt file)")
        index = np.frombuffer(body, np.dtype("<u8")).reshape(self.geo.shard_size, 2)
        filled = index[:, 0] != _EMPTY
        ends = index[filled, 0] + index[filled, 1]
        if ends.size and int(ends.max()) > size - nbytes:
            raise SampleReadError(f"{where}: index points past the end of the file (truncated?)")
        self._index[shard] = index
        return index

    def read(self, idx: np.ndarray, out: np.ndarray, rows: np.ndarray | None = None) -> None:
        ss = self.geo.shard_size
        shards = idx // ss
        bounds = np.flatnonzero(np.diff(shards)) + 1
        starts = np.concatenate(([0], bounds))
        stops = np.concatenate((bounds, [len(idx)]))
        flat = out.reshape(len(out), -1).view(np.uint8)
        rows = np.arange(len(idx)) if rows is None else rows
        runs = [(int(shards[a]), idx[a:b], rows[a:b]) for a, b in zip(starts.tolist(),
                                                                       stops.tolist())]
        if isinstance(self.geo.path, Url):
            self._read_remote(runs, flat)
            return
        for shard, run_idx, run_rows in runs:
            self._read_run(shard, run_idx, flat, run_rows)

    def _entries(self, shard: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, sizes) of samples ``idx`` of ``shard``, every one written and, without
        compression, of the exact size."""
        entries = self.shard_index(shard)[idx - shard * self.geo.shard_size]
        offsets, sizes = entries[:, 0], entries[:, 1]
        if (offsets == _EMPTY).any():
            missing = idx[offsets == _EMPTY].tolist()
            raise SampleReadError(
                f"{self.geo.path}: samples {missing[:8]} were never written (empty chunks in "
                f"shard {shard}; the dataset is incomplete)"
            )
        expect = self.geo.sample_nbytes + 4
        if self.geo.codec == "none" and (sizes != expect).any():
            bad = int(idx[np.flatnonzero(sizes != expect)[0]])
            raise SampleReadError(
                f"{self.geo.path}: sample {bad} has a {int(sizes[sizes != expect][0])}-byte chunk, "
                f"expected {expect} (uncompressed sample + crc32c)"
            )
        return offsets, sizes

    def _read_run(self, shard: int, idx: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
        """Samples ``idx`` (sorted, all in ``shard``) into rows ``rows`` of ``out`` (n, sample
        bytes) uint8."""
        offsets, sizes = self._entries(shard, idx)
        if self.geo.codec == "none":
            self._read_raw(self._fd(shard), shard, idx, offsets, out, rows)
        else:
            chunks = self._local_chunks(self._fd(shard), offsets, sizes)
            self._place(shard, idx, chunks, out, rows, sizes)

    def _read_remote(self, runs: list[tuple[int, np.ndarray, np.ndarray]], out: np.ndarray
                     ) -> None:
        """Remote shards: the byte ranges of every shard the batch touches in ONE concurrent
        ``cat_ranges`` (one round trip per batch on a store with latency, not one per shard or
        sample). Within a shard, chunks are grouped into one range while it wastes at most
        ``_SPAN_SLACK`` times the bytes it needs (a request costs a round trip and, on S3, a
        fee)."""
        plans = []
        shards: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        for shard, idx, rows in runs:
            offsets, sizes = self._entries(shard, idx)
            groups: list[list[int]] = []  # [first chunk, end chunk, start byte, end byte, used]
            for j, (o, n) in enumerate(zip(offsets.tolist(), sizes.tolist())):
                last = groups[-1] if groups else None
                if last and last[3] <= o and o + n - last[2] <= _SPAN_SLACK * (last[4] + n):
                    last[1], last[3], last[4] = j + 1, o + n, last[4] + n
                else:
                    groups.append([j, j + 1, o, o + n, n])
            plans.append((shard, idx, rows, offsets, sizes, groups, len(starts)))
            shards += [shard] * len(groups)
            starts += [g[2] for g in groups]
            ends += [g[3] for g in groups]
        blobs = self._remote_ranges(shards, starts, ends)
        for shard, idx, rows, offsets, sizes, groups, first in plans:
            chunks: list[np.ndarray] = []
            for (a, b, lo, _, _), blob in zip(groups, blobs[first : first + len(groups)]):
                buf = np.frombuffer(blob, np.uint8)
                chunks += [buf[o - lo : o - lo + n]
                           for o, n in zip(offsets[a:b].tolist(), sizes[a:b].tolist())]
            self._place(shard, idx, chunks, out, rows, sizes)

    def _place(self, shard: int, idx: np.ndarray, chunks: list[np.ndarray], out: np.ndarray,
               rows: np.ndarray, sizes: np.ndarray) -> None:
        """Check each chunk's crc32c, then copy (uncompressed) or decode it into its row."""
        import google_crc32c

        raw = self.geo.codec == "none"
        for j, (chunk, row) in enumerate(zip(chunks, rows.tolist())):
            if len(chunk) != int(sizes[j]) or google_crc32c.value(chunk[:-4]) != int.from_bytes(
                chunk[-4:].tobytes(), "little"
            ):
                self._corrupt(shard, int(idx[j]))
            if raw:
                out[row] = chunk[:-4]
            else:
                self._decode_into(chunk[:-4], out[row], int(idx[j]))

    def _local_chunks(self, fd: int, offsets: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
        lo = int(offsets.min())
        span = int((offsets + sizes).max()) - lo
        # numpy views of the read bytes: google_crc32c takes read-only buffers, not memoryviews
        if span <= _SPAN_SLACK * int(sizes.sum()):
            buf = np.frombuffer(os.pread(fd, span, lo), np.uint8)
            chunks = [buf[o - lo : o - lo + n] for o, n in zip(offsets.tolist(), sizes.tolist())]
        else:
            chunks = [
                np.frombuffer(os.pread(fd, n, o), np.uint8)
                for o, n in zip(offsets.tolist(), sizes.tolist())
            ]
        return chunks

    def _read_raw(
        self,
        fd: int,
        shard: int,
        idx: np.ndarray,
        offsets: np.ndarray,
        out: np.ndarray,
        rows: np.ndarray,
    ) -> None:
        """Uncompressed chunks read with ``preadv`` straight into their rows of ``out`` (the
        4-byte checksums into a side buffer), one call per run of adjacent chunks; then every
        sample's crc32c is checked in place."""
        import google_crc32c

        per = out.shape[1] + 4
        crcs = np.empty((len(idx), 4), np.uint8)
        breaks = np.flatnonzero(np.diff(offsets) != per) + 1
        starts = np.concatenate(([0], breaks)).tolist()
        stops = np.concatenate((breaks, [len(idx)])).tolist()
        row_list = rows.tolist()
        for a, b in zip(starts, stops):
            for lo in range(a, b, _IOV_PAIRS):
                hi = min(b, lo + _IOV_PAIRS)
                bufs: list[memoryview] = []
                for j in range(lo, hi):
                    bufs += (memoryview(out[row_list[j]]), memoryview(crcs[j]))
                got = os.preadv(fd, bufs, int(offsets[lo]))
                if got != (hi - lo) * per:
                    self._corrupt(shard, int(idx[lo + got // per]))
        stored = crcs.view("<u4").ravel()
        for j, row in enumerate(row_list):
            if google_crc32c.value(out[row]) != int(stored[j]):
                self._corrupt(shard, int(idx[j]))

    def _corrupt(self, shard: int, sample: int) -> None:
        raise SampleReadError(
            f"{self.geo.path}: sample {sample} fails its crc32c check "
            f"(shard {shard} is corrupt or truncated)"
        )

    def _decode_into(self, payload: np.ndarray, dest: np.ndarray, sample: int) -> None:
        """Decompress one chunk straight into ``dest`` after checking, from the frame header,
        that it holds exactly ``dest.nbytes`` bytes (the decoders accept a larger buffer and
        would leave its tail stale)."""
        size = _content_size(self.geo.codec, payload)
        try:
            if size is None:  # no size in the header: decode, then compare
                data = np.frombuffer(self._decoder().decode(payload), np.uint8)
                size = len(data)
                if size == dest.nbytes:
                    dest[:] = data
            elif size == dest.nbytes:
                self._decoder().decode(payload, out=dest)
        except (ValueError, RuntimeError) as exc:
            raise SampleReadError(
                f"{self.geo.path}: sample {sample} cannot be decompressed ({exc})"
            ) from None
        if size != dest.nbytes:
            raise SampleReadError(
                f"{self.geo.path}: sample {sample} decodes to {size} bytes, expected {dest.nbytes}"
            )

    def _decoder(self) -> Any:
        if self.geo.codec == "zstd":
            from numcodecs.zstd import Zstd

            return Zstd()
        from numcodecs.blosc import Blosc

        return Blosc()

    def close(self) -> None:
        self._files.close()


def _content_size(codec: str, payload: np.ndarray) -> int | None:
    """Decompressed size recorded in a zstd frame or blosc header, ``None`` if absent/unknown."""
    head = payload[:18].tobytes()
    if codec == "lz4":  # blosc: version, versionlz, flags, typesize, nbytes (uint32 LE), ...
        return int.from_bytes(head[4:8], "little") if len(head) >= 16 else None
    if len(head) < 6 or int.from_bytes(head[:4], "little") != 0xFD2FB528:
        return None
    descriptor = head[4]
    single = (descriptor >> 5) & 1
    field = (1 if single else 0, 2, 4, 8)[descriptor >> 6]
    if field == 0:
        return None
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3]
    if len(head) < pos + field:
        return None
    value = int.from_bytes(head[pos : pos + field], "little")
    return value + 256 if field == 2 else value


class Hdf5Reader:
    """h5py: one ``read_direct`` per sample (HDF5 checks fletcher32 and raises on corruption)."""

    name = "hdf5"

    def __init__(self, geo: StoreGeometry) -> None:
        self.geo = geo
        self._files = _LazyFiles()

    def _dataset(self) -> Any:
        def opener() -> Any:
            import h5py

            return h5py.File(self.geo.path, "r")

        return self._files.get("file", opener)["s2i"]

    def read(self, idx: np.ndarray, out: np.ndarray, rows: np.ndarray | None = None) -> None:
        dset = self._dataset()
        if rows is None:  # runs of consecutive samples, one call each (loading into memory)
            breaks = (np.flatnonzero(np.diff(idx) != 1) + 1).tolist()
            for a, b in zip([0, *breaks], [*breaks, len(idx)], strict=True):
                self._read(dset, out, np.s_[int(idx[a]) : int(idx[b - 1]) + 1], np.s_[a:b])
            return
        for i, j in zip(idx.tolist(), rows.tolist(), strict=True):
            self._read(dset, out, np.s_[i], np.s_[j])

    def _read(self, dset: Any, out: np.ndarray, source: Any, dest: Any) -> None:
        try:
            dset.read_direct(out, source, dest)
        except OSError as exc:
            first = source.start if isinstance(source, slice) else source
            last = source.stop - 1 if isinstance(source, slice) else source
            what = f"sample {first}" if first == last else f"samples {first}..{last}"
            raise SampleReadError(f"{self.geo.path}: {what} cannot be read ({exc})") from None

    def close(self) -> None:
        self._files.close()


class ZarrReader:
    """Plain zarr-python ``get_orthogonal_selection``: the reference read path."""

    name = "zarr"

    def __init__(self, geo: StoreGeometry) -> None:
        self.geo = geo
        self._files = _LazyFiles()

    def read(self, idx: np.ndarray, out: np.ndarray, rows: np.ndarray | None = None) -> None:
        def opener() -> Any:
            import zarr

            if isinstance(self.geo.path, Url):
                from s2i_prep.store.remote import RemoteData

                store = RemoteData(self.geo.path / "s2i").zarr_store(read_only=True)
                return zarr.open_array(store, mode="r")
            return zarr.open_array(self.geo.path / "s2i", mode="r")

        arr = self._files.get("array", opener)
        data = arr.get_orthogonal_selection((idx,))
        if rows is None:
            out[...] = data
        else:
            out[rows] = data

    def close(self) -> None:
        self._files = _LazyFiles()


READERS = {"shard": ShardReader, "hdf5": Hdf5Reader, "zarr": ZarrReader}
