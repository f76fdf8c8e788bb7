"""Zip archives as conversion inputs: members read in place, bounded, damage reported per member.

Archives are generated in ``tmp_path`` from the NTU builders of ``test_convert``; damaged ones are
made by cutting or patching their bytes, so every test knows exactly which member is bad.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from s2i_prep.errors import ReadError
from s2i_prep.readers import archive
from s2i_prep.readers.rawfile import read_bytes
from tests.test_convert import ROOT, _output_bytes, make_ntu, ntu_text, run_cli

PREFIX = "nturgbd_skeletons_s001_to_s017/nturgbd+rgb/"


def _zip(raw: Path, dest: Path, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(dest, "w", method) as zf:
        for path in sorted(raw.iterdir()):
            zf.write(path, PREFIX + path.name)
    return dest


def _same_dataset(a: Path, b: Path) -> None:
    """Every chunk byte-identical; the metadata equal except the inputs' own paths."""
    left, right = _output_bytes(a), _output_bytes(b)
    assert left.keys() == right.keys()
    for key in left:
        if key.endswith("zarr.json") and key.count("/") == 0:
            la, ra = json.loads(left[key]), json.loads(right[key])
            for attrs in (la["attributes"], ra["attributes"]):
                attrs["source"].pop("input", None), attrs["source"].pop("inputs")
                attrs["convert"].pop("input")
            assert la == ra
        else:
            assert left[key] == right[key], key


@pytest.fixture(scope="module")
def ntu_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("archive") / "raw"
    make_ntu(raw, n=10, frames=24)
    return raw


def test_archive_converts_like_its_extracted_folder(ntu_raw: Path, tmp_path: Path) -> None:
    zipped = _zip(ntu_raw, tmp_path / "ntu.zip")
    folder, packed = tmp_path / "folder.zarr", tmp_path / "packed.zarr"
    status, text = run_cli("convert", "--format", "ntu25", str(ntu_raw), str(folder), "-q",
                           "--workers", "0", "--shard-size", "4")
    assert status == 0, text
    status, text = run_cli("convert", "--format", "ntu25", str(tmp_path / "ntu.zip"), str(packed),
                           "-q", "--workers", "2", "--shard-size", "4")
    assert status == 0, text
    _same_dataset(folder, packed)
    source = json.loads((packed / "zarr.json").read_text())["attributes"]["source"]
    assert source["input"] == str(zipped) and source["files"] == 10


def test_skip_report_names_the_member(ntu_raw: Path, tmp_path: Path) -> None:
    zipped = _zip(ntu_raw, tmp_path / "ntu.zip")
    with zipfile.ZipFile(zipped, "a") as zf:
        zf.writestr(PREFIX + "S001C001P001R001A012.skeleton", "")
        zf.writestr(PREFIX + "README.txt", "not a skeleton: not planned")
    out = tmp_path / "out.zarr"
    status, text = run_cli("convert", "--format", "ntu25", str(zipped), str(out), "-q",
                           "--workers", "0")
    assert status == 3, text  # converted with skips
    report = json.loads((out / "zarr.json").read_text())["attributes"]["report"]
    assert report["counts"]["files"] == 11
    [row] = report["skipped"]
    assert row["path"] == f"{zipped}:{PREFIX}S001C001P001R001A012.skeleton"


def test_member_references_read_through_read_bytes(tmp_path: Path) -> None:
    zipped = tmp_path / "a.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("S001.skeleton", b"root member")
        zf.writestr("dir/x.zip:odd.skeleton", b"odd name")
    assert read_bytes(f"{zipped}:S001.skeleton") == b"root member"
    assert read_bytes(f"{zipped}:dir/x.zip:odd.skeleton") == b"odd name"
    assert archive.file_stem(f"{zipped}:S001.skeleton") == "S001"
    with pytest.raises(ReadError, match="no such member"):
        read_bytes(f"{zipped}:missing.skeleton")


