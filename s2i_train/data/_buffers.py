"""Batch buffers recycled once nothing references them: fresh memory is expensive.

On the dev VM, writing a batch into freshly allocated memory costs about 4x writing it into
memory touched before (page faults: 88-109 ms vs 22 ms for a 115 MB image batch), more than
reading it. Buffers handed out as tensors stay referenced by those tensors (``torch.from_numpy``
holds the array); a buffer whose only reference is this pool is free, so reuse is exact: a batch
that the training loop still holds, or any view of it, is never overwritten. Per process and
thread-safe; DataLoader workers use shared memory instead (the main process holds their batches).
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import torch

#: Buffers kept per process, and their total bytes.
MAX_BUFFERS = 12
MAX_BYTES = 2**30

_lock = threading.Lock()
_buffers: list[np.ndarray] = []


def _free(k: int) -> bool:
    """Whether ``_buffers[k]`` is referenced by nothing but the pool (the list and the call's
    argument are the two references ``getrefcount`` sees)."""
    return sys.getrefcount(_buffers[k]) == 2


def take(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor of ``shape``/``dtype`` on a recycled buffer when one is free."""
    nbytes = torch.empty((), dtype=dtype).element_size() * int(np.prod(shape))
    with _lock:
        hit = next(
            (k for k in range(len(_buffers)) if _buffers[k].nbytes == nbytes and _free(k)), None
        )
        if hit is not None:
            found = _buffers[hit]
        else:
            found = np.empty(nbytes, np.uint8)
            _admit(found)
    return torch.from_numpy(found).view(dtype).view(shape)


def _admit(buf: np.ndarray) -> None:
    """Keep ``buf`` for reuse, evicting free buffers to stay within the limits."""
    for k in reversed(range(len(_buffers))):
        total = sum(b.nbytes for b in _buffers) + buf.nbytes
        if len(_buffers) < MAX_BUFFERS and total <= MAX_BYTES:
            break
        if _free(k):
            del _buffers[k]
    total = sum(b.nbytes for b in _buffers) + buf.nbytes
    if len(_buffers) < MAX_BUFFERS and total <= MAX_BYTES:
        _buffers.append(buf)


def clear() -> None:
    """Forget every buffer (the ones in use stay alive through their tensors)."""
    with _lock:
        _buffers.clear()
