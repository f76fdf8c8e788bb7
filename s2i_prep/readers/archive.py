"""Archives as conversion inputs (zip here, tar in :mod:`.tar_archive`): members read in place,
never extracted.

NTU RGB+D ships as two zips of 56,880 and 57,600 ``.skeleton`` files; extracting them first costs
disk, time and 114,480 inodes. A member is named ``archive.zip:member`` (the form the skip report
shows), and :func:`~s2i_prep.readers.rawfile.read_bytes` reads such a reference through
:func:`read_member`, so every reader reads archives without knowing about them.

Hostile archives are bounded like plain files: a member whose header declares more than the
raw-file limit is refused before it is opened, and the read itself stops one byte past the limit
(a lying header or a zip bomb cannot exhaust memory); a member whose content does not match its
header (size, CRC-32) is refused with both figures. An archive whose central directory is lost (a
truncated download) is indexed from its local headers instead, so every member stored before the
cut still converts and the damaged one is reported.

Each process opens a zip once (workers open their own handle: a handle inherited through
``fork`` shares its file offset with the parent and would interleave reads). A tar's index is
built once, by the parent while planning, and inherited by forked workers (its reads are
``pread``). 7z and rar archives are refused with the way to repack them
(:func:`archive_problem`).
"""

from __future__ import annotations

import os
import struct
import weakref
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ReadError, S2IError, SourceLocation
from ..urls import Url, is_url, location

__all__ = [
    "ARCHIVE_SUFFIXES",
    "Member",
    "archive_problem",
    "file_stem",
    "is_archive",
    "list_members",
    "member_ref",
    "read_member",
    "split_member",
]

#: Input suffixes read as archives.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: Archive kinds recognised but not read, and why.
UNSUPPORTED_SUFFIXES = (".7z", ".rar")
_SEP = ":"

_LOCAL = struct.Struct("<4sHHHHHLLLHH")  # local file header, 30 bytes
_LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_DATA_DESCRIPTOR, _ENCRYPTED, _UTF8 = 0x08, 0x01, 0x800


@dataclass(frozen=True)
class Member:
    """One file stored in an archive, as planned: its name, size and the fields a resume
    compares (``date_ns`` from the member's own timestamp)."""

    name: str
    nbytes: int
    date_ns: int
    problem: str | None = None  # why it cannot be read (damaged, duplicate name), if known early


def is_archive(path: str | Path) -> bool:
    """Whether ``path`` is a regular file with an archive suffix (read as an archive)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES) and _is_file(path)


_URL_FILES: dict[str, bool] = {}


def _is_file(path: str | Path | Url) -> bool:
    """``os.path.isfile``, or for an fsspec URL whether it names an object (asked once per
    process: planning and the fingerprint ask for every member)."""
    if not is_url(path):
        return os.path.isfile(path)  # type: ignore[arg-type]
    text = str(path)
    found = _URL_FILES.get(text)
    if found is None:
        url = location(text)
        try:
            found = _URL_FILES[text] = bool(url.fs.isfile(url.path))  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - unreachable: not an archive we can read
            return False
    return found


def _open_binary(path: str) -> Any:
    """A binary file object of a local archive or of an archive object (fsspec reads it with
    range requests and a read-ahead cache)."""
    if not is_url(path):
        return open(path, "rb")
    url = location(path)
    return url.fs.open(url.path, "rb")  # type: ignore[union-attr]


def _size(path: str) -> int:
    if not is_url(path):
        return os.stat(path).st_size
    url = location(path)
    return int(url.fs.size(url.path))  # type: ignore[union-attr]


def archive_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an archive (a 7z or rar file), or ``None``."""
    low = str(path).lower()
    kind = next((s for s in UNSUPPORTED_SUFFIXES if low.endswith(s)), None)
    if kind is None or not os.path.isfile(path):
        return None
    return (f"{path}: {kind} archives are not read directly (no maintained pure-Python reader "
            "for them ships with s2i); supported archives: " + ", ".join(ARCHIVE_SUFFIXES)
            + f". Extract it (`7z x {os.path.basename(path)}`) and convert the folder, or repack "
            "it as zip or tar (`7z x -so ... | ...`, or extract then `zip -r -0` / `tar -cf`)")


def member_ref(archive: str | Path, member: str) -> str:
    """The reference ``archive.zip:member`` that names a member everywhere (plan, report)."""
    return f"{archive}{_SEP}{member}"


def split_member(path: str | Path) -> tuple[str, str] | None:
    """``(archive, member)`` if ``path`` is a member reference, else ``None``.

    The archive part is the shortest prefix ending in an archive suffix followed by ``:`` that
    is a regular file, so a member name may itself hold ``.zip:``.
    """
    text = str(path)
    low = text.lower()
    for suffix in ARCHIVE_SUFFIXES:
        key = suffix + _SEP
        at = low.find(key)
        while at >= 0:
            archive = text[: at + len(suffix)]
            if _is_file(archive):
                return archive, text[at + len(key):]
            at = low.find(key, at + 1)
    return None