def _patch_sizes(path: Path, member: str, size: int) -> None:
    """Make the local and central headers of ``member`` declare ``size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.index(b"PK\x03\x04")
    while data[local + 30: local + 30 + len(name)] != name:
        local = data.index(b"PK\x03\x04", local + 4)
    struct.pack_into("<L", data, local + 22, size)
    central = data.index(b"PK\x01\x02")
    while data[central + 46: central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<L", data, central + 24, size)
    path.write_bytes(bytes(data))


def test_zip_bomb_and_lying_headers_are_bounded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.skeleton", b"0" * (64 << 20))  # 64 MiB of zeros, ~64 KiB compressed
        zf.writestr("liar.skeleton", b"1" * (64 << 20))
    _patch_sizes(bomb, "liar.skeleton", 100)  # the header claims 100 bytes
    with pytest.raises(ReadError, match="more than the 1,000,000-byte limit"):
        archive.read_member(str(bomb), "big.skeleton", 1_000_000)  # refused from the header
    tracemalloc.start()
    try:
        with pytest.raises(ReadError, match="damaged archive member"):
            archive.read_member(str(bomb), "liar.skeleton", 1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # the 64 MiB behind the lie were never decompressed


def test_corrupt_member_is_skipped_and_the_others_convert(ntu_raw: Path, tmp_path: Path) -> None:
    zipped = _zip(ntu_raw, tmp_path / "ntu.zip", zipfile.ZIP_STORED)
    data = bytearray(zipped.read_bytes())
    victim = sorted(p.name for p in ntu_raw.iterdir())[3]
    at = data.index(victim.encode()) + len(PREFIX + victim) - len(PREFIX) + 200
    data[at] ^= 0x01  # flip one bit of the stored text: the CRC no longer matches
    zipped.write_bytes(bytes(data))
    out = tmp_path / "out.zarr"
    status, text = run_cli("convert", "--format", "ntu25", str(zipped), str(out), "-q",
                           "--workers", "0")
    assert status == 3, text
    report = json.loads((out / "zarr.json").read_text())["attributes"]["report"]
    assert report["counts"]["samples"] == 9
    [row] = report["skipped"]
    assert row["path"].endswith(victim) and "CRC" in row["reason"]


def test_truncated_archive_keeps_every_member_before_the_cut(ntu_raw: Path, tmp_path: Path) -> None:
    zipped = _zip(ntu_raw, tmp_path / "ntu.zip")
    names = sorted(p.name for p in ntu_raw.iterdir())
    with zipfile.ZipFile(zipped) as zf:
        cut_in = zf.getinfo(PREFIX + names[6])
        cut = cut_in.header_offset + 30 + len(cut_in.filename) + cut_in.compress_size // 2
    zipped.write_bytes(zipped.read_bytes()[:cut])  # a download stopped inside member 7
    from s2i_prep.pipeline import ConvertConfig, convert

    notes: list[str] = []
    result = convert(ConvertConfig(input=zipped, output=tmp_path / "out.zarr", format="ntu25",
                                   workers=0), log=notes.append)
    assert result.samples == 6 and result.files == 7
    [(path, reason, kind)] = result.skipped_list
    assert path == f"{zipped}:{PREFIX}{names[6]}" and kind == "bad_member"
    assert "truncated" in reason
    assert len(notes) == 1 and "7 members were found from their own headers" in notes[0]
    # the six good members equal a conversion of the same six files from a folder
    part = tmp_path / "six"
    part.mkdir()
    for name in names[:6]:
        (part / name).write_bytes((ntu_raw / name).read_bytes())
    ref = convert(ConvertConfig(input=part, output=tmp_path / "six.zarr", format="ntu25",
                                workers=0))
    chunks = [{k: v for k, v in _output_bytes(o).items() if not k.endswith("zarr.json")}
              for o in (ref.output, result.output)]
    assert chunks[0] == chunks[1] and len(chunks[0]) > 3


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "ntu.zip"
    fake.write_bytes(b"<html>Service unavailable</html>")
    status, text = run_cli("convert", "--format", "ntu25", str(fake), str(tmp_path / "o.zarr"), "-q")
    assert status == 1
    assert "not a readable zip archive" in text and "is the download complete" in text
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "o.zarr.partial").exists()


def test_duplicate_member_names_are_reported(tmp_path: Path) -> None:
    zipped = tmp_path / "dup.zip"
    name = "S001C001P001R001A001.skeleton"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr(name, "garbage")
        zf.writestr(name, ntu_text(1, frames=24))
    from s2i_prep.pipeline import ConvertConfig, convert

    result = convert(ConvertConfig(input=zipped, output=tmp_path / "o.zarr", format="ntu25",
                                   workers=0))
    assert result.samples == 1
    [(_, reason, kind)] = result.skipped_list
    assert kind == "bad_member" and "the later entry is read" in reason


def test_folder_only_reader_refuses_an_archive(tmp_path: Path) -> None:
    zipped = tmp_path / "kinetics.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("kinetics_train/abc.json", "{}")
    status, text = run_cli("convert", "--format", "openpose18", str(zipped),
                           str(tmp_path / "o.zarr"), "-q")
    assert status == 1 and "reads folders only" in text, text


@pytest.mark.slow
def test_resume_of_an_archive_after_kill(ntu_raw: Path, tmp_path: Path) -> None:
    zipped = _zip(ntu_raw, tmp_path / "ntu.zip")
    ref, out = tmp_path / "ref.zarr", tmp_path / "out.zarr"
    base = [sys.executable, "-m", "s2i_prep.cli", "convert", "--format", "ntu25", str(zipped),
            "-q", "--shard-size", "3", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([*base, str(ref)], env=env, check=True, timeout=120)
    killed = subprocess.run([*base, str(out)], env={**env, "S2I_FAULT": "shard-committed@2=KILL"},
                            timeout=120)
    assert killed.returncode == -9 and not out.exists()
    subprocess.run([*base, str(out), "--resume"], env=env, check=True, timeout=120)
    assert _output_bytes(out) == _output_bytes(ref)
