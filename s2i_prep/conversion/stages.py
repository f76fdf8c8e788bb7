"""The functions a conversion chains (reader, selection, encoder, store), swappable in tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..skeleton import RawSkeleton, Skeleton
from ..specs import JointSpec

if TYPE_CHECKING:
    from ..encoding import EncodeConfig
    from ..readers import Reader


@dataclass(frozen=True)
class Stages:
    """The functions ``convert`` chains. Defaults are the real modules; tests pass fakes.

    Everything here must be picklable by reference (module-level functions and classes),
    because workers receive it.
    """

    get_reader: Callable[..., Reader]
    select: Callable[[RawSkeleton, JointSpec], Skeleton]
    encode: Callable[[Skeleton, JointSpec, EncodeConfig], np.ndarray]
    stored_shape: Callable[[JointSpec, EncodeConfig], tuple[int, int, int, int]]
    column_layout: Callable[[JointSpec], list[dict[str, Any]]]
    pixel_mapping: Callable[[EncodeConfig], dict[str, Any]]
    new_stats: Callable[[int], Any]
    open_writer: Callable[..., Any]
    warm: Callable[[], None]

    @classmethod
    def default(cls) -> Stages:
        from .. import encoding, store
        from ..bodies import select_bodies
        from ..readers import get_reader

        return cls(
            get_reader=get_reader,
            select=select_bodies,
            encode=encoding.encode,
            stored_shape=encoding.stored_shape,
            column_layout=encoding.column_layout,
            pixel_mapping=encoding.pixel_mapping_params,
            new_stats=encoding.StreamStats,
            open_writer=store.open_writer,
            warm=warm_kernels,
        )


def warm_kernels() -> None:
    """Compile (or load from Numba's cache) every kernel module's ``warm()`` in this process.

    Called in the parent before workers fork, so they inherit compiled code instead of each
    compiling or racing on the on-disk cache.
    """
    import importlib
    import pkgutil

    from .. import kernels

    for mod in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{mod.name}")
        warm = getattr(module, "warm", None)
        if callable(warm):
            warm()
