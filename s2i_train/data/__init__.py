"""Data path of ``s2i_train``: converted s2i datasets (docs/FORMAT.md) into PyTorch.

API in one screen (the training loop's view)::

    from s2i_train.data import S2IDataset, S2ISampler, make_loader
    from s2i_train import transforms

    ds = S2IDataset(["ntu.zarr", "ucla.zarr"], split=["ntu60-xsub", None], subset="train",
                    streams=["joint"], label_fraction=None, seed=0)
    sampler = S2ISampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = make_loader(ds, batch_size=256, sampler=sampler, threads=2)  # or workers=N
    to_input = transforms.ToModelInput.for_dataset(ds, size=224, train=True)
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)
        for step, (x, y) in enumerate(loader):
            x = to_input(transforms.to_device(x, device))     # (B, S, 3, 224, 224) float32
            y = y.to(device)                                   # (B,) int64, 0..ds.num_classes-1
            ...
            ckpt["sampler"] = sampler.state_dict(consumed=(step + 1) * 256)

- ``make_loader(threads=N)`` reads in N threads of the training process (no shared-memory copy
  per batch); ``workers=N`` uses DataLoader worker processes; figures in benchmarks/RESULTS.md.
- An item is ``(x, y)``: ``x`` float32 ``(S, 3, H, W)`` (streams, xyz, rows, columns) in the
  stored form: compact grid in metres (H = frames, W = persons x joints: NTU 64 x 50, NW-UCLA
  64 x 20 at the default 64 frames) or stored image (H x W = image size; uint8 images as 0..255
  floats). ``as_float=False`` keeps the stored float16/uint8 (half or a quarter of the bytes to
  move; ``ToModelInput`` converts on the device).
- A batch from ``make_loader`` (or any DataLoader with ``collate_fn=collate``) is ``(x, y)``:
  ``x`` one ``(B, S, 3, H, W)`` tensor, or, when the datasets have different geometries, a list
  of such tensors, one per geometry, with ``y`` reordered to match their concatenation.
  ``ToModelInput`` takes either and returns one ``(B, S, 3, size, size)`` tensor.
- Labels: dataset k's classes are offset by the class counts of datasets before it;
  ``ds.num_classes`` is the total, ``ds.sources[k].label_offset`` / ``.class_count`` the
  mapping, ``ds.decode_label(y)`` the inverse. ``ds.labels`` holds every item's label.
- Geometry per dataset: ``ds.sources[k]`` (``SourceInfo``: format, streams, form
  ``"compact"``/``"image"``, dtype, height, width, frames, pixel_mapping, stats, columns).
- Chosen samples (split, subset, label fraction): ``ds.selection()`` (stored indices per path),
  ``ds.sample_ids``. The label-fraction draw depends only on the datasets, split and ``seed``.
- Read path: ``ds.read_path`` (``read="auto"`` holds datasets in memory when they fit, else reads
  Zarr shards directly / HDF5 through h5py); figures in benchmarks/RESULTS.md.
"""

from __future__ import annotations

from ._sources import SourceInfo
from .dataset import READ_PATHS, ItemBatch, S2IDataset, collate
from .loader import ThreadLoader, make_loader
from .sampler import S2ISampler

__all__ = [
    "READ_PATHS",
    "ItemBatch",
    "S2IDataset",
    "S2ISampler",
    "SourceInfo",
    "ThreadLoader",
    "collate",
    "make_loader",
]
