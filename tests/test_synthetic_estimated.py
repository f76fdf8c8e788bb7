"""``s2i-prep synth`` for the estimated-pose formats: layouts, determinism, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2i_prep.cli import cli
from s2i_prep.synthetic import write_synthetic


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["openpose18", "coco17", "toyota13"])
def test_same_bytes_whatever_the_workers(tmp_path, fmt):
    a = write_synthetic(fmt, tmp_path / "a", 20, seed=7, frames=(10, 14), workers=0)
    write_synthetic(fmt, tmp_path / "b", 20, seed=7, frames=(10, 14), workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert len({s.name for s in a.samples}) == 20
    if fmt == "openpose18":
        assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
            "kinetics_train", "kinetics_train_label.json", "kinetics_val", "kinetics_val_label.json"]
        val = json.loads((tmp_path / "a" / "kinetics_val_label.json").read_text())
        assert len(val) == 5 and all(e["has_skeleton"] for e in val.values())
    if fmt == "coco17":
        assert [p.name for p in (tmp_path / "a").iterdir()] == ["coco17_2d.pkl"]


def test_cli_writes_toyota(tmp_path):
    res = CliRunner().invoke(cli, ["synth", "--format", "toyota13", "-n", "6", "--workers", "0",
                                   "--frames", "10:12", "--json", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["samples"] == 6 and info["files"] == 6
    names = sorted(p.stem for p in (tmp_path / "t").glob("*.json"))
    assert all("_p" in n and "_c0" in n for n in names)
