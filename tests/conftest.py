"""Shared fixtures. Real third-party files are read from ../shared/realdata and never copied here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REALDATA = Path(os.environ.get("S2I_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Root of the shared real-data fixtures; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real-data fixtures not found at {REALDATA} (set S2I_REALDATA to point elsewhere)")
    return REALDATA
