"""Several inputs in one conversion, and tar archives read in place.

NTU-120 ships as two zips: converting both at once must equal converting their extracted union,
whatever order they are listed in and however the files are split between them. Tar archives
(plain and compressed) must equal the folder they were made from, and a damaged one must keep
every member before the damage. Inputs are generated in ``tmp_path``.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from s2i_prep.errors import ReadError, S2IError
from s2i_prep.pipeline import ConvertConfig, ConvertFailed, ConvertStopped, convert
from s2i_prep.readers import archive
from tests.test_archive import PREFIX, _same_dataset
from tests.test_convert import _output_bytes, make_ntu, ntu_text, run_cli

TAR_KINDS = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}


@pytest.fixture(scope="module")
def ntu_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("multi") / "raw"
    make_ntu(raw, n=10, frames=24)
    return raw


def _names(raw: Path) -> list[str]:
    return sorted(p.name for p in raw.iterdir())


def _zip_of(raw: Path, names: list[str], dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.write(raw / name, PREFIX + name)
    return dest


def _tar_of(raw: Path, names: list[str], dest: Path) -> Path:
    mode = next(m for suffix, m in TAR_KINDS.items() if dest.name.endswith(suffix))
    with tarfile.open(dest, mode) as tf:
        for name in names:
            tf.add(raw / name, PREFIX + name)
    return dest


def _run(inputs: list[Path] | Path, out: Path, **options) -> object:
    return convert(ConvertConfig(input=inputs, output=out, format="ntu25",
                                 **{"workers": 0, "shard_size": 4, **options}))


def _attrs(out: Path) -> dict:
    return json.loads((out / "zarr.json").read_text())["attributes"]


def test_two_archives_equal_their_extracted_union_in_any_order(ntu_raw: Path,
                                                               tmp_path: Path) -> None:
    names = _names(ntu_raw)
    # interleaved, so the samples of each archive alternate in the sorted union
    a = _zip_of(ntu_raw, names[0::2], tmp_path / "nturgbd_skeletons_s001_to_s017.zip")
    b = _zip_of(ntu_raw, names[1::2], tmp_path / "nturgbd_skeletons_s018_to_s032.zip")
    folder, both, swapped = (tmp_path / f"{n}.zarr" for n in ("folder", "both", "swapped"))
    status, text = run_cli("convert", "--format", "ntu25", str(ntu_raw), str(folder), "-q",
                           "--workers", "0", "--shard-size", "4")
    assert status == 0, text
    status, text = run_cli("convert", "--format", "ntu25", str(a), str(b), str(both), "-q",
                           "--workers", "2", "--shard-size", "4")
    assert status == 0, text
    _same_dataset(folder, both)
    _run([b, a], swapped)
    assert _output_bytes(swapped) == _output_bytes(both)  # attributes included
    source = _attrs(both)["source"]
    assert source["inputs"] == [str(a), str(b)] and "input" not in source
    assert source["files"] == 10
    assert _attrs(both)["convert"]["input"] == [str(a), str(b)]


def test_folder_zip_and_tar_mix_equals_the_folder(ntu_raw: Path, tmp_path: Path) -> None:
    names = _names(ntu_raw)
    part = tmp_path / "part"
    part.mkdir()
    for name in names[0::3]:
        (part / name).write_bytes((ntu_raw / name).read_bytes())
    inputs = [part, _zip_of(ntu_raw, names[1::3], tmp_path / "b.zip"),
              _tar_of(ntu_raw, names[2::3], tmp_path / "c.tar.gz")]
    _run(ntu_raw, tmp_path / "folder.zarr")
    result = _run(inputs, tmp_path / "mix.zarr")
    assert result.samples == 10 and not result.skipped
    _same_dataset(tmp_path / "folder.zarr", tmp_path / "mix.zarr")


def test_a_sample_in_two_inputs_is_a_duplicate_naming_both(ntu_raw: Path, tmp_path: Path) -> None:
    names = _names(ntu_raw)
    a = _zip_of(ntu_raw, names[:6], tmp_path / "a.zip")
    b = _tar_of(ntu_raw, names[5:], tmp_path / "b.tar")
    result = _run([b, a], tmp_path / "out.zarr")
    assert result.samples == 10 and result.files == 11
    [(path, reason, kind)] = result.skipped_list
    assert kind == "duplicate"
    # the first input (sorted: a.zip) is converted, the other is reported with both places
    assert path == f"{b}:{PREFIX}{names[5]}"
    assert f"{a}:{PREFIX}{names[5]}" in reason and "unique across the inputs" in reason


def _stopped_after(inputs: list[Path], out: Path, files: int) -> None:
    def stop(update) -> None:
        if update.files_done >= files:
            raise KeyboardInterrupt

    with pytest.raises(ConvertStopped) as stopped:
        convert(ConvertConfig(input=inputs, output=out, format="ntu25", workers=0,
                              shard_size=2), progress=stop)
    assert stopped.value.kept is not None


def test_resume_names_the_input_added_removed_or_changed(ntu_raw: Path, tmp_path: Path) -> None:
    names = _names(ntu_raw)
    a = _zip_of(ntu_raw, names[0:8:2], tmp_path / "a.zip")
    b = _zip_of(ntu_raw, names[1:8:2], tmp_path / "b.zip")
    c = _zip_of(ntu_raw, names[8:], tmp_path / "c.zip")
    out = tmp_path / "out.zarr"
    _stopped_after([a, b], out, 5)

    def refusal(inputs: list[Path]) -> str:
        with pytest.raises(S2IError, match="cannot resume") as exc:
            _run(inputs, out, shard_size=2, resume=True)
        return str(exc.value)

    assert f"input {c} was added" in refusal([a, b, c])
    assert f"input {b} was removed" in refusal([a])
    # b.zip rebuilt with one already converted member changed
    with zipfile.ZipFile(b, "w") as zf:
        for i, name in enumerate(names[1:8:2]):
            zf.writestr(PREFIX + name, ntu_text(90 + i, frames=24) if i == 0 else
                        (ntu_raw / name).read_text())
    text = refusal([a, b])
    assert "changed" in text and f"in input {b}" in text and names[1] in text
    # listed in another order, with the original b.zip, the resume goes on and equals a full run
    _zip_of(ntu_raw, names[1:8:2], b)
    _run([b, a], out, shard_size=2, resume=True)
    _run([a, b], tmp_path / "full.zarr", shard_size=2)
    assert _output_bytes(out) == _output_bytes(tmp_path / "full.zarr")


@pytest.mark.parametrize("suffix", list(TAR_KINDS))
def test_tar_converts_like_its_extracted_folder(ntu_raw: Path, tmp_path: Path,
                                                suffix: str) -> None:
    packed = _tar_of(ntu_raw, _names(ntu_raw), tmp_path / f"ntu{suffix}")
    _run(ntu_raw, tmp_path / "folder.zarr")
    result = _run(packed, tmp_path / "packed.zarr", workers=2)
    assert result.samples == 10 and not result.skipped
    _same_dataset(tmp_path / "folder.zarr", tmp_path / "packed.zarr")


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_truncated_tar_keeps_every_member_before_the_cut(ntu_raw: Path, tmp_path: Path,
                                                         suffix: str) -> None:
    names = _names(ntu_raw)
    packed = _tar_of(ntu_raw, names, tmp_path / f"ntu{suffix}")
    if suffix == ".tar":
        with tarfile.open(packed) as tf:
            member = tf.getmember(PREFIX + names[6])
            cut = member.offset_data + member.size // 2
    else:  # the compressed stream cut where member 7's bytes lie
        plain = _tar_of(ntu_raw, names, tmp_path / "plain.tar")
        with tarfile.open(plain) as tf:
            member = tf.getmember(PREFIX + names[6])
        cut = int(packed.stat().st_size * (member.offset_data + member.size // 2)
                  / plain.stat().st_size)
    packed.write_bytes(packed.read_bytes()[:cut])
    notes: list[str] = []
    result = convert(ConvertConfig(input=packed, output=tmp_path / "out.zarr", format="ntu25",
                                   workers=0), log=notes.append)
    good = result.samples
    if suffix == ".tar":
        assert good == 6 and result.files == 7
        [(path, reason, kind)] = result.skipped_list
        assert path == f"{packed}:{PREFIX}{names[6]}" and kind == "bad_member"
        assert "truncated" in reason
    else:  # compression makes the cut's member position approximate: 5-7 members survive
        assert 5 <= good <= 7 and result.files in (good, good + 1)
    assert len(notes) == 1 and "truncated" in notes[0]
    # the good members equal a conversion of the same files from a folder
    part = tmp_path / "part"
    part.mkdir()
    for name in names[:good]:
        (part / name).write_bytes((ntu_raw / name).read_bytes())
    ref = _run(part, tmp_path / "part.zarr", shard_size=None)
    chunks = [{k: v for k, v in _output_bytes(o).items() if not k.endswith("zarr.json")}
              for o in (ref.output, result.output)]
    assert chunks[0] == chunks[1] and len(chunks[0]) > 3


def test_tar_cut_inside_a_header_is_noticed(ntu_raw: Path, tmp_path: Path) -> None:
    names = _names(ntu_raw)
    packed = _tar_of(ntu_raw, names, tmp_path / "ntu.tar")
    with tarfile.open(packed) as tf:
        header = tf.getmember(PREFIX + names[4]).offset
    packed.write_bytes(packed.read_bytes()[: header + 100])
    notes: list[str] = []
    result = convert(ConvertConfig(input=packed, output=tmp_path / "out.zarr", format="ntu25",
                                   workers=0), log=notes.append)
    assert result.samples == 4 and not result.skipped
    assert len(notes) == 1 and f"damaged at byte {header:,}" in notes[0]


@pytest.mark.parametrize("name", ["ntu.tar", "ntu.tar.gz", "ntu.tar.xz"])
def test_not_a_tar_is_a_clear_error(tmp_path: Path, name: str) -> None:
    fake = tmp_path / name
    fake.write_bytes(b"<html>Service unavailable</html>" * 40)
    status, text = run_cli("convert", "--format", "ntu25", str(fake), str(tmp_path / "o.zarr"), "-q")
    assert status == 1
    assert "not a readable" in text and "is the download complete" in text, text
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "o.zarr.partial").exists()


def test_tar_members_are_bounded_and_links_not_followed(tmp_path: Path) -> None:
    packed = tmp_path / "odd.tar"
    body = ntu_text(1, frames=24).encode()
    with tarfile.open(packed, "w") as tf:
        info = tarfile.TarInfo("S001C001P001R001A001.skeleton")
        info.size = len(body)
        import io

        tf.addfile(info, io.BytesIO(body))
        link = tarfile.TarInfo("S001C001P001R002A001.skeleton")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    ref = archive.member_ref(packed, "S001C001P001R001A001.skeleton")
    with pytest.raises(ReadError, match="more than the 100-byte limit"):
        archive.read_member(str(packed), "S001C001P001R001A001.skeleton", 100)
    from s2i_prep.readers.rawfile import read_bytes

    assert read_bytes(ref) == body
    result = _run(packed, tmp_path / "o.zarr")
    assert result.samples == 1
    [(_, reason, kind)] = result.skipped_list
    assert kind == "bad_member" and "links are not followed" in reason


def test_compressed_tar_spill_is_bounded_by_free_space(ntu_raw: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from s2i_prep.readers import tar_archive

    packed = _tar_of(ntu_raw, _names(ntu_raw), tmp_path / "ntu.tgz")
    monkeypatch.setattr(tar_archive, "SPILL_RESERVE", 1 << 62)  # no disk is that large
    with pytest.raises(ConvertFailed, match=r"10 skipped; first: .*would leave less than"):
        _run(packed, tmp_path / "o.zarr")


# --------------------------------------------------------------------------------------------
# Command-line errors.


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{raw}"], "missing OUTPUT"),
        (["{raw}", "{tmp}/other"], "expected a name ending in .zarr"),
        (["{tmp}/o.zarr"], "missing INPUT"),
        (["{raw}", "{tmp}/none.zip", "{tmp}/o.zarr"], "does not exist"),
        (["{raw}", "{raw}", "{tmp}/o.zarr"], "listed twice"),
        (["{tmp}/data.7z", "{tmp}/o.zarr"], "7z archives are not read directly"),
        (["{tmp}/data.rar", "{tmp}/o.zarr"], "supported archives: .zip, .tar"),
        (["{tmp}/a.pkl", "{raw}", "{tmp}/o.zarr"], "converts alone"),
        (["{tmp}/done.zarr", "{tmp}/o.zarr"], "is an S2I dataset, not raw input"),
    ],
)
def test_command_line_input_errors(ntu_raw: Path, tmp_path: Path, args: list[str],
                                   expected: str) -> None:
    for name in ("data.7z", "data.rar", "a.pkl"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "done.zarr").mkdir()
    status, text = run_cli("convert", "--format", "ntu25", "-q",
                           *(a.format(raw=ntu_raw, tmp=tmp_path) for a in args))
    assert status != 0 and expected in text, text
    assert not (tmp_path / "o.zarr").exists()


def test_nested_folder_inputs_are_refused(ntu_raw: Path, tmp_path: Path) -> None:
    with pytest.raises(S2IError, match="lies inside input"):
        _run([ntu_raw.parent, ntu_raw], tmp_path / "o.zarr")
    (tmp_path / "link").symlink_to(ntu_raw)
    with pytest.raises(S2IError, match="are the same folder"):
        _run([ntu_raw, tmp_path / "link"], tmp_path / "o.zarr")


def test_a_single_path_is_still_accepted(ntu_raw: Path) -> None:
    cfg = ConvertConfig(input=ntu_raw, output=Path("o.zarr"))
    assert cfg.input == (ntu_raw,) and cfg.to_dict()["input"] == str(ntu_raw)
    assert ConvertConfig.from_dict(cfg.to_dict()).input == (ntu_raw,)
    two = ConvertConfig(input=["b", "a"], output=Path("o.zarr"))
    assert two.input == (Path("a"), Path("b")) and two.to_dict()["input"] == ["a", "b"]
    with pytest.raises(ValueError, match="at least one input"):
        ConvertConfig(input=[], output=Path("o.zarr"))


def test_compressed_tar_spill_is_freed_with_the_conversion(ntu_raw: Path, tmp_path: Path) -> None:
    import gc
    import os

    packed = _tar_of(ntu_raw, _names(ntu_raw), tmp_path / "ntu.tar.xz")
    # (with workers=0 the spill lives until the next conversion: its reader stays installed)
    _run(packed, tmp_path / "o.zarr", workers=2)
    gc.collect()
    spills = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
              if "s2i-spill" in os.path.realpath(f"/proc/self/fd/{fd}")]
    assert not spills and not archive._SHARED.get(str(packed))


# --------------------------------------------------------------------------------------------
# Readers with side files: PKU-MMD labels and split files per input folder.


def _pku_split(root: Path, train: list[str], test: list[str]) -> None:
    (root / "split").mkdir(exist_ok=True)
    (root / "split" / "cross-subject.txt").write_text(
        f"Training videos: {', '.join(train)}\nValidataion videos: {', '.join(test)}\n")


def test_pku_folders_read_their_own_labels_and_merge_split_files(tmp_path: Path) -> None:
    import shutil

    from tests.test_convert import make_pku

    make_pku(tmp_path / "one", videos=("0002-L", "0002-M"))
    make_pku(tmp_path / "two", videos=("0003-L", "0003-M"))
    shutil.copytree(tmp_path / "one", tmp_path / "all")
    shutil.copytree(tmp_path / "two", tmp_path / "all", dirs_exist_ok=True)
    _pku_split(tmp_path / "all", ["0002-L", "0003-L"], ["0002-M", "0003-M"])
    _pku_split(tmp_path / "one", ["0002-L"], ["0002-M"])
    _pku_split(tmp_path / "two", ["0003-L"], ["0003-M"])
    opts = {"format": "pku25", "workers": 0}
    convert(ConvertConfig(input=tmp_path / "all", output=tmp_path / "all.zarr", **opts))
    convert(ConvertConfig(input=[tmp_path / "two", tmp_path / "one"],
                          output=tmp_path / "both.zarr", **opts))
    chunks = [{k: v for k, v in _output_bytes(o).items() if k != "zarr.json"}
              for o in (tmp_path / "all.zarr", tmp_path / "both.zarr")]
    assert chunks[0] == chunks[1]  # the split arrays included
    source = _attrs(tmp_path / "both.zarr")["split_sources"]["pku1-xsub"]
    assert source.startswith("files ") and source.count("cross-subject.txt") == 2
    # split files that disagree (a video in train in one, test in the other): the spec's rule
    _pku_split(tmp_path / "two", ["0003-L", "0002-M"], ["0003-M"])
    with pytest.warns(UserWarning, match="in both train and test"):
        convert(ConvertConfig(input=[tmp_path / "one", tmp_path / "two"],
                              output=tmp_path / "clash.zarr", **opts))
    assert _attrs(tmp_path / "clash.zarr")["split_sources"]["pku1-xsub"] == "rule"


def test_compressed_tar_with_a_damaged_header_is_noticed(ntu_raw: Path, tmp_path: Path) -> None:
    import gzip

    names = _names(ntu_raw)
    plain = bytearray(_tar_of(ntu_raw, names, tmp_path / "plain.tar").read_bytes())
    with tarfile.open(tmp_path / "plain.tar") as tf:
        header = tf.getmember(PREFIX + names[3]).offset
    plain[header + 148: header + 156] = b"garbage!"  # the header's checksum field
    packed = tmp_path / "ntu.tar.gz"
    packed.write_bytes(gzip.compress(bytes(plain)))
    notes: list[str] = []
    result = convert(ConvertConfig(input=packed, output=tmp_path / "out.zarr", format="ntu25",
                                   workers=0), log=notes.append)
    assert result.samples == 3 and not result.skipped
    assert len(notes) == 1 and "damaged after 3 members" in notes[0]


def test_real_ntu_files_in_a_zip_and_a_tar_equal_their_folder(realdata: Path,
                                                              tmp_path: Path) -> None:
    raw = realdata / "ntu"
    names = _names(raw)
    # NTU-120's own split: the first setups in one archive, the later ones in the other
    first = [n for n in names if n < "S017"]
    inputs = [_zip_of(raw, first, tmp_path / "nturgbd_skeletons_s001_to_s017.zip"),
              _tar_of(raw, [n for n in names if n not in first], tmp_path / "later.tar.gz")]
    folder = _run(raw, tmp_path / "folder.zarr")
    both = _run(inputs, tmp_path / "both.zarr")
    assert both.samples == folder.samples == len(names) and not both.skipped
    _same_dataset(tmp_path / "folder.zarr", tmp_path / "both.zarr")


def test_kinetics_train_and_val_folders_as_two_inputs(tmp_path: Path) -> None:
    """Each folder's label index lies next to it, so the two folders equal the release root."""
    from s2i_prep.synthetic import write_synthetic

    root = tmp_path / "kinetics"
    write_synthetic("openpose18", root, 12, seed=3, frames=(20, 30))
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["kinetics_train", "kinetics_val"]
    opts = {"format": "openpose18", "workers": 0}
    whole = convert(ConvertConfig(input=root, output=tmp_path / "whole.zarr", **opts))
    parts = convert(ConvertConfig(input=folders[::-1], output=tmp_path / "parts.zarr", **opts))
    assert parts.samples == whole.samples == 12 and not parts.skipped
    _same_dataset(tmp_path / "whole.zarr", tmp_path / "parts.zarr")


