"""Shared fixtures. Real third-party files are read from ../shared/realdata and never copied here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REALDATA = Path(os.environ.get("S2I_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Root of the shared real-data fixtures; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real-data fixtures not found at {REALDATA} (set S2I_REALDATA to point elsewhere)")
    return REALDATA


# --------------------------------------------------------------------- object stores (S3 via moto)


def _objects(fs: Any, root: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {k[len(root):].lstrip("/"): fs.cat_file(k) for k in fs.find(root)}


def _upload(fs: Any, raw: Path, prefix: str) -> None:
    for path in sorted(raw.iterdir()):
        fs.pipe_file(f"{prefix}/{path.name}", path.read_bytes())
    fs.pipe_file(f"{prefix}/README.txt", b"not a skeleton file")


@pytest.fixture(scope="module")
def s3(raw: Path) -> Iterator[dict[str, Any]]:
    """A moto S3 server on a free localhost port with one bucket holding the raw files (those of
    the requesting module's ``raw`` fixture, under ``raw/``)."""
    import fsspec

    from s2i_prep import urls

    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install s3fs)")
    server_mod = pytest.importorskip("moto.server",
                                     reason="moto's server is not installed (pip install "
                                     "'moto[server]')")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    urls.set_storage_options("s3", options)
    fs = fsspec.filesystem("s3", **options)
    bucket = f"s2i-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    _upload(fs, raw, f"{bucket}/raw")
    try:
        yield {"fs": fs, "bucket": bucket, "options": options}
    finally:
        urls._OPTIONS.pop("s3", None)
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
