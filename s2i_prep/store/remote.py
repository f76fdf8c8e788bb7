"""Zarr outputs written straight into an object store (``s3://bucket/out.zarr``, ``memory://``).

An object store has no rename and no lock, but every PUT of one object is atomic. So the dataset
is built in place and the commit points are objects (docs/DISTRIBUTED.md, "Object stores"):

- the group is written at its final prefix ``out.zarr/``; each shard of ``s2i`` is ONE object
  (one PUT: never half-written), the columns are zarr chunks (one object each);
- ``out.zarr.partial/`` holds only the small objects of the build: ``s2i_manifest.json``
  (replaced by one PUT after each shard's objects are written, so it never claims a missing
  shard), ``s2i_run.json`` and ``s2i_owner.json`` (the token of the conversion writing it);
- the root ``out.zarr/zarr.json`` is written without attributes while building and is replaced,
  as the LAST write, by the finished one (attributes with ``s2i_layout_version``, consolidated
  metadata): a dataset is finished exactly when its root carries the layout version. Its bytes
  are produced by zarr itself, from the metadata documents, so they equal a local conversion's.

There is no lock: a second conversion into the same URL is not prevented. It is detected: each
commit first reads the owner token back and stops if another conversion has claimed the output.
``--overwrite`` deletes an existing finished dataset when the new conversion starts (there is no
rename to swap it at the end), and only a recognisable s2i dataset or partial output.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import time
import uuid
import warnings
from typing import Any

from ..errors import StoreError
from ..urls import Url, storage_options
from . import layout

OWNER = "s2i_owner.json"
#: What the ``.partial`` prefix of a remote output may hold.
_PARTIAL_NAMES = frozenset({layout.MANIFEST, layout.RUN_INFO, OWNER})


def _wrap(url: Url | str, action: str, exc: BaseException) -> StoreError:
    return StoreError(f"{url}: {action} failed: {type(exc).__name__}: {exc}")


class RemoteData:
    """The zarr group of a remote output: what :class:`~.zarr_store.ZarrBackend` writes through."""

    def __init__(self, url: Url) -> None:
        self.url = url

    @property
    def fs(self) -> Any:
        return self.url.fs

    def zarr_store(self, read_only: bool = False) -> Any:
        """A zarr store for the URL (zarr creates its own asynchronous filesystem instance)."""
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(str(self.url), storage_options=storage_options(self.url),
                                    read_only=read_only)

    def put(self, key: str, parts: list[memoryview]) -> None:
        """The object ``key`` below the group from ``parts`` (see :func:`put_object`)."""
        put_object(self.url.joinpath(key), parts)

    def truncate(self, name: str, keep: int) -> None:
        """Delete the chunk/shard objects of array ``name`` from index ``keep`` on."""
        base = self.url.key(name, "c")
        self.fs.invalidate_cache(base)  # zarr writes through its own filesystem instance
        try:
            entries = self.fs.ls(base, detail=False) if self.fs.exists(base) else []
        except FileNotFoundError:
            entries = []
        doomed = [e for e in entries
                  if not posixpath.basename(e.rstrip("/")).isdigit()
                  or int(posixpath.basename(e.rstrip("/"))) >= keep]
        if doomed:
            self.fs.rm(doomed, recursive=True)

    def write_finished_root(self, attrs: dict[str, Any]) -> None:
        """Replace the root ``zarr.json`` with the finished one: ``attrs`` plus consolidated
        metadata, built by zarr in memory from the group's metadata documents (so its bytes are
        exactly those of a local conversion), then written with one PUT, last of all."""
        import zarr
        from zarr.core.buffer import default_buffer_prototype
        from zarr.storage import MemoryStore

        fs, root = self.fs, self.url.path
        proto = default_buffer_prototype()
        docs = {}
        fs.invalidate_cache(root)  # zarr wrote them through its own filesystem instance
        for key in fs.find(root):
            rel = key[len(root):].lstrip("/")
            if rel == "zarr.json" or rel.endswith("/zarr.json"):
                docs[rel] = proto.buffer.from_bytes(fs.cat_file(key))
        mem = MemoryStore(docs)
        group = zarr.open_group(mem, mode="r+", zarr_format=3, use_consolidated=False)
        group.attrs.update(attrs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
            zarr.consolidate_metadata(mem, zarr_format=3)
        fs.pipe_file(self.url.key("zarr.json"), docs["zarr.json"].to_bytes())


#: Processes that opened a memory:// output (see :func:`put_object`).
_MEMORY_WRITERS: set[int] = set()


def put_object(url: Url, parts: list[memoryview]) -> None:
    """Write one object from ``parts`` with one PUT (atomic: readers see all of it or none).
    Usable from any process (a worker writing a shard). memory:// lives in one process, so a
    write from a process other than the one that opened the output would be lost: refused."""
    if url.protocol == "memory" and os.getpid() not in _MEMORY_WRITERS:
        raise StoreError(f"{url}: memory:// outputs live in the converting process; worker "
                         "processes cannot write them (convert with --workers 0)")
    try:
        url.fs.pipe_file(url.path, b"".join(parts))
    except Exception as exc:  # noqa: BLE001 - any backend's network or service error
        raise _wrap(url, "writing", exc) from None


def root_attrs(url: Url) -> dict[str, Any] | None:
    """The attributes of the zarr group at ``url`` (None: no readable root ``zarr.json``)."""
    try:
        meta = json.loads(url.fs.cat_file(url.key("zarr.json")))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    attrs = meta.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


def is_finished(url: Url) -> bool:
    """Whether ``url`` holds a finished s2i dataset (its root carries the layout version)."""
    attrs = root_attrs(url)
    return attrs is not None and layout.ATTR_VERSION in attrs


class RemoteStaging:
    """The writer's staging rules for a URL output (the module doc says which and why)."""

    def __init__(self, url: Url) -> None:
        if url.suffix.lower() != ".zarr":
            raise StoreError(f"{url}: only Zarr outputs (.zarr) can be written to an object "
                             "store; HDF5 needs a local file")
        self.path = url
        self.partial = url.with_name(url.name + layout.PARTIAL_SUFFIX)
        self.remote = RemoteData(url)
        self._token = ""

    # -- what is there ------------------------------------------------------------------------
    def _names(self, url: Url) -> list[str]:
        try:
            fs = url.fs
            fs.invalidate_cache(url.path)  # another process may have written since
            if not fs.exists(url.path):
                return []
            return sorted(posixpath.basename(e.rstrip("/")) for e in fs.ls(url.path, detail=False))
        except FileNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001
            raise _wrap(url, "listing", exc) from None

    def output_exists(self) -> bool:
        """A finished dataset, or objects that no partial output of ours explains."""
        if is_finished(self.path):
            return True
        return bool(self._names(self.path)) and not self.partial_exists()

    def partial_exists(self) -> bool:
        return bool(self._names(self.partial))

    def check_ours(self, what: str) -> None:
        """StoreError unless the output (``dataset``) or the partial output is s2i's own."""
        if what == "dataset":
            if is_finished(self.path):
                return
            names = self._names(self.path)
            raise StoreError(
                f"{self.path}: exists and is not an s2i dataset (it holds "
                f"{', '.join(map(repr, names[:3]))}{', ...' if len(names) > 3 else ''}); s2i "
                "deletes only its own datasets and partial outputs. Remove it yourself or "
                "choose another OUTPUT"
            )
        foreign = [n for n in self._names(self.partial) if n not in _PARTIAL_NAMES]
        data = self._names(self.path)
        if foreign or (data and root_attrs(self.path) is None):
            raise StoreError(
                f"{self.partial}: does not look like an s2i partial output (it holds "
                f"{', '.join(map(repr, (foreign or data)[:3]))}); s2i deletes only its own "
                "datasets and partial outputs. Remove it yourself or choose another OUTPUT"
            )

    # -- the build ----------------------------------------------------------------------------
    def acquire(self) -> None:
        """No lock exists on an object store; ownership is claimed when the build starts."""
        if self.path.protocol == "memory":
            _MEMORY_WRITERS.add(os.getpid())

    def release(self) -> None:
        pass

    def claim(self) -> None:
        """Write this conversion's owner token (checked before every commit)."""
        self._token = uuid.uuid4().hex
        self.write_json(OWNER, {"token": self._token, "pid": os.getpid(),
                                "host": socket.gethostname(), "started": time.time()})

    def check_claim(self) -> None:
        owner = self.read_json(OWNER)
        if owner.get("token") != self._token:
            raise StoreError(
                f"{self.path}: another conversion (pid {owner.get('pid')} on "
                f"{owner.get('host')}) has taken over this output; this one stops without "
                "committing. Object stores have no lock: run one conversion per OUTPUT"
            )

    def create_partial(self) -> None:
        pass  # prefixes need no creation

    def clear_output(self) -> None:
        """Delete the finished dataset being overwritten (no rename can replace it at the end)."""
        self._rm(self.path)

    def remove_partial(self) -> None:
        """Delete an unfinished build: its data objects and its ``.partial`` objects."""
        if not is_finished(self.path):
            self._rm(self.path)
        self._rm(self.partial)

    def _rm(self, url: Url) -> None:
        try:
            if url.fs.exists(url.path):
                url.fs.rm(url.path, recursive=True)
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise _wrap(url, "deleting", exc) from None

    def write_json(self, name: str, payload: dict[str, Any], indent: int | None = 1) -> None:
        data = json.dumps(payload, indent=indent, sort_keys=True).encode()
        try:
            self.partial.fs.pipe_file(self.partial.key(name), data)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(self.partial.joinpath(name), "writing", exc) from None

    def read_json(self, name: str) -> dict[str, Any]:
        try:
            value = json.loads(self.partial.fs.cat_file(self.partial.key(name)))
        except (FileNotFoundError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def read_manifest(self) -> dict[str, Any] | None:
        url = self.partial.joinpath(layout.MANIFEST)
        try:
            manifest = json.loads(self.partial.fs.cat_file(url.path))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StoreError(f"{url}: unreadable manifest ({exc}); start over with --overwrite") \
                from None
        if not isinstance(manifest, dict):
            raise StoreError(f"{url}: unreadable manifest (not a JSON object); start over with "
                             "--overwrite")
        return manifest

    def publish(self, built: Any, overwrite: bool) -> None:
        """The finished root was written in place by the backend: drop the build's objects."""
        self._rm(self.partial)