def file_stem(path: str | Path) -> str:
    """The stem of a file or of a member reference (``a.zip:S001.skeleton`` -> ``S001``)."""
    text = os.fspath(path)
    ref = split_member(text) if _SEP in text else None
    if ref:
        return PurePosixPath(ref[1]).stem
    # pathlib's stem without building a Path (planning calls this twice per input file)
    name = os.path.basename(text.rstrip(os.sep)) if text.endswith(os.sep) else os.path.basename(text)
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


# ---------------------------------------------------------------------------------------------
# Indexing an archive: the central directory, or the local headers of a damaged archive.


@dataclass(frozen=True)
class _Entry:
    """Where a member of a damaged archive lies (from its local header)."""

    offset: int  # of the compressed data
    csize: int
    usize: int
    crc: int
    method: int
    problem: str | None


def _date_ns(date_time: tuple[int, ...]) -> int:
    import calendar

    try:
        return calendar.timegm((*date_time, 0, 0, 0)) * 1_000_000_000
    except (ValueError, OverflowError):
        return 0


def _scan_local_headers(path: str, size: int) -> tuple[dict[str, _Entry], list[Member], str]:
    """Index a zip from its local headers (for an archive whose central directory is lost).

    Stops at the first header that does not say where the next one begins (a streamed member
    with a data descriptor) or at the end of the readable data, and says why in the note.
    """
    entries: dict[str, _Entry] = {}
    members: list[Member] = []
    note = "the archive ends inside its members (truncated)"
    with _open_binary(path) as fh:
        pos = 0
        while True:
            fh.seek(pos)
            head = fh.read(_LOCAL.size)
            if head[:4] == _CENTRAL_SIG:
                note = "the central directory is damaged"
                break
            if len(head) < _LOCAL.size or head[:4] != _LOCAL_SIG:
                if pos == 0:
                    note = "no zip member header at its start"
                break
            _, _, flags, method, mtime, mdate, crc, csize, usize, nlen, elen = _LOCAL.unpack(head)
            raw_name = fh.read(nlen)
            if len(raw_name) < nlen:
                break
            name = raw_name.decode("utf-8" if flags & _UTF8 else "cp437", "replace")
            data = pos + _LOCAL.size + nlen + elen
            date = ((mdate >> 9) + 1980, (mdate >> 5) & 15, mdate & 31,
                    mtime >> 11, (mtime >> 5) & 63, (mtime & 31) * 2)
            if flags & _DATA_DESCRIPTOR or csize == 0xFFFFFFFF:
                note = (f"member {name!r} gives its size only after its data (streamed or zip64), "
                        "so the members after it cannot be found without the central directory")
                break
            problem = None
            if data + csize > size:
                problem = (f"truncated: the member's {csize:,} compressed bytes run past the end "
                           f"of the {size:,}-byte archive")
            elif flags & _ENCRYPTED:
                problem = "the member is encrypted; s2i reads unencrypted archives only"
            elif method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                problem = f"compression method {method} cannot be read from a damaged archive"
            if not name.endswith("/"):
                entries[name] = _Entry(data, csize, usize, crc, method, problem)
                members.append(Member(name, usize, _date_ns(date), problem))
            if problem and problem.startswith("truncated"):
                break
            pos = data + csize
    return entries, members, note


