"""The loader benchmark's --quick mode runs end to end (so the script cannot rot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_loader_quick_prints_a_json_summary(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_loader.py",
            "--quick",
            "--workdir",
            str(tmp_path),
        ],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rates"]["compact.zarr:shard:float32"]["runs"]["0 workers"]["wall"] > 0
    assert result["targets"]["compact_per_worker_20000"]["cpu"] > 0
    assert {"image_per_worker_4000", "memory_100000"} <= set(result["targets"])
    assert result["transforms"]["cpu:224"] > 0
