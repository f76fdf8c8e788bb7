"""``verify`` on damaged stores names exactly the damaged samples, with nothing on stderr."""

from __future__ import annotations

import numpy as np
import pytest

from s2i_prep.cli import main
from s2i_prep.synthetic import write_synthetic


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    write_synthetic("ntu25", root, 24)
    return root


def _convert(raw, out, *extra: str) -> None:
    assert main(["convert", "--format", "ntu25", str(raw), str(out), "--workers", "0", "-q",
                 "--shard-size", "16", *extra]) in (0, 3)


def _flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def _zarr_chunk(out, sample: int, shard_size: int = 16) -> tuple[object, int, int]:
    """Shard file, byte offset and size of ``sample``'s inner chunk, from the shard index."""
    shard = out / "s2i" / "c" / str(sample // shard_size) / "0" / "0" / "0" / "0"
    data = shard.read_bytes()
    index = np.frombuffer(data[-(16 * shard_size + 4):-4], "<u8").reshape(shard_size, 2)
    offset, size = index[sample % shard_size]
    return shard, int(offset), int(size)


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_zarr_one_flipped_byte_names_one_sample(raw, tmp_path, capfd, codec):
    out = tmp_path / "out.zarr"
    _convert(raw, out, "--codec", codec)
    capfd.readouterr()
    shard, offset, size = _zarr_chunk(out, 19)
    _flip(shard, offset + size // 2)
    assert main(["verify", str(out)]) == 1
    captured = capfd.readouterr()
    assert captured.err == ""
    lines = captured.out.strip().splitlines()
    assert lines == [f"{out}: s2i: sample 19 unreadable (shard 1: crc32c checksum mismatch)"]


def test_zarr_damaged_index_blames_its_shard_only(raw, tmp_path, capfd):
    out = tmp_path / "out.zarr"
    _convert(raw, out)
    shard, _, _ = _zarr_chunk(out, 3)
    _flip(shard, shard.stat().st_size - 20)
    capfd.readouterr()
    assert main(["verify", str(out)]) == 1
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "samples 0..15 unreadable (shard 0: its index is damaged)" in captured.out


@pytest.mark.slow
def test_hdf5_one_flipped_byte_names_one_sample(raw, tmp_path, capfd):
    import h5py

    out = tmp_path / "out.h5"
    _convert(raw, out)
    with h5py.File(out, "r") as f:
        info = f["s2i"].id.get_chunk_info(7)
    _flip(out, info.byte_offset + info.size // 2)
    capfd.readouterr()
    assert main(["verify", str(out)]) == 1
    captured = capfd.readouterr()
    assert captured.err == ""
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{out}: s2i: sample 7 unreadable (")


@pytest.mark.slow
def test_zarr_fallback_reads_per_sample_quietly(raw, tmp_path, capfd, monkeypatch):
    """Layouts the checksum scan does not know are read sample by sample after a failure."""
    from s2i_prep.store import validation

    out = tmp_path / "out.zarr"
    _convert(raw, out, "--codec", "zstd")
    shard, offset, size = _zarr_chunk(out, 5)
    _flip(shard, offset + size // 2)
    monkeypatch.setattr(validation, "_zarr_shard_damage", lambda *args: None)
    capfd.readouterr()
    assert main(["verify", str(out)]) == 1
    captured = capfd.readouterr()
    assert captured.err == ""
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{out}: s2i: sample 5 unreadable (")
