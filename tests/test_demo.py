"""The README's set-up commands: the demo works end to end and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import zarr
from click.testing import CliRunner

from s2i_prep.cli import cli

REPO = Path(__file__).resolve().parents[1]


def _readme_command(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.+?)\n```", text, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert _readme_command("tests") in ci


def test_readme_demo_command_runs(tmp_path):
    command = _readme_command("demo")
    assert command.endswith("s2i-prep demo s2i-demo")
    out = tmp_path / "s2i-demo"
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", str(out), "--samples", "40"])
    assert result.exit_code == 0, result.output
    g = zarr.open_group(str(out / "ntu.zarr"), mode="r")
    assert g["s2i"].shape[0] >= 35 and (out / "preview.png").stat().st_size > 1000
    # again with fewer samples: --overwrite starts from an empty raw folder
    result = runner.invoke(cli, ["demo", str(out), "--samples", "20", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "raw").glob("*.skeleton"))) == 20
    assert zarr.open_group(str(out / "ntu.zarr"), mode="r")["s2i"].shape[0] <= 20
