"""S2IDataset: items equal the stored samples on every read path, selection, mixing, errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import zarr

from s2i_train.data import S2IDataset, collate, make_loader
from s2i_train.errors import (
    DatasetFormatError,
    DatasetRequestError,
    S2ITrainError,
    SampleReadError,
)

from .conftest import Datasets, copy_dataset


def stored(path: Path) -> dict:
    """Samples, labels, ids and splits read with plain zarr / h5py (not s2i)."""
    if path.suffix == ".zarr":
        g = zarr.open_group(path, mode="r")
        splits = {
            s: {p: g[f"splits/{s}/{p}"][...] for p in ("train", "test")}
            for s in g["splits"].group_keys()
        }
        return {
            "s2i": g["s2i"][...],
            "label": g["label"][...],
            "sample_id": np.array(g["sample_id"][...].tolist()),
            "splits": splits,
        }
    with h5py.File(path, "r") as f:
        splits = {s: {p: f["splits"][s][p][()] for p in ("train", "test")} for s in f["splits"]}
        return {
            "s2i": f["s2i"][()],
            "label": f["label"][()],
            "sample_id": f["sample_id"].asstr()[()],
            "splits": splits,
        }


@pytest.mark.parametrize("read", ["memory", "shard", "zarr", "auto"])
def test_items_equal_the_stored_samples_zarr(datasets: Datasets, read: str) -> None:
    ref = stored(datasets.ntu)
    ds = S2IDataset(datasets.ntu, read=read)
    assert len(ds) == len(ref["s2i"]) == 48
    x, y = ds[5]
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (3, 3, 64, 50)
    np.testing.assert_array_equal(x.numpy(), ref["s2i"][5].astype(np.float32))
    assert int(y) == int(ref["label"][5])
    # a batch crossing the shard boundary, unsorted, with a repeat and a negative index
    idx = [40, 3, 31, 32, 3, -1, 0]
    bx, by = collate(ds.__getitems__(idx))
    want = ref["s2i"][np.array(idx) % 48].astype(np.float32)
    np.testing.assert_array_equal(bx.numpy(), want)
    np.testing.assert_array_equal(by.numpy(), ref["label"][np.array(idx) % 48])


@pytest.mark.parametrize("read", ["memory", "hdf5"])
def test_items_equal_the_stored_samples_hdf5(datasets: Datasets, read: str) -> None:
    ref = stored(datasets.ntu_h5)
    ds = S2IDataset(datasets.ntu_h5, read=read)
    bx, by = collate(ds.__getitems__(list(range(47, -1, -5))))
    np.testing.assert_array_equal(bx.numpy(), ref["s2i"][47::-5].astype(np.float32))
    np.testing.assert_array_equal(by.numpy(), ref["label"][47::-5])


@pytest.mark.parametrize("path", ["img8", "img16", "img8_h5"])
def test_stored_images_read_back_exactly(datasets: Datasets, path: str) -> None:
    p = getattr(datasets, path)
    ref = stored(p)
    for read in ("memory", "hdf5" if p.suffix == ".h5" else "shard"):
        ds = S2IDataset(p, read=read, as_float=False)
        bx, _ = collate(ds.__getitems__([11, 0, 7]))
        assert bx.dtype == (torch.uint8 if "8" in path else torch.float16)
        np.testing.assert_array_equal(bx.numpy(), ref["s2i"][[11, 0, 7]])


def test_getitems_equals_getitem_and_default_collate(datasets: Datasets) -> None:
    ds = S2IDataset(datasets.ntu, read="shard")
    items = ds.__getitems__([9, 2, 33])
    for j, i in enumerate([9, 2, 33]):
        assert torch.equal(items[j][0], ds[i][0]) and int(items[j][1]) == int(ds[i][1])
    x, y = torch.utils.data.default_collate(list(items))
    x2, y2 = collate(items)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(IndexError, match="out of range"):
        ds.__getitems__([48])


def test_split_subset_and_streams_select_what_is_asked(datasets: Datasets) -> None:
    ref = stored(datasets.ntu)
    for subset in ("train", "test"):
        ds = S2IDataset(datasets.ntu, split="ntu60-xsub", subset=subset, streams=["bone", "joint"])
        want = ref["splits"]["ntu60-xsub"][subset]
        assert len(ds) == len(want) > 0
        np.testing.assert_array_equal(ds.selection()[str(datasets.ntu)], want)
        np.testing.assert_array_equal(ds.sample_ids, ref["sample_id"][want])
        np.testing.assert_array_equal(ds.labels, ref["label"][want])
        x, _ = ds[len(ds) - 1]
        np.testing.assert_array_equal(x.numpy(), ref["s2i"][want[-1]][[2, 0]].astype(np.float32))
        assert ds.sources[0].streams == ("bone", "joint") and ds.sources[0].shape == (
            2,
            3,
            64,
            50,
        )
    assert len(S2IDataset(datasets.ntu, split=None, subset="test")) == 48


def test_mixed_ntu_and_ucla_formats_concatenate_with_label_offsets(
    datasets: Datasets,
) -> None:
    ntu, ucla = stored(datasets.ntu), stored(datasets.ucla)
    ds = S2IDataset([datasets.ntu, datasets.ucla], split=["ntu60-xsub", None], streams=["joint"])
    n_ntu = len(ntu["splits"]["ntu60-xsub"]["train"])
    assert len(ds) == n_ntu + 24
    assert ds.num_classes == 120 + 10
    assert [s.label_offset for s in ds.sources] == [0, 120]
    assert [s.format for s in ds.sources] == ["ntu25", "ucla20"]
    assert [s.width for s in ds.sources] == [50, 20]
    np.testing.assert_array_equal(ds.labels[n_ntu:], ucla["label"].astype(np.int64) + 120)
    info, local = ds.decode_label(int(ds.labels[-1]))
    assert info.path == datasets.ucla and local == int(ucla["label"][-1])
    idx = [n_ntu + 3, 0, n_ntu, 5, 1]
    x, y = collate(ds.__getitems__(idx))
    assert isinstance(x, list) and [tuple(t.shape) for t in x] == [
        (2, 1, 3, 64, 20),
        (3, 1, 3, 64, 50),
    ]
    # y follows the concatenation of the groups: UCLA items (first seen) then NTU items
    items = [ds[i] for i in (n_ntu + 3, n_ntu, 0, 5, 1)]
    np.testing.assert_array_equal(y.numpy(), [int(t[1]) for t in items])
    assert torch.equal(x[0], torch.stack([t[0] for t in items[:2]]))
    assert torch.equal(x[1], torch.stack([t[0] for t in items[2:]]))
    np.testing.assert_array_equal(x[0][0].numpy(), ucla["s2i"][3][[0]].astype(np.float32))
    np.testing.assert_array_equal(
        x[1][0].numpy(),
        ntu["s2i"][ntu["splits"]["ntu60-xsub"]["train"][0]][[0]].astype(np.float32),
    )
    # the generic collate gives the same grouping
    gx, gy = collate(list(ds.__getitems__(idx)))
    assert all(torch.equal(a, b) for a, b in zip(gx, x)) and torch.equal(gy, y)


def test_label_fraction_is_balanced_seeded_and_exposed(datasets: Datasets) -> None:
    full = S2IDataset(datasets.ntu)
    classes, counts = np.unique(full.labels, return_counts=True)
    assert len(classes) == 6
    for fraction in (0.01, 0.1, 0.5):
        ds = S2IDataset(datasets.ntu, label_fraction=fraction, seed=7)
        got = dict(zip(*np.unique(ds.labels, return_counts=True)))
        assert got == {c: max(1, round(fraction * n)) for c, n in zip(classes, counts)}
        again = S2IDataset(datasets.ntu, label_fraction=fraction, seed=7)
        np.testing.assert_array_equal(
            ds.selection()[str(datasets.ntu)], again.selection()[str(datasets.ntu)]
        )
        assert set(ds.sample_ids) <= set(full.sample_ids)
    a = S2IDataset(datasets.ntu, label_fraction=0.5, seed=1).selection()[str(datasets.ntu)]
    b = S2IDataset(datasets.ntu, label_fraction=0.5, seed=2).selection()[str(datasets.ntu)]
    assert not np.array_equal(a, b)
    # over two datasets: balanced per class of the joint label space
    mixed = S2IDataset([datasets.ntu, datasets.ucla], streams=["joint"], label_fraction=0.1)
    assert set(np.unique(mixed.labels)) == set(
        np.unique(S2IDataset([datasets.ntu, datasets.ucla], streams=["joint"]).labels)
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "no-such-split"}, "no split 'no-such-split'; this dataset has"),
        ({"split": "ntu60-xsub", "subset": "val"}, "subset must be one of"),
        ({"streams": ["joint", "velocity"]}, "stream(s) ['velocity'] not stored"),
        ({"label_fraction": 0.0}, "label_fraction must be in (0, 1]"),
        ({"label_fraction": 1.5}, "label_fraction must be in (0, 1]"),
        (
            {"split": "ntu60-xsub", "subset": "test", "label_fraction": 0.1},
            "cannot apply to subset='test'",
        ),
        ({"read": "fast"}, "read must be one of"),
        ({"read": "hdf5"}, "cannot read this zarr dataset"),
    ],
)
def test_bad_requests_name_the_dataset_and_the_request(
    datasets: Datasets, kwargs: dict, message: str
) -> None:
    with pytest.raises(DatasetRequestError) as err:
        S2IDataset(datasets.ntu, **kwargs)
    assert message in str(err.value)
    assert isinstance(err.value, (S2ITrainError, ValueError))
    assert str(datasets.ntu) in str(err.value)


def test_mixed_streams_need_a_choice_and_forms_must_match(datasets: Datasets) -> None:
    with pytest.raises(DatasetRequestError, match="cannot concatenate"):
        S2IDataset([datasets.ntu, datasets.img8])
    with pytest.raises(DatasetRequestError, match="one per dataset"):
        S2IDataset([datasets.ntu, datasets.ucla], split=["ntu60-xsub"])


def test_not_a_dataset_or_another_layout_version(datasets: Datasets, tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="no such dataset"):
        S2IDataset(tmp_path / "missing.zarr")
    copy = copy_dataset(datasets.ntu, tmp_path)
    g = zarr.open_group(copy, mode="r+", use_consolidated=False)
    g.attrs["s2i_layout_version"] = "2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(copy)
    with pytest.raises(DatasetFormatError, match="layout version '2'") as err:
        S2IDataset(copy)
    assert str(copy) in str(err.value)
    h5 = copy_dataset(datasets.ntu_h5, tmp_path)
    with h5py.File(h5, "r+") as f:
        f.attrs["s2i_layout_version"] = "0"
    with pytest.raises(DatasetFormatError, match="layout version '0'"):
        S2IDataset(h5)


def test_missing_shard_file_is_an_error_not_a_fill_value(
    datasets: Datasets, tmp_path: Path
) -> None:
    copy = copy_dataset(datasets.ntu, tmp_path)
    (copy / "s2i" / "c" / "1" / "0" / "0" / "0" / "0").unlink()
    with pytest.raises(
        DatasetFormatError,
        match=r"shard file\(s\) of s2i missing \(first: shard 1, samples 32..47\)",
    ):
        S2IDataset(copy, read="shard")


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x40]))


def test_corrupt_zarr_sample_fails_its_checksum(datasets: Datasets, tmp_path: Path) -> None:
    copy = copy_dataset(datasets.ntu, tmp_path)
    shard = copy / "s2i" / "c" / "0" / "0" / "0" / "0" / "0"
    per = 3 * 3 * 64 * 50 * 2 + 4
    _flip_byte(shard, 7 * per + 100)  # inside sample 7
    ds = S2IDataset(copy, read="shard")
    np.testing.assert_array_equal(
        ds[6][0].numpy(), stored(datasets.ntu)["s2i"][6].astype(np.float32)
    )
    with pytest.raises(SampleReadError, match="sample 7 fails its crc32c check") as err:
        ds.__getitems__([6, 7, 8])
    assert str(copy) in str(err.value) and isinstance(err.value, OSError)
    with pytest.raises(SampleReadError, match="sample 7 fails its crc32c check"):
        S2IDataset(copy, read="memory")
    # the shard index has its own checksum
    _flip_byte(shard, os.path.getsize(shard) - 20)
    with pytest.raises(SampleReadError, match="shard index fails its crc32c check"):
        S2IDataset(copy, read="shard")[0]


def test_corrupt_compressed_image_and_hdf5_sample(datasets: Datasets, tmp_path: Path) -> None:
    copy = copy_dataset(datasets.img8, tmp_path)
    shard = copy / "s2i" / "c" / "0" / "0" / "0" / "0" / "0"
    _flip_byte(shard, 50)
    with pytest.raises(SampleReadError, match="sample 0 fails its crc32c check"):
        S2IDataset(copy, read="shard")[0]
    h5 = copy_dataset(datasets.ntu_h5, tmp_path)
    with h5py.File(h5, "r") as f:
        offset = f["s2i"].id.get_chunk_info(4).byte_offset
    _flip_byte(h5, offset + 1000)
    ds = S2IDataset(h5, read="hdf5")
    ds[3]
    with pytest.raises(SampleReadError, match="sample 4 cannot be read") as err:
        ds[4]
    assert str(h5) in str(err.value)


def test_truncated_shard_is_reported(datasets: Datasets, tmp_path: Path) -> None:
    copy = copy_dataset(datasets.ntu, tmp_path)
    shard = copy / "s2i" / "c" / "1" / "0" / "0" / "0" / "0"
    data = shard.read_bytes()
    shard.write_bytes(data[:100])
    with pytest.raises(SampleReadError, match="too short for its"):
        S2IDataset(copy, read="shard")[40]


def worker_batches(
    ds: S2IDataset, workers: int, context: str | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = make_loader(ds, batch_size=10, workers=workers, context=context)
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_worker_processes_under_fork_and_spawn(datasets: Datasets, context: str) -> None:
    ref = stored(datasets.ntu)
    for read in ("shard", "memory"):
        ds = S2IDataset(datasets.ntu, read=read)
        ds[0]  # files opened in the parent must not leak into the workers
        got = worker_batches(ds, 2, context)
        x = torch.cat([b[0] for b in got]).numpy()
        np.testing.assert_array_equal(x, ref["s2i"].astype(np.float32))
        np.testing.assert_array_equal(torch.cat([b[1] for b in got]).numpy(), ref["label"])
    if context == "spawn":
        return  # each spawned pool costs seconds of imports; HDF5 handles matter under fork
    h5 = S2IDataset(datasets.ntu_h5, read="hdf5")
    h5[0]
    got = worker_batches(h5, 2, context)
    np.testing.assert_array_equal(
        torch.cat([b[0] for b in got]).numpy(), ref["s2i"].astype(np.float32)
    )


@pytest.mark.parametrize("read", ["shard", "memory"])
def test_thread_loader_yields_the_same_batches_in_order(datasets: Datasets, read: str) -> None:
    from s2i_train.data import S2ISampler, ThreadLoader

    ds = S2IDataset([datasets.ntu, datasets.ucla], streams=["joint"], read=read)
    sampler = S2ISampler(ds, seed=4)
    threaded = make_loader(ds, batch_size=7, sampler=sampler, threads=3, prefetch_factor=2)
    assert isinstance(threaded, ThreadLoader) and len(threaded) == -(-len(ds) // 7)
    plain = list(make_loader(ds, batch_size=7, sampler=sampler))
    got = list(threaded)
    assert len(got) == len(plain)
    for (gx, gy), (px, py) in zip(got, plain, strict=True):
        assert torch.equal(gy, py)
        gx, px = (gx, px) if isinstance(gx, list) else ([gx], [px])
        assert all(torch.equal(a, b) for a, b in zip(gx, px, strict=True))
    with pytest.raises(DatasetRequestError, match="not both"):
        make_loader(ds, 4, workers=1, threads=1)


def test_batch_buffers_are_reused_only_when_nothing_holds_them(datasets: Datasets) -> None:
    from s2i_train.data import _buffers

    ref = stored(datasets.ntu)["s2i"]
    for read in ("shard", "memory"):
        ds = S2IDataset(datasets.ntu, read=read, as_float=False)
        _buffers.clear()  # only this test's buffers, so the first free one is the released one
        first, _ = collate(ds.__getitems__([1, 2, 3]))
        view = first[1:]  # a view keeps the buffer too
        held_ptr = first.data_ptr()
        del first
        second, _ = collate(ds.__getitems__([4, 5, 6]))
        assert second.data_ptr() != held_ptr  # the held buffer is not overwritten
        np.testing.assert_array_equal(view.numpy(), ref[[2, 3]])
        np.testing.assert_array_equal(second.numpy(), ref[[4, 5, 6]])
        del view
        third, _ = collate(ds.__getitems__([7, 8, 9]))
        assert third.data_ptr() == held_ptr  # released: recycled (no fresh page faults)
        np.testing.assert_array_equal(third.numpy(), ref[[7, 8, 9]])
        np.testing.assert_array_equal(second.numpy(), ref[[4, 5, 6]])


def test_thread_loader_takes_a_wrapper_dataset_and_its_collate(datasets: Datasets) -> None:
    ds = S2IDataset(datasets.ntu, read="shard", as_float=False)

    class WithIndex(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(ds)

        def __getitems__(self, indices: list[int]) -> tuple:
            return ds.__getitems__(indices), torch.tensor(indices)

    def collate_with_index(batch: tuple) -> tuple:
        items, index = batch
        return (*collate(items), index)

    batches = list(make_loader(WithIndex(), 16, threads=2, collate_fn=collate_with_index))
    assert [len(b[2]) for b in batches] == [16, 16, 16]
    for x, y, index in batches:
        np.testing.assert_array_equal(y.numpy(), ds.labels[index.numpy()])
        assert torch.equal(x[3], ds[int(index[3])][0])


def test_attributes_that_disagree_with_the_array_are_refused(
    datasets: Datasets, tmp_path: Path
) -> None:
    copy = copy_dataset(datasets.ntu, tmp_path)
    g = zarr.open_group(copy, mode="r+", use_consolidated=False)
    storage = dict(g.attrs["storage"])
    storage["sample_shape"] = [3, 3, 64, 25]
    g.attrs["storage"] = storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(copy)
    with pytest.raises(DatasetFormatError, match=r"s2i holds \(3, 3, 64, 50\) float16 samples"):
        S2IDataset(copy)