class _Index:
    """One process's open view of one archive."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.entries: dict[str, _Entry] = {}
        self.damage: str | None = None
        try:
            size = _size(path)
        except OSError as exc:
            raise S2IError(f"{path}: cannot read the archive: {exc.strerror or exc}") from None
        try:
            self.zip = zipfile.ZipFile(_open_binary(path) if is_url(path) else path)
            infos = [i for i in self.zip.infolist() if not i.is_dir()]
            self.members = _mark_duplicates(
                [Member(i.filename, i.file_size, _date_ns(i.date_time)) for i in infos]
            )
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            self.zip = None
            self.entries, members, note = _scan_local_headers(path, size)
            if not members:
                raise S2IError(
                    f"{path}: not a readable zip archive ({exc}; {note}); is the download "
                    "complete? (`unzip -t` tests an archive)"
                ) from None
            self.damage = (f"{path}: the archive's central directory is unreadable ({exc}); "
                           f"{len(members)} members were found from their own headers and {note}")
            self.members = _mark_duplicates(members)

    def read(self, member: str, limit: int) -> bytes:
        where = SourceLocation(member_ref(self.path, member))
        if self.zip is not None:
            try:
                info = self.zip.getinfo(member)
            except KeyError:
                raise ReadError(where, "the archive holds no such member") from None
            if info.file_size > limit:
                raise ReadError(where, f"cannot read file: {info.file_size:,} bytes, more than the "
                                       f"{limit:,}-byte limit of a raw file")
            try:
                with self.zip.open(info) as fh:
                    data = fh.read(limit + 1)
            except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
                raise ReadError(where, f"damaged archive member: {exc}") from None
            except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown compression
                raise ReadError(where, f"cannot read the member: {exc}") from None
            return _checked(where, data, info.file_size, limit)
        entry = self.entries.get(member)
        if entry is None:
            raise ReadError(where, "the archive holds no such member (or it lies after the damage)")
        if entry.problem:
            raise ReadError(where, entry.problem)
        if entry.usize > limit or entry.csize > limit + (1 << 20):
            raise ReadError(where, f"cannot read file: {entry.usize:,} bytes, more than the "
                                   f"{limit:,}-byte limit of a raw file")
        with _open_binary(self.path) as fh:
            fh.seek(entry.offset)
            blob = fh.read(entry.csize)
        if entry.method == zipfile.ZIP_STORED:
            data = blob[: limit + 1]
        else:
            try:
                data = zlib.decompressobj(-15).decompress(blob, limit + 1)
            except zlib.error as exc:
                raise ReadError(where, f"damaged archive member: {exc}") from None
        data = _checked(where, data, entry.usize, limit)
        if zlib.crc32(data) != entry.crc:
            raise ReadError(where, "damaged archive member: its CRC-32 does not match its header")
        return data


def _checked(where: SourceLocation, data: bytes, declared: int, limit: int) -> bytes:
    if len(data) > limit:
        raise ReadError(where, f"cannot read file: more than the {limit:,}-byte limit of a raw "
                               "file, though its header declares fewer")
    if len(data) != declared:
        raise ReadError(where, f"damaged archive member: its header declares {declared:,} "
                               f"bytes, its data holds {len(data):,}")
    return data


def _mark_duplicates(members: list[Member]) -> list[Member]:
    """A name stored twice reads as its last entry (as ``unzip`` does); earlier ones are
    reported, not silently shadowed."""
    last = {m.name: i for i, m in enumerate(members)}
    return [
        m if last[m.name] == i or m.problem else Member(
            m.name, m.nbytes, m.date_ns,
            "the archive stores this member name again later; the later entry is read")
        for i, m in enumerate(members)
    ]


_OPEN: dict[tuple[int, str], tuple[tuple[int, ...], Any]] = {}  # zip: per process (pid)
_SHARED: dict[str, tuple[tuple[int, ...], Any]] = {}  # tar: built once, inherited by forked workers


def _index(archive: str, want: tuple[str, ...] | None = None,
           spill_dir: str | None = None, owner: object = None) -> Any:
    """This process's index of ``archive``, rebuilt when the file changed (a replaced archive
    must not be read through a stale index; a stat costs about a microsecond). An index built
    for an ``owner`` (the conversion's reader) is dropped, and a compressed tar's spill file
    freed, when the owner is."""
    path = archive if is_url(archive) else os.path.abspath(archive)  # a URL: never stat'ed
    try:
        st = os.stat(path)
        identity: tuple[int, ...] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        identity = ()
    zipped = str(archive).lower().endswith(".zip")
    cache, key = (_OPEN, (os.getpid(), path)) if zipped else (_SHARED, path)
    hit = cache.get(key)
    if hit is not None and hit[0] == identity:
        index = hit[1]
    elif zipped:
        index = _Index(archive)
    else:
        from .rawfile import MAX_FILE_BYTES
        from .tar_archive import TarIndex

        index = TarIndex(archive, MAX_FILE_BYTES, want, spill_dir)
    cache[key] = (identity, index)
    if owner is not None and not zipped:
        index.holders += 1  # a second conversion of the same archive shares its spill
        weakref.finalize(owner, _forget, key, index)
    return index


def _forget(key: str, index: Any) -> None:
    """An owner of a tar index is gone: free the index when it was the last one."""
    index.holders -= 1
    if index.holders > 0:
        return
    hit = _SHARED.get(key)
    if hit is not None and hit[1] is index:
        del _SHARED[key]
    index.close()


def list_members(archive: str | Path, want: tuple[str, ...] | None = None,
                 spill_dir: str | Path | None = None,
                 owner: object = None) -> tuple[list[Member], str | None]:
    """The file members of ``archive`` in stored order, and a note when it is damaged.

    ``want`` (name suffixes) and ``spill_dir`` matter for a compressed tar only: its members
    with those suffixes are decompressed once, now, into an unlinked spill file in ``spill_dir``
    (default: the temporary folder), see :mod:`.tar_archive`; it is freed when ``owner`` is
    garbage-collected (the conversion's reader), or with the process.

    Raises:
        S2IError: the file is no archive of its kind and no member can be found in it.
    """
    index = _index(str(archive), want, None if spill_dir is None else str(spill_dir), owner)
    return index.members, index.damage


def read_member(archive: str, member: str, limit: int) -> bytes:
    """The bytes of one member, bounded by ``limit`` whatever its header says.

    Raises:
        ReadError: missing, too large, damaged (size/CRC mismatch, truncated), encrypted.
    """
    try:
        index = _index(archive)
    except S2IError as exc:
        raise ReadError(SourceLocation(member_ref(archive, member)), str(exc)) from None
    return index.read(member, limit)
