"""``S2IDataset``: one or several converted datasets as one map-style torch dataset."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from s2i_prep.urls import Url, location

from ..errors import DatasetRequestError
from . import _buffers
from ._readers import READERS
from ._sources import SUBSETS, OpenedSource, SourceInfo, open_source

__all__ = ["READ_PATHS", "S2IDataset", "collate"]

#: Read paths, ``"auto"`` picks one (see :func:`S2IDataset.__init__`).
READ_PATHS = ("auto", "memory", "shard", "hdf5", "zarr")
#: ``read="auto"`` holds a dataset in memory when its chosen samples take at most this fraction
#: of the memory available when it is opened.
MEMORY_FRACTION = 0.5


def _available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or 0 when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _in_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A batch tensor: inside a DataLoader worker in shared memory, as ``default_collate`` does,
    so handing it to the main process costs no copy; else on a recycled buffer (``_buffers``)."""
    if _in_worker():
        numel = math.prod(shape)
        storage = torch.UntypedStorage._new_shared(
            numel * torch.empty((), dtype=dtype).element_size()
        )
        return (
            torch.empty(0, dtype=dtype).set_(storage).view(shape)
            if numel
            else torch.empty(shape, dtype=dtype)
        )
    return _buffers.take(shape, dtype)


class ItemBatch(Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """What ``S2IDataset.__getitems__`` returns: the items, already stacked per geometry.

    It is a sequence of ``(x, y)`` items like any dataset's, so ``default_collate`` works on it;
    :func:`collate` takes the stacked tensors as they are (no per-item copy).
    """

    def __init__(self, groups: list[tuple[np.ndarray, torch.Tensor]], labels: torch.Tensor) -> None:
        self.groups = groups  # (positions in the batch, stacked x of those positions)
        self.labels = labels
        n = len(labels)
        self._where = np.empty((n, 2), np.int64)
        for g, (pos, _) in enumerate(groups):
            self._where[pos, 0] = g
            self._where[pos, 1] = np.arange(len(pos))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if not -len(self) <= j < len(self):
            raise IndexError(j)
        g, k = self._where[j]
        return self.groups[int(g)][1][int(k)], self.labels[j]

    def collated(self) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        if len(self.groups) == 1:
            return self.groups[0][1], self.labels
        order = torch.from_numpy(np.concatenate([pos for pos, _ in self.groups]))
        return [x for _, x in self.groups], self.labels[order]


def collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
    """Batch of items -> ``(x, y)``.

    ``x`` is one ``(B, S, 3, H, W)`` tensor when every item has the same shape; with several
    geometries (e.g. NTU 50 columns and NW-UCLA 20 columns) it is a list of such tensors, one per
    geometry in order of first appearance, and ``y`` is reordered to match ``torch.cat`` of their
    model inputs (``s2i_train.transforms.ToModelInput`` accepts both forms).
    """
    if isinstance(batch, ItemBatch):
        return batch.collated()
    groups: dict[tuple[int, ...], list[int]] = {}
    for j, (x, _) in enumerate(batch):
        groups.setdefault(tuple(x.shape), []).append(j)
    xs = [torch.stack([batch[j][0] for j in pos]) for pos in groups.values()]
    order = [j for pos in groups.values() for j in pos]
    y = torch.as_tensor([int(batch[j][1]) for j in order], dtype=torch.int64)
    return (xs[0] if len(xs) == 1 else xs), y


class S2IDataset(torch.utils.data.Dataset):
    """Samples of one or several s2i datasets (docs/FORMAT.md, layout version 1).

    Item ``i`` is ``(x, y)``: ``x`` a ``(S, 3, H, W)`` tensor of the chosen streams in the
    stored form (compact grid in metres or stored image; float32 unless ``as_float=False``,
    which keeps the stored float16/uint8 for a cheaper trip to the device), ``y`` an int64 class
    in the concatenated label space (dataset ``k``'s labels are offset by the class counts of
    datasets ``0..k-1``). Items are ordered by dataset, then by stored index.

    Args:
        paths: one dataset or a sequence of them (``.zarr`` directories or ``.h5`` files), or
            fsspec URLs of Zarr datasets (``s3://bucket/out.zarr``, ``memory://...``).
        split: a split name for every dataset, a sequence with one name (or ``None``) per
            dataset, or ``None`` for every sample.
        subset: ``"train"`` or ``"test"`` part of the split.
        streams: stream names to yield, in this order (``None``: every stored stream; then all
            datasets must store the same streams).
        label_fraction: keep a seeded, class-balanced fraction of the samples (at least one per
            class present), e.g. 0.01 or 0.1 for the semi-supervised protocols; training labels
            only.
        seed: seed of the label-fraction draw.
        read: ``"memory"`` (chosen samples loaded once into shared memory), ``"shard"`` (Zarr
            read directly, crc32c checked), ``"hdf5"``, ``"zarr"`` (zarr-python, slow), or
            ``"auto"``: memory when the chosen samples fit in ``MEMORY_FRACTION`` of available
            memory, else shard for Zarr and hdf5 for HDF5 (benchmarks/RESULTS.md).
        as_float: float32 items (default) or the stored dtype.
        storage_options: options of the filesystem of URL paths (``endpoint_url``, ``key``,
            ``anon``, ...); default: what the fsspec implementation finds (environment, config).

    Raises:
        DatasetFormatError: a path that is not an s2i dataset of layout version 1, or one with
            missing shard files or malformed attributes.
        DatasetRequestError: an unknown split, subset or stream, a bad label fraction, or
            datasets of different forms (compact vs image) or dtypes.
        SampleReadError: (when reading) a corrupt or missing sample.
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        split: str | None | Sequence[str | None] = None,
        subset: str = "train",
        streams: Sequence[str] | None = None,
        label_fraction: float | None = None,
        seed: int = 0,
        *,
        read: str = "auto",
        as_float: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        one = isinstance(paths, (str, os.PathLike, Url))
        path_list = [location(p, storage_options) for p in ([paths] if one else paths)]
        if not path_list:
            raise DatasetRequestError("S2IDataset needs at least one dataset path")
        where = ", ".join(str(p) for p in path_list)
        if subset not in SUBSETS:
            raise DatasetRequestError(f"{where}: subset must be one of {SUBSETS}, found {subset!r}")
        if read not in READ_PATHS:
            raise DatasetRequestError(f"{where}: read must be one of {READ_PATHS}, found {read!r}")
        splits = (
            [split] * len(path_list) if split is None or isinstance(split, str) else list(split)
        )
        if len(splits) != len(path_list):
            raise DatasetRequestError(
                f"{where}: {len(splits)} split names for {len(path_list)} datasets; give one per "
                "dataset"
            )
        wanted = None if streams is None else tuple(streams)
        opened: list[OpenedSource] = []
        offset = 0
        for path, name in zip(path_list, splits, strict=True):
            src = open_source(path, name, subset, wanted, offset)
            opened.append(src)
            offset += src.info.class_count
        self._check_compatible(opened, wanted)
        self.subset = subset
        self.split = split
        self.as_float = as_float
        self.sources: tuple[SourceInfo, ...] = tuple(s.info for s in opened)
        self.num_classes = offset
        self.seed = seed
        self.label_fraction = label_fraction
        if label_fraction is not None:
            self._apply_label_fraction(
                opened,
                label_fraction,
                seed,
                split is not None and subset != "train",
                where,
            )
        counts = [len(s.indices) for s in opened]
        self._starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self._source_of = np.repeat(np.arange(len(opened), dtype=np.int64), counts)
        self._indices = [s.indices for s in opened]
        self._stream_index = [s.stream_index for s in opened]
        self._geometry = [s.geometry for s in opened]
        self.labels = np.concatenate([s.labels + s.info.label_offset for s in opened]).astype(
            np.int64
        )
        self._labels_t = torch.from_numpy(self.labels)
        self.sample_ids = np.concatenate([s.sample_ids for s in opened])
        picked = self._pick_read_path(opened, read)
        names = [picked if picked in READERS else self._file_path(s) for s in opened]
        self._readers = [READERS[name](s.geometry) for name, s in zip(names, opened, strict=True)]
        #: The read path in use: "memory", or the file reader(s) ("shard", "hdf5", "zarr").
        self.read_path = picked if picked == "memory" else "+".join(dict.fromkeys(names))
        self._memory: list[torch.Tensor] | None = None
        if picked == "memory":
            self._memory = [self._load(k) for k in range(len(opened))]
            for reader in self._readers:
                reader.close()

    # ------------------------------------------------------------------ construction helpers

    @staticmethod
    def _check_compatible(opened: list[OpenedSource], wanted: tuple[str, ...] | None) -> None:
        first = opened[0].info
        for src in opened[1:]:
            info = src.info
            if info.form != first.form or info.dtype != first.dtype:
                raise DatasetRequestError(
                    f"cannot concatenate {first.path} ({first.form}, {first.dtype}) and "
                    f"{info.path} ({info.form}, {info.dtype}): convert them to the same form"
                )
            if wanted is None and info.streams != first.streams:
                raise DatasetRequestError(
                    f"{first.path} stores streams {list(first.streams)} but {info.path} stores "
                    f"{list(info.streams)}; pass streams=[...] to choose common ones"
                )

    @staticmethod
    def _apply_label_fraction(
        opened: list[OpenedSource],
        fraction: float,
        seed: int,
        test_subset: bool,
        where: str,
    ) -> None:
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not 0 < fraction <= 1
        ):
            raise DatasetRequestError(
                f"{where}: label_fraction must be in (0, 1], found {fraction!r}"
            )
        if test_subset:
            raise DatasetRequestError(
                f"{where}: label_fraction subsamples training labels; it cannot apply to "
                "subset='test'"
            )
        labels = np.concatenate([s.labels + s.info.label_offset for s in opened])
        rng = np.random.default_rng(seed)
        keep = np.zeros(len(labels), bool)
        for cls in np.unique(labels):
            members = np.flatnonzero(labels == cls)
            k = max(1, round(fraction * len(members)))
            keep[rng.choice(members, size=k, replace=False)] = True
        start = 0
        for src in opened:
            mask = keep[start : start + len(src.indices)]
            start += len(src.indices)
            src.indices, src.labels, src.sample_ids = (
                src.indices[mask],
                src.labels[mask],
                src.sample_ids[mask],
            )

    @staticmethod
    def _file_path(src: OpenedSource) -> str:
        if src.backend == "hdf5":
            return "hdf5"
        return "shard" if src.geometry.codec != "other" else "zarr"

    def _pick_read_path(self, opened: list[OpenedSource], read: str) -> str:
        if read in ("hdf5", "shard", "zarr"):
            for src in opened:
                ok = (src.backend == "hdf5") == (read == "hdf5")
                if read == "shard" and src.geometry.codec == "other":
                    ok = False
                if not ok:
                    raise DatasetRequestError(
                        f"{src.info.path}: read path {read!r} cannot read this {src.backend} "
                        f"dataset (codec {src.geometry.codec!r})"
                    )
            return read
        if read == "memory":
            return "memory"
        need = sum(
            len(s.indices) * math.prod(s.info.shape) * np.dtype(s.info.dtype).itemsize
            for s in opened
        )
        return "memory" if need <= MEMORY_FRACTION * _available_memory() else "file"

    def _load(self, k: int) -> torch.Tensor:
        """All chosen samples of dataset ``k`` (chosen streams only) in one shared-memory tensor."""
        geo = self._geometry[k]
        idx = self._indices[k]
        shape = (len(idx), len(self._stream_index[k]), *geo.sample_shape[1:])
        dtype = torch.float16 if geo.dtype == "float16" else torch.uint8
        out = torch.empty(shape, dtype=dtype).share_memory_()
        step = max(1, geo.shard_size)
        full_streams = list(self._stream_index[k]) == list(range(geo.sample_shape[0]))
        for a in range(0, len(idx), step):
            part = idx[a : a + step]
            buf = np.empty((len(part), *geo.sample_shape), geo.dtype)
            self._readers[k].read(part, buf)
            view = buf if full_streams else buf[:, list(self._stream_index[k])]
            out[a : a + len(part)].copy_(torch.from_numpy(np.ascontiguousarray(view)))
        return out

    # ------------------------------------------------------------------ torch dataset protocol

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> ItemBatch:
        """Items ``indices`` read dataset by dataset and shard by shard (one read per run)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise IndexError(f"index {int(bad)} out of range for a dataset of {n} samples")
        idx = np.where(idx < 0, idx + n, idx)
        labels = self._labels_t[torch.from_numpy(idx)]
        if len(self.sources) == 1:
            return ItemBatch([(np.arange(len(idx)), self._read_source(0, idx))], labels)
        src_of = self._source_of[idx]
        groups: dict[tuple[int, ...], list[tuple[np.ndarray, torch.Tensor]]] = {}
        for k in np.unique(src_of).tolist():
            pos = np.flatnonzero(src_of == k)
            data = self._read_source(k, idx[pos] - self._starts[k])
            groups.setdefault(tuple(data.shape[1:]), []).append((pos, data))
        out_groups = []
        for parts in groups.values():
            if len(parts) == 1:
                out_groups.append(parts[0])
                continue
            # several datasets of one geometry: one tensor, back in batch order
            pos = np.concatenate([p for p, _ in parts])
            order = np.argsort(pos, kind="stable")
            out_groups.append(
                (pos[order], torch.cat([x for _, x in parts])[torch.from_numpy(order)])
            )
        out_groups.sort(key=lambda g: int(g[0][0]))
        return ItemBatch(out_groups, labels)

    def _read_source(self, k: int, local: np.ndarray) -> torch.Tensor:
        """Items ``local`` (positions within dataset ``k``), chosen streams, as a batch tensor:
        float32 or the stored dtype (``as_float``), in shared memory inside a worker."""
        geo = self._geometry[k]
        streams = list(self._stream_index[k])
        shape = (len(local), len(streams), *geo.sample_shape[1:])
        stored_dtype = torch.float16 if geo.dtype == "float16" else torch.uint8
        out_dtype = torch.float32 if self.as_float else stored_dtype
        if self._memory is not None:
            rows = torch.from_numpy(local)
            if not self.as_float:
                return torch.index_select(self._memory[k], 0, rows, out=_empty(shape, out_dtype))
            data = torch.index_select(
                self._memory[k], 0, rows, out=_buffers.take(shape, stored_dtype)
            )
            return _empty(shape, out_dtype).copy_(data)
        stored = self._indices[k][local]
        order = np.argsort(stored, kind="stable")
        in_order = stored[order]
        unique = not (np.diff(in_order) == 0).any()
        full = streams == list(range(geo.sample_shape[0]))
        if unique and full and not self.as_float:
            out = _empty(shape, out_dtype)  # read straight into the batch, each sample in place
            self._readers[k].read(in_order, out.numpy(), rows=order)
            return out
        if unique:
            stored_t = _buffers.take((len(stored), *geo.sample_shape), stored_dtype)
            picked = stored_t.numpy()
            self._readers[k].read(in_order, picked, rows=order)
        else:  # a repeated index: read each sample once, then repeat it
            uniq = np.unique(in_order)
            buf = np.empty((len(uniq), *geo.sample_shape), geo.dtype)
            self._readers[k].read(uniq, buf)
            picked = buf[np.searchsorted(uniq, stored)]
        if not full:
            picked = np.ascontiguousarray(picked[:, streams])
        return _empty(shape, out_dtype).copy_(torch.from_numpy(picked))

    # ------------------------------------------------------------------ what training needs

    def selection(self) -> dict[str, np.ndarray]:
        """Stored sample indices chosen per dataset path (after split and label fraction)."""
        return {
            str(info.path): idx.copy()
            for info, idx in zip(self.sources, self._indices, strict=True)
        }

    def source_of(self, index: int) -> SourceInfo:
        """The dataset item ``index`` comes from."""
        return self.sources[int(self._source_of[index])]

    def decode_label(self, label: int) -> tuple[SourceInfo, int]:
        """Global class -> (its dataset, the dataset's own class index)."""
        for info in self.sources:
            if info.label_offset <= label < info.label_offset + info.class_count:
                return info, int(label - info.label_offset)
        raise DatasetRequestError(f"label {label} outside 0..{self.num_classes - 1}")

    def shard_ids(self) -> np.ndarray:
        """(N,) int64: the storage shard of every item, unique across datasets (for locality)."""
        ids, base = [], 0
        for geo, idx in zip(self._geometry, self._indices, strict=True):
            size = max(1, geo.shard_size)
            ids.append(base + idx // size)
            base += -(-geo.num_samples // size)
        return np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    def __repr__(self) -> str:
        names = ", ".join(
            f"{i.path.name} ({i.format}, {i.form} {i.height}x{i.width})" for i in self.sources
        )
        return (
            f"S2IDataset({len(self)} samples, {self.num_classes} classes, streams "
            f"{list(self.sources[0].streams)}, read={self.read_path!r}: {names})"
        )
