"""Tiny converted datasets for the s2i_train tests, built once per session from synthetic data.

``ntu``: 48 NTU-format samples (6 classes, two shards of 32 in Zarr), also as HDF5 and as stored
224 x 224 uint8 and float16 images (first 12 samples); ``ucla``: 24 NW-UCLA-format samples.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from s2i_prep.encoding import EncodeConfig
from s2i_prep.pipeline import ConvertConfig, convert
from s2i_prep.synthetic import write_synthetic


@dataclass(frozen=True)
class Datasets:
    ntu: Path  # compact, zarr, shard_size 32 (two shards, the last one short)
    ntu_h5: Path  # compact, hdf5
    ucla: Path  # compact, zarr, NW-UCLA format (20 columns, 10 classes)
    img8: Path  # first 12 NTU samples, 224 x 224 uint8 (zstd)
    img16: Path  # first 12 NTU samples, 224 x 224 float16 (blosc lz4)
    img8_h5: Path  # first 12 NTU samples, 224 x 224 uint8, hdf5


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Datasets:
    root = tmp_path_factory.mktemp("train_data")
    write_synthetic("ntu25", root / "ntu_raw", 48, classes=6, seed=3)
    write_synthetic("ucla20", root / "ucla_raw", 24, seed=4)

    def run(raw: str, out: str, fmt: str = "ntu25", **kw: object) -> Path:
        convert(ConvertConfig(input=root / raw, output=root / out, format=fmt, workers=0, **kw))
        return root / out

    image8 = EncodeConfig(image_size=(224, 224), dtype="uint8")
    image16 = EncodeConfig(image_size=(224, 224), dtype="float16")
    return Datasets(
        ntu=run("ntu_raw", "ntu.zarr", shard_size=32),
        ntu_h5=run("ntu_raw", "ntu.h5"),
        ucla=run("ucla_raw", "ucla.zarr", fmt="ucla20", shard_size=16),
        img8=run("ntu_raw", "img8.zarr", encode=image8, limit=12, shard_size=8),
        img16=run("ntu_raw", "img16.zarr", encode=image16, limit=12, shard_size=8),
        img8_h5=run("ntu_raw", "img8.h5", encode=image8, limit=12),
    )


def copy_dataset(src: Path, dst_dir: Path) -> Path:
    """A private copy of a session dataset (for tests that damage it)."""
    dst = dst_dir / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    return dst
