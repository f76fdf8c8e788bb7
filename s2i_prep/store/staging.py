"""Output safety shared by both backends: exclusive lock, build-under-a-temporary-name, manifest.

A conversion into ``out.zarr`` holds ``fcntl.flock`` on ``out.zarr.lock`` for its whole life and
builds ``out.zarr.partial``; only a finished dataset is renamed to ``out.zarr``. After every shard
the writer replaces ``<partial>/s2i_manifest.json`` atomically (temp file + ``os.replace``) once
that shard's data are on disk, so the manifest never claims data that may be missing.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import StoreError
from . import layout


def partial_path(path: Path) -> Path:
    """Where ``path`` is built until it is complete."""
    return path.with_name(path.name + layout.PARTIAL_SUFFIX)


def lock_path(path: Path) -> Path:
    """The lock file guarding conversions into ``path``."""
    return path.with_name(path.name + layout.LOCK_SUFFIX)


class OutputLock:
    """Non-blocking exclusive ``flock`` on ``<path>.lock``; the file holds the owner's pid."""

    def __init__(self, path: Path) -> None:
        self.path = lock_path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise StoreError(f"{self.path}: cannot lock: {exc.strerror}") from None
                raise StoreError(
                    f"{self.path.with_suffix('')}: a conversion into this output is already running"
                    f" (pid {self._holder()}, lock file {self.path}); wait for it to finish"
                ) from None
            # The previous holder may have unlinked the file between our open and flock: then we
            # hold a lock nobody else can see, so start again on the current file.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Replace ``path`` with ``payload`` so that readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifest(partial: Path) -> dict[str, Any]:
    """The manifest of a partial output, or StoreError when it is missing or unreadable."""
    mpath = partial / layout.MANIFEST
    try:
        return json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(
            f"{partial}: no {layout.MANIFEST}; this partial output cannot be resumed, "
            f"start over with --overwrite"
        ) from None
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"{mpath}: unreadable manifest ({exc}); start over with --overwrite"
        ) from None


def remove(path: Path) -> None:
    """Delete a file or a directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def publish(built: Path, path: Path, overwrite: bool) -> None:
    """Move the finished ``built`` to ``path``; an existing ``path`` is replaced only if allowed."""
    if path.exists():
        if not overwrite:
            raise StoreError(
                f"{path}: output appeared during the conversion; refusing to replace it"
            )
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(built, path)
        remove(old)
    else:
        os.replace(built, path)
