"""Device transforms: the converter's pixel mapping reproduced, augmentations that keep meaning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2i_prep.encoding import to_image
from s2i_train import transforms as T
from s2i_train.data import S2IDataset, collate
from s2i_train.errors import DatasetRequestError

from .conftest import Datasets

N_IMAGES = 12  # samples converted to images by the fixture


def batch(ds: S2IDataset, idx: list[int]) -> torch.Tensor:
    x, _ = collate(ds.__getitems__(idx))
    assert isinstance(x, torch.Tensor)
    return x


def test_loader_output_equals_the_stored_uint8_image(datasets: Datasets) -> None:
    compact = S2IDataset(datasets.ntu)
    images = S2IDataset(datasets.img8, as_float=False)
    idx = list(range(N_IMAGES))
    assert (compact.sample_ids[:N_IMAGES] == images.sample_ids).all()
    to_input = T.ToModelInput.for_dataset(compact, size=224, mean=None, std=None)
    v = to_input(batch(compact, idx))
    stored = batch(images, idx)
    assert v.shape == stored.shape == (N_IMAGES, 3, 3, 224, 224)
    diff = (T.quantise(v).int() - stored.int()).abs()
    assert int(diff.max()) <= 1  # within one grey level
    assert float((diff > 0).float().mean()) < 1e-3  # and almost always identical
    # the stored image through the image path: / 255, no resize
    from_stored = T.ToModelInput.for_dataset(images, size=224, mean=None, std=None)(stored)
    assert float((from_stored - v).abs().max()) <= 1 / 255 + 1e-6


def test_float_path_equals_the_stored_float16_image(datasets: Datasets) -> None:
    compact = S2IDataset(datasets.ntu)
    images = S2IDataset(datasets.img16)
    x = batch(compact, list(range(N_IMAGES)))
    resized = T.resize(x, (224, 224))
    stored = batch(images, list(range(N_IMAGES)))
    # float16 tolerance: within one float16 step (ulp) of the stored value, plus float32 rounding
    # of the two interpolation orders near zero (inputs are ~1 m, float32 eps ~1e-7)
    step = np.abs(np.spacing(stored.numpy().astype(np.float16))).astype(np.float32) + 1e-6
    assert bool((np.abs(resized.numpy() - stored.numpy()) <= step).all())
    assert float((resized.half() == stored.half()).float().mean()) > 0.99


def test_pixel_mapping_is_the_converters(datasets: Datasets) -> None:
    """Reuse, proved: the torch pipeline equals s2i_prep.encoding.to_image (as_float) on the
    same float16 grids, and refuses a mapping it does not implement."""
    compact = S2IDataset(datasets.ntu, as_float=False)
    grid = batch(compact, [0, 17, 40])
    mapping = compact.sources[0].pixel_mapping
    ref = to_image(grid.numpy(), (224, 224), mapping, as_float=True)
    ours = T.resize(T.pixel_map(grid), (224, 224))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-5)
    for size in [(64, 64), (32, 100)]:
        ref = to_image(grid.numpy(), size, mapping, as_float=True)
        np.testing.assert_allclose(
            T.resize(T.pixel_map(grid), size).numpy(), ref, rtol=0, atol=1e-5
        )
    with pytest.raises(DatasetRequestError, match="not implemented"):
        T.check_pixel_mapping({**mapping, "name": "zscore"})
    flat = torch.ones(1, 1, 3, 4, 5)
    assert bool((T.pixel_map(flat) == 0).all())  # a constant plane maps to 0, as in the converter


def test_normalisation_and_output_layout(datasets: Datasets) -> None:
    compact = S2IDataset(datasets.ntu, streams=["joint"])
    x = batch(compact, [1, 2])
    plain = T.ToModelInput.for_dataset(compact, size=64, mean=None, std=None)(x)
    norm = T.ToModelInput.for_dataset(compact, size=64)(x)
    assert norm.shape == (2, 1, 3, 64, 64) and norm.dtype == torch.float32
    mean = torch.tensor(T.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(T.IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(norm, (plain - mean) / std)
    assert float(plain.min()) >= 0 and float(plain.max()) <= 1


def test_mixed_geometries_become_one_model_input(datasets: Datasets) -> None:
    ds = S2IDataset([datasets.ntu, datasets.ucla], streams=["joint", "bone"])
    to_input = T.ToModelInput.for_dataset(ds, size=32)
    x, y = collate(ds.__getitems__([50, 0, 60, 1]))
    out = to_input(x)
    assert out.shape == (4, 2, 3, 32, 32) and len(y) == 4
    singles = torch.cat([to_input(ds[i][0][None]) for i in (50, 60, 0, 1)])
    torch.testing.assert_close(out, singles)
    np.testing.assert_array_equal(y.numpy(), ds.labels[[50, 60, 0, 1]])


def test_rotation_is_rigid_and_acts_on_every_stream_alike() -> None:
    gen = torch.Generator().manual_seed(0)
    rot = T.RandomRotation3D(max_angle=0.3, generator=gen)
    m = rot.matrices(64, torch.device("cpu"))
    torch.testing.assert_close(
        m @ m.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-6, rtol=0
    )
    assert bool((torch.linalg.det(m) > 0.999).all())
    # the rotated bone stream equals the bone (difference) of the rotated joints
    joints = torch.randn(2, 1, 3, 8, 6)
    bones = joints[..., 1:] - joints[..., :-1]
    x = torch.cat([joints[..., 1:], bones], dim=1)  # two "streams" of equal shape
    gen.manual_seed(1)
    r = rot(x)
    gen.manual_seed(1)
    rj = rot(joints[..., :].expand(2, 2, 3, 8, 6).contiguous())[:, :1]
    torch.testing.assert_close(r[:, 1:], rj[..., 1:] - rj[..., :-1], atol=1e-5, rtol=0)
    # lengths (per column and frame) are kept
    torch.testing.assert_close(r.norm(dim=2), x.norm(dim=2), atol=1e-5, rtol=0)
    # a scale is removed by the per-channel min-max mapping (documented), a rotation is not
    scaled = T.RandomRotation3D(max_angle=0.0, scale=(2.0, 3.0))(x)
    torch.testing.assert_close(T.pixel_map(scaled), T.pixel_map(x), atol=1e-5, rtol=0)
    assert not torch.allclose(T.pixel_map(r), T.pixel_map(x), atol=1e-3)


def test_temporal_crop_of_the_whole_clip_is_the_plain_resize(
    datasets: Datasets,
) -> None:
    ds = S2IDataset(datasets.ntu)
    x = batch(ds, [3, 4, 5])
    full = T.ToModelInput.for_dataset(ds, size=(96, 80), mean=None, std=None)(x)
    crop_all = T.ToModelInput(
        pixel_mapping=ds.sources[0].pixel_mapping,
        size=(96, 80),
        mean=None,
        std=None,
        temporal_crop=T.TemporalCropResize(1.0, 1.0),
    )(x)
    torch.testing.assert_close(crop_all, full, atol=2e-5, rtol=0)


def test_temporal_crop_takes_the_drawn_rows() -> None:
    # rows hold their own index: a crop of rows [16, 48) resized to 32 rows keeps 16..47
    t = (
        torch.arange(64, dtype=torch.float32)
        .view(1, 1, 1, 64, 1)
        .expand(2, 1, 3, 64, 4)
        .contiguous()
    )
    out = T._crop_resize(t, torch.tensor([16.0, 0.0]), torch.tensor([32.0, 64.0]), (32, 4))
    torch.testing.assert_close(out[0, 0, 0, :, 0], torch.arange(16, 48, dtype=torch.float32))
    torch.testing.assert_close(
        out[1, 0, 0, :, 0], torch.arange(0, 64, 2, dtype=torch.float32) + 0.5
    )
    gen = torch.Generator().manual_seed(0)
    start, length = T.TemporalCropResize(0.5, 0.8, generator=gen).windows(1000, 64)
    assert bool((length >= 32 - 1e-4).all() and (length <= 0.8 * 64 + 1e-4).all())
    assert bool((start >= 0).all() and (start + length <= 64 + 1e-4).all())
    # the mapping uses the crop's rows: values outside the window do not set min/max
    g = torch.zeros(1, 1, 3, 10, 4)
    g[..., 0, :] = 100.0
    g[..., 5, 0] = 1.0
    mapped = T.pixel_map(g, (torch.tensor([2]), torch.tensor([8])))
    assert float(mapped[..., 5, 0].min()) == 1.0


def test_training_transform_is_augmented_and_shapes_hold(datasets: Datasets) -> None:
    ds = S2IDataset(datasets.ntu)
    gen = torch.Generator().manual_seed(0)
    train = T.ToModelInput.for_dataset(ds, size=48, train=True, generator=gen)
    assert train.rotation is not None and train.temporal_crop is not None
    x = batch(ds, [0, 1, 2, 3])
    a, b = train(x), train(x)
    assert a.shape == (4, 3, 3, 48, 48) and not torch.allclose(a, b)
    images = S2IDataset(datasets.img8)
    img_train = T.ToModelInput.for_dataset(images, size=48, train=True)
    assert img_train.rotation is None and img_train.temporal_crop is not None
    assert img_train(batch(images, [0, 1])).shape == (2, 3, 3, 48, 48)
    with pytest.raises(DatasetRequestError, match="rotation needs the 3-D coordinates"):
        T.ToModelInput(form="image", rotation=T.RandomRotation3D())
    assert not hasattr(T, "RandomHorizontalFlip")  # a flip would swap body parts


def test_float16_image_path_approximates_the_mapping(datasets: Datasets) -> None:
    """A stored float16 image is already resized, so its min-max can only approximate the
    mapping of the compact grid (documented: max 0.08, mean 0.006 on this data)."""
    compact = S2IDataset(datasets.ntu)
    images = S2IDataset(datasets.img16)
    idx = list(range(N_IMAGES))
    exact = T.ToModelInput.for_dataset(compact, size=224, mean=None, std=None)(batch(compact, idx))
    approx = T.ToModelInput.for_dataset(images, size=224, mean=None, std=None)(batch(images, idx))
    diff = (exact - approx).abs()
    assert float(diff.max()) < 0.1 and float(diff.mean()) < 0.01
