"""Reading raw input files safely, and naming the text problems every text grammar shares.

Every reader (and ``s2i-prep dump``) reads its files through :func:`read_bytes`, so a path that
is not a plain file is refused with a reason instead of hanging or exhausting memory: a FIFO
would block ``open()`` until a writer appears, ``/dev/zero`` never ends, a symlink loop or a
dangling link is an ``OSError`` deep in a worker. The conversion's planning already leaves
non-regular paths out; this is the second line of defence for every other caller. A member
reference ``archive.zip:member`` is read from the archive with the same bounds
(:mod:`s2i_prep.readers.archive`), an fsspec URL (``s3://bucket/raw/x.skeleton``) with one ranged
read of at most the limit (:mod:`s2i_prep.urls`).

:func:`encoding_problem` and :func:`line_ending_problem` turn "found 49297 fields" or "expected a
number, found '3.306044'" into the actual cause (UTF-16 text, CR-only or stray CR line ends).
They are only called on the error path, except the cheap byte-order-mark check.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import ReadError, S2IError, SourceLocation
from ..urls import Url, is_url, location
from . import archive

__all__ = ["MAX_FILE_BYTES", "read_bytes", "encoding_problem", "line_ending_problem"]

#: Largest raw file any reader accepts (1 GiB). The largest real inputs are PKU-MMD recordings
#: of a few tens of MB; anything far beyond is not a skeleton file and would only exhaust memory.
MAX_FILE_BYTES = 1 << 30

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _refuse(path: str, reason: str) -> ReadError:
    return ReadError(SourceLocation(path), f"cannot read file: {reason}")


def read_bytes(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` if it is (or links to) a regular file of at most ``limit`` bytes.

    Raises:
        ReadError: with the reason a path was refused (not a regular file and what it is, a
            dangling link, a link loop, too large, permission denied, ...).
    """
    name = str(path)
    if ":" in name and (ref := archive.split_member(name)) is not None:
        return archive.read_member(ref[0], ref[1], limit)  # ``archive.zip:member``: same bounds
    if "://" in name and is_url(name):
        return _read_object(location(name), limit)  # type: ignore[arg-type]
    try:
        info = os.stat(name)  # follows symlinks: a link to a regular file is fine
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(name, "symbolic link loop") from None
        if exc.errno == errno.ENOENT and os.path.islink(name):
            raise _refuse(name, f"dangling symbolic link (to {os.readlink(name)!r})") from None
        raise _refuse(name, exc.strerror or type(exc).__name__) from None
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(name, f"{_kind(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise _refuse(name, f"{info.st_size:,} bytes, more than the {limit:,}-byte limit of a raw file")
    try:
        # O_NONBLOCK: should the path have been swapped for a FIFO since stat(), open() does not
        # wait for a writer; fstat() below then refuses it.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _refuse(name, exc.strerror or type(exc).__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(name, f"{_kind(info.st_mode)}, not a regular file")
        chunks = []
        left = limit + 1  # one byte more than allowed tells a file that grew past the limit
        while left > 0:
            chunk = os.read(fd, min(left, max(info.st_size + 1, 1 << 16)))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise _refuse(name, exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > limit:
        raise _refuse(name, f"more than the {limit:,}-byte limit of a raw file (it is growing)")
    return data


def _read_object(url: Url, limit: int) -> bytes:
    """The bytes of the object at ``url``, with one ranged read of at most ``limit + 1`` bytes.

    Every failure (no such object, permission, network, a missing fsspec implementation) is a
    ReadError naming the URL: one unreadable object is one skipped input, never the run.
    """
    name = str(url)
    try:
        data = url.fs.cat_file(url.path, start=0, end=limit + 1)
    except S2IError as exc:
        raise _refuse(name, str(exc)) from None
    except FileNotFoundError:
        raise _refuse(name, "no such object (deleted since the input was listed?)") from None
    except IsADirectoryError:
        raise _refuse(name, "a directory (prefix), not an object") from None
    except PermissionError as exc:
        raise _refuse(name, f"permission denied ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - network and service errors of any fsspec backend
        raise _refuse(name, f"{type(exc).__name__}: {exc}") from None
    if len(data) > limit:
        raise _refuse(name, f"more than the {limit:,}-byte limit of a raw file")
    return bytes(data)


#: Byte-order marks of encodings no skeleton grammar uses, longest first.
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)


def encoding_problem(data: bytes) -> str | None:
    """Why ``data`` is not ASCII/UTF-8 text, judged from its start; ``None`` if it may be.

    Looks for a UTF-16/32 byte-order mark, then for NUL bytes in the first 4 KiB (UTF-16 without
    a mark, or a binary file). Costs a few microseconds, so readers call it before parsing.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            return (f"the file is {name} text (byte-order mark {bom.hex(' ').upper()}); "
                    "save it as ASCII or UTF-8")
    head = data[:4096]
    nul = head.find(b"\x00")
    if nul >= 0:
        guess = "UTF-16 text without a byte-order mark" if head.count(b"\x00") * 4 >= len(head) \
            else "a binary file"
        return f"the file holds NUL bytes (byte {nul}): {guess}, not ASCII or UTF-8 text"
    return None


def line_ending_problem(data: bytes, offset: int) -> tuple[int, str] | None:
    """``(byte offset, message)`` of the line-ending fault that explains a parse error at byte
    ``offset``, or ``None``.

    CR-only line ends (classic Mac OS) make a whole file one line; a stray CR inside a line
    glues or splits tokens. Both are named (at the CR) instead of the token they garbled.
    """
    if b"\n" not in data and b"\r" in data.rstrip(b"\r"):
        return data.index(b"\r"), ("the file ends its lines with CR only (classic Mac OS); lines "
                                   "must end in LF or CRLF")
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    end = len(data) if end < 0 else end
    cr = data.find(b"\r", start, end)
    if 0 <= cr < end - 1:
        return cr, "stray carriage return (CR) inside a line; lines must end in LF or CRLF"
    return None
