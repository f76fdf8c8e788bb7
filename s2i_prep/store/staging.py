"""Output safety shared by both backends: exclusive lock, build-under-a-temporary-name, manifest.

A conversion into ``out.zarr`` holds ``fcntl.flock`` on ``out.zarr.lock`` for its whole life and
builds ``out.zarr.partial``; only a finished dataset is renamed to ``out.zarr``. After every shard
the writer replaces ``<partial>/s2i_manifest.json`` atomically (temp file + ``os.replace``) once
that shard's data are on disk, so the manifest never claims data that may be missing. A partial
output without a manifest (stopped before its first commit) holds nothing worth keeping.

``--overwrite`` and a fresh start delete only what is recognisably s2i's own (:func:`check_ours`),
so a mistyped OUTPUT never costs someone's folder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
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


def write_json_atomic(path: Path, payload: dict[str, Any], indent: int | None = 1) -> None:
    """Replace ``path`` with ``payload`` so that readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # json.dumps, not json.dump: only the one-shot form uses the C encoder (about 5x faster on
    # the run description's input list).
    text = json.dumps(payload, indent=indent, sort_keys=True)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifest(partial: Path) -> dict[str, Any] | None:
    """The manifest of a partial output; ``None`` when it has none yet (nothing committed);
    StoreError when it is unreadable (it is written atomically: only outside damage does that)."""
    mpath = partial / layout.MANIFEST
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"{mpath}: unreadable manifest ({exc}); start over with --overwrite"
        ) from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{mpath}: unreadable manifest (not a JSON object); start over with "
                         "--overwrite")
    return manifest


#: What a partial output may hold (the manifest, the run description, each backend's data,
#: and the temporary files of atomic writes).
_PARTIAL_NAMES = frozenset({layout.MANIFEST, layout.RUN_INFO, "data.zarr", "data.h5", "shards"})


def _is_s2i_dataset(path: Path) -> bool:
    """Whether ``path`` is a finished s2i dataset (Zarr group or HDF5 file with the layout tag)."""
    if path.is_dir() and not path.is_symlink():
        try:
            meta = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and layout.ATTR_VERSION in (meta.get("attributes") or {})
    if path.is_file() and not path.is_symlink():
        try:
            import h5py

            with h5py.File(path, "r") as fh:
                return layout.ATTR_VERSION in fh.attrs
        except Exception:  # noqa: BLE001 - anything h5py cannot open is not ours
            return False
    return False


def _is_s2i_partial(path: Path) -> bool:
    if not path.is_dir() or path.is_symlink():
        return False
    names = {p.name for p in path.iterdir()}
    return all(n in _PARTIAL_NAMES or (n.startswith(".") and n.endswith(".tmp")) for n in names)


def check_ours(path: Path, what: str) -> None:
    """StoreError unless ``path`` is an s2i dataset (``what="dataset"``) or partial output
    (``what="partial"``) that s2i may delete; says what was found instead."""
    if (_is_s2i_dataset if what == "dataset" else _is_s2i_partial)(path):
        return
    if path.is_symlink():
        found = "a symbolic link"
    elif path.is_dir():
        names = sorted(p.name for p in path.iterdir())
        found = (f"a folder with {len(names)} entries, e.g. {', '.join(map(repr, names[:3]))}"
                 if names else "an empty folder that is not an s2i dataset")
    else:
        found = "a file that is not an s2i dataset"
    raise StoreError(
        f"{path}: exists and is {found}; s2i deletes only its own datasets and partial outputs. "
        "Remove it yourself or choose another OUTPUT"
    )


def fault_point(name: str) -> None:
    """Test hook for stops at exact moments: with ``S2I_FAULT=name[@n]=SIGNAL`` (e.g.
    ``shard-data@2=KILL``) this process sends itself SIGNAL the n-th time (default: first) it
    reaches the named point. Unset in normal use; costs one environment lookup per call."""
    spec = os.environ.get("S2I_FAULT")
    if not spec:
        return
    point, _, sig = spec.partition("=")
    point, _, nth = point.partition("@")
    if point != name:
        return
    count = _FAULT_HITS[name] = _FAULT_HITS.get(name, 0) + 1
    if count == int(nth or 1):
        os.kill(os.getpid(), signal.Signals["SIG" + (sig or "KILL")])


_FAULT_HITS: dict[str, int] = {}


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


class LocalStaging:
    """The writer's staging rules for a local output (see the module doc); an object-store
    output has the same methods (:class:`~s2i_prep.store.remote.RemoteStaging`)."""

    remote = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = partial_path(path)
        self._lock = OutputLock(path)

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def output_exists(self) -> bool:
        return self.path.exists()

    def partial_exists(self) -> bool:
        return self.partial.exists()

    def check_ours(self, what: str) -> None:
        check_ours(self.path if what == "dataset" else self.partial, what)

    def claim(self) -> None:
        pass  # the flock is the claim

    def check_claim(self) -> None:
        pass

    def create_partial(self) -> None:
        self.partial.mkdir(parents=True)

    def clear_output(self) -> None:
        pass  # replaced by the rename in publish()

    def remove_partial(self) -> None:
        remove(self.partial)

    def write_json(self, name: str, payload: dict[str, Any], indent: int | None = 1) -> None:
        write_json_atomic(self.partial / name, payload, indent=indent)

    def read_json(self, name: str) -> dict[str, Any]:
        try:
            value = json.loads((self.partial / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def read_manifest(self) -> dict[str, Any] | None:
        return read_manifest(self.partial)

    def publish(self, built: Path, overwrite: bool) -> None:
        if self.path.exists():
            check_ours(self.path, "dataset")
        publish(built, self.path, overwrite)
        remove(self.partial)
