"""The CLI's own surface: --help everywhere, --version, formats, dump, and the compile cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from s2i_prep import __version__
from s2i_prep.cli import _COMMANDS, cli, main
from tests.ntu_files import BASE_ID, compose, skeleton_text, track

REPO = Path(__file__).resolve().parents[1]


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and command in result.output


def test_help_does_not_import_numba():
    code = ("import sys; from s2i_prep.cli import main; main(['--help']); "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr


def test_formats_lists_the_shipped_specs():
    result = CliRunner().invoke(cli, ["formats", "--json"])
    rows = {r["format"]: r for r in json.loads(result.output)}
    assert {"ntu25", "pku25", "ucla20"} <= set(rows)
    assert rows["ntu25"]["joints"] == 25 and "ntu60-xsub" in rows["ntu25"]["splits"]


def _two_body_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    frames = compose(30, track(rng, 25, start=5), track(rng, 30, body_id=BASE_ID + 1, move=0.05))
    path.write_bytes(skeleton_text(frames, crlf=True))
    return path


def test_dump_raw_and_selected(tmp_path):
    src = _two_body_file(tmp_path / "S001C001P001R001A050.skeleton")
    runner = CliRunner()
    r = runner.invoke(cli, ["dump", "--format", "ntu25", str(src), "-o", str(tmp_path / "raw.npz")])
    assert r.exit_code == 0, r.output
    raw = np.load(tmp_path / "raw.npz")
    assert raw["joints"].shape == (2, 30, 25, 3) and raw["joints"].dtype == np.float32
    # order of first appearance: the second track starts at frame 0, the first at frame 5
    assert raw["body_ids"].tolist() == [str(BASE_ID + 1), str(BASE_ID)]
    assert np.isnan(raw["joints"][1, :5]).all() and not np.isnan(raw["joints"][1, 5:]).any()
    for key in ("depth", "color", "orientation", "tracking_state", "lean", "hand_left_state",
                "body_tracking_state"):
        assert key in raw.files
    r = runner.invoke(cli, ["dump", "--format", "ntu25", str(src), "-o", str(tmp_path / "sel.npz"),
                            "--stage", "selected"])
    assert r.exit_code == 0, r.output
    sel = np.load(tmp_path / "sel.npz")
    assert sel["joints"].shape[0] == 2 and sel["joints"].shape[2:] == (25, 3)
    assert sel["frame_index"].tolist() == list(range(30))


def test_dump_bad_file_exits_1_with_one_located_line(tmp_path, capsys):
    bad = tmp_path / "S001C001P001R001A001.skeleton"
    bad.write_bytes(b"3\n1\n72057594037931101 0 1 1 1 1 0 0.02 0.05 2\n25\n0.1 0.2\n")
    code = main(["dump", "--format", "ntu25", str(bad), "-o", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert err[0] == (f"error: {bad}:5:8: expected 12 fields on a joint line, found 2 "
                      "(frame 0, body 0)")
    assert not (tmp_path / "x.npz").exists()


def test_dump_needs_exactly_one_of_format_and_spec(tmp_path):
    src = _two_body_file(tmp_path / "S001C001P001R001A050.skeleton")
    r = CliRunner().invoke(cli, ["dump", str(src), "-o", str(tmp_path / "x.npz")])
    assert r.exit_code == 2


def test_compiled_parser_is_cached_for_the_next_process(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    code = "from s2i_prep.kernels.parse_ntu import warm; warm()"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
    index = list((tmp_path / "cache").rglob("parse_ntu.parse_ntu-*.nbi"))
    assert index, "no numba cache index written"
    # a second process loads from the cache: the index is not rewritten
    before = index[0].stat().st_mtime_ns
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
    assert index[0].stat().st_mtime_ns == before


def test_public_api_names_resolve_and_import_lazily():
    code = ("import sys, s2i_prep; light = 'numba' not in sys.modules; "
            "[getattr(s2i_prep, n) for n in s2i_prep.__all__]; print(light, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_convert_stream_names_are_the_encoders():
    # the CLI keeps its own copy so that --help does not import the encoder (and numba)
    from s2i_prep.cli import convert
    from s2i_prep.encoding import STREAMS

    assert convert._STREAMS == STREAMS
