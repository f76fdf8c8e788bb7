"""Tar archives (plain or gzip/bzip2/xz-compressed) as conversion inputs, read in place.

A plain ``.tar`` stores every member's bytes contiguously after its header, so indexing it reads
only the headers (tarfile seeks over the data) and a worker reads a member with one ``pread`` at
its offset. The index and the descriptor are shared with forked workers: ``pread`` does not move
the file offset, so nothing interleaves.

A compressed tar has no random access: reaching a member means decompressing everything before
it, and its member list is known only after decompressing all of it. So the parent decompresses
it exactly once, while indexing, and copies each wanted member's bytes into a *spill file*: an
unlinked temporary file (freed by the kernel when the run ends, however it ends) that is then
read like a plain tar, by offset, from every forked worker. The decompression is single-threaded
(the formats are one stream) and precedes the conversion; measured in benchmarks/RESULTS.md.
Spilling stops before it would leave less than :data:`SPILL_RESERVE` bytes free on its disk, so
a decompression bomb cannot fill the disk; members not spilled are reported.

Damage: a truncated archive keeps every member before the cut, the cut member is reported (its
``problem``), and a note says where the archive ends. A file that is no tar at all is an error.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from typing import IO

from ..errors import ReadError, S2IError, SourceLocation

#: Bytes a spill must leave free on its disk (members beyond are reported, not spilled).
SPILL_RESERVE = 1 << 30

_COMPRESSED = {".gz": "gz", ".tgz": "gz", ".bz2": "bz2", ".tbz2": "bz2", ".xz": "xz", ".txz": "xz"}


@dataclass(frozen=True)
class _Entry:
    offset: int  # of the member's bytes in the archive (plain) or in the spill file
    size: int
    problem: str | None


def compression(path: str) -> str | None:
    """``gz``, ``bz2`` or ``xz`` for a compressed tar (by its suffix), ``None`` for a plain one."""
    low = path.lower()
    return next((kind for suffix, kind in _COMPRESSED.items() if low.endswith(suffix)), None)


def _member_problem(info: tarfile.TarInfo) -> str | None:
    if info.issym() or info.islnk():
        return f"a link inside the archive (to {info.linkname!r}); links are not followed"
    if not info.isreg():
        return "not a regular file inside the archive (a device, FIFO or other special entry)"
    if info.issparse():
        return "a sparse member; s2i reads plain tar members only"
    return None


class TarIndex:
    """One archive's members and where their bytes lie (shared with forked workers)."""

    fork_safe = True  # reads use pread on a descriptor whose offset nothing moves
    holders = 0  # conversions using this index (archive._index frees it when none is left)

    def __init__(self, path: str, limit: int, want: tuple[str, ...] | None = None,
                 spill_dir: str | None = None) -> None:
        from .archive import Member

        self.path = path
        self.entries: dict[str, _Entry] = {}
        self.members: list[Member] = []
        self.damage: str | None = None
        self._spill: IO[bytes] | None = None
        self._spill_dir = spill_dir or tempfile.gettempdir()
        self._fd = -1
        try:
            self.size = os.stat(path).st_size
        except OSError as exc:
            raise S2IError(f"{path}: cannot read the archive: {exc.strerror}") from None
        kind = compression(path)
        count = 0
        try:
            if kind is None:
                self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                tar = tarfile.open(path, "r:")
            else:
                self._spill = tempfile.TemporaryFile(prefix="s2i-spill-", dir=spill_dir)
                self._fd = self._spill.fileno()
                tar = tarfile.open(path, f"r|{kind}", bufsize=1 << 20)
        except (tarfile.TarError, OSError, EOFError) as exc:
            self.close()
            raise S2IError(
                f"{path}: not a readable {'tar' if kind is None else kind + '-compressed tar'} "
                f"archive ({exc}); is the download complete? (`tar -tf` tests an archive)"
            ) from None
        try:
            with tar:
                while True:
                    try:
                        info = tar.next()
                    except (tarfile.TarError, EOFError, OSError) as exc:
                        self.damage = self._cut(exc, count)
                        break
                    if info is None:
                        break
                    if info.isdir():
                        continue
                    count += 1
                    member = self._add(tar, info, kind, limit, want)
                    self.members.append(Member(info.name, info.size, int(info.mtime) * 10**9,
                                               member.problem))
                    if member.problem and member.problem.startswith("truncated"):
                        self.damage = (f"{path}: the archive ends inside member {info.name!r} "
                                       f"(truncated); the {count - 1} members before it convert")
                        break
                if kind is None and self.damage is None:
                    self.damage = self._check_end(tar.offset, count)
                elif self.damage is None:
                    self.damage = self._check_stream_end(tar, count)
        except (tarfile.TarError, EOFError, OSError) as exc:  # closing a damaged stream
            self.damage = self.damage or self._cut(exc, count)
        if not self.members and self.damage:
            self.close()
            raise S2IError(f"{path}: not a readable tar archive ({self.damage}); is the "
                           "download complete? (`tar -tf` tests an archive)")
        from .archive import _mark_duplicates

        self.members = _mark_duplicates(self.members)

    def _check_end(self, offset: int, count: int) -> str | None:
        """tarfile ends quietly at a damaged or cut header after the first one: a plain tar must
        end with its zero-filled end-of-archive blocks where the last member ends."""
        tail = os.pread(self._fd, 1024, offset)
        if len(tail) == 1024 and not tail.strip(b"\0"):
            return None
        return (f"{self.path}: the archive is truncated or damaged at byte {offset:,} (no valid "
                f"member header and no end-of-archive marker there); the {count} members before "
                "it convert")

    def _check_stream_end(self, tar: tarfile.TarFile, count: int) -> str | None:
        """The same for a compressed tar: after its end marker only zero padding may follow
        (tarfile also stops quietly at a damaged header, with the archive's data after it)."""
        assert tar.fileobj is not None
        while chunk := tar.fileobj.read(1 << 20):
            if chunk.strip(b"\0"):
                return (f"{self.path}: the archive is damaged after {count} members (no valid "
                        "member header where the next one should begin, yet data follows); "
                        "every member before the damage converts")
        return None

    def _cut(self, exc: BaseException, count: int) -> str:
        return (f"{self.path}: the archive is damaged or truncated after {count} members "
                f"({exc or type(exc).__name__}); every member before the damage converts")

    def _add(self, tar: tarfile.TarFile, info: tarfile.TarInfo, kind: str | None, limit: int,
             want: tuple[str, ...] | None) -> _Entry:
        problem = _member_problem(info)
        if problem is None and info.size > limit:
            problem = (f"cannot read file: {info.size:,} bytes, more than the {limit:,}-byte "
                       "limit of a raw file")
        if problem is None and kind is None and info.offset_data + info.size > self.size:
            problem = (f"truncated: the member's {info.size:,} bytes run past the end of the "
                       f"{self.size:,}-byte archive")
        offset = info.offset_data
        if problem is None and kind is not None:
            if want is not None and not info.name.lower().endswith(want):
                problem = "not spilled (not a file the reader reads)"
            else:
                offset, problem = self._spill_member(tar, info)
        entry = self.entries[info.name] = _Entry(offset, info.size, problem)
        return entry

    def _spill_member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> tuple[int, str | None]:
        """Copy one member of a compressed tar into the spill file: (its offset, problem)."""
        assert self._spill is not None
        offset = self._spill.seek(0, os.SEEK_END)
        free = shutil.disk_usage(self._spill_dir).free
        if free - info.size < SPILL_RESERVE:
            return offset, (f"not read: spilling its {info.size:,} bytes would leave less than "
                            f"{SPILL_RESERVE >> 30} GiB free on the spill disk")
        src = tar.extractfile(info)
        assert src is not None
        try:
            copied = 0
            while chunk := src.read(1 << 20):
                self._spill.write(chunk)
                copied += len(chunk)
        except (tarfile.TarError, EOFError, OSError) as exc:
            self._spill.truncate(offset)
            return offset, f"truncated: the archive ends inside this member ({exc})"
        if copied != info.size:
            self._spill.truncate(offset)
            return offset, (f"truncated: the archive ends inside this member ({copied:,} of "
                            f"{info.size:,} bytes)")
        self._spill.flush()
        return offset, None

    def close(self) -> None:
        """Free the descriptor (and a compressed tar's spill file, with its disk space)."""
        if self._spill is not None:
            self._spill.close()
        elif self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def read(self, member: str, limit: int) -> bytes:
        from .archive import member_ref

        where = SourceLocation(member_ref(self.path, member))
        entry = self.entries.get(member)
        if entry is None:
            raise ReadError(where, "the archive holds no such member (or it lies after the damage)")
        if entry.problem:
            raise ReadError(where, entry.problem)
        if entry.size > limit:
            raise ReadError(where, f"cannot read file: {entry.size:,} bytes, more than the "
                                   f"{limit:,}-byte limit of a raw file")
        try:
            data = os.pread(self._fd, entry.size, entry.offset)
        except OSError as exc:
            raise ReadError(where, f"cannot read the member: {exc.strerror}") from None
        if len(data) != entry.size:
            raise ReadError(where, f"truncated: the archive holds {len(data):,} of the member's "
                                   f"{entry.size:,} bytes (it changed since it was indexed)")
        return data
