"""The single njit policy of the project, and the cache-directory fallback.

``cache=True`` so a second process pays no compile time; ``nogil=True`` so threads can share work;
no ``fastmath``, because bit-exact parity with the reference pipelines is a contract.
Numba fails at *import* when it has nowhere to write its cache (read-only site-packages and an
unwritable home), so when neither ``NUMBA_CACHE_DIR`` is set nor the package directory is
writable, a per-user directory under the system temp dir is used.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"s2i-numba-{os.getuid()}")

import numba  # noqa: E402

__all__ = ["jit", "numba"]


def jit(*args, **kwargs):
    """``numba.njit`` with the project policy (cache, nogil, no fastmath) unless overridden."""
    kwargs.setdefault("cache", True)
    kwargs.setdefault("nogil", True)
    kwargs.setdefault("fastmath", False)
    return numba.njit(*args, **kwargs)