def test_the_same_compressed_tar_converts_twice_in_one_process(ntu_raw: Path,
                                                               tmp_path: Path) -> None:
    """The second conversion reuses the first one's spill, which must outlive the first reader
    (with workers=0 that reader is dropped only when the second run installs its own)."""
    import gc

    packed = _tar_of(ntu_raw, _names(ntu_raw), tmp_path / "ntu.tgz")
    first = _run(packed, tmp_path / "one.zarr")
    gc.collect()
    index = archive._SHARED[str(packed)][1]
    second = _run(packed, tmp_path / "two.zarr")
    assert first.samples == second.samples == 10 and not second.skipped
    # the spill was shared (not decompressed again into the temporary folder) and is still open
    assert archive._SHARED[str(packed)][1] is index and index._fd >= 0


def test_a_duplicate_of_an_unreadable_member_is_converted(ntu_raw: Path, tmp_path: Path) -> None:
    """When the first copy is known to be unreadable (cut by a truncation), the other input's
    copy is the one converted, not reported as a duplicate of nothing."""
    names = _names(ntu_raw)
    a = _tar_of(ntu_raw, names[:3], tmp_path / "a.tar")
    with tarfile.open(a) as tf:
        member = tf.getmember(PREFIX + names[2])
    a.write_bytes(a.read_bytes()[: member.offset_data + 10])
    b = _zip_of(ntu_raw, names[2:], tmp_path / "b.zip")
    with pytest.warns(UserWarning, match="the archive ends inside member"):
        result = _run([a, b], tmp_path / "out.zarr")
    assert result.samples == 10
    [(path, reason, kind)] = result.skipped_list
    assert path == f"{a}:{PREFIX}{names[2]}" and kind == "bad_member" and "truncated" in reason


def test_export_rereads_every_input_folder(ntu_raw: Path, tmp_path: Path) -> None:
    from s2i_prep.export import exported_skeletons

    names = _names(ntu_raw)
    parts = [tmp_path / "one", tmp_path / "two"]
    for part, chosen in zip(parts, (names[0::2], names[1::2])):
        part.mkdir()
        for name in chosen:
            (part / name).write_bytes((ntu_raw / name).read_bytes())
    _run(parts, tmp_path / "o.zarr")
    _, attrs, ids, found = exported_skeletons(tmp_path / "o.zarr")  # verified against the data
    assert len(ids) == len(found) == 10 and "input" not in attrs["source"]
