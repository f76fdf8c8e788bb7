"""The package boundary: ``s2i_prep`` never imports torch; ``s2i_train`` reuses its contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_no_s2i_prep_module_imports_torch() -> None:
    code = (
        "import importlib, pkgutil, sys, s2i_prep\n"
        "for m in pkgutil.walk_packages(s2i_prep.__path__, 's2i_prep.'):\n"
        "    if not m.name.endswith('__main__'):  # would run the command line\n"
        "        importlib.import_module(m.name)\n"
        "print(len(sys.modules), 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False", out.stdout


def test_s2i_train_uses_the_converters_names_not_copies() -> None:
    from s2i_prep.encoding import PIXEL_MAPPING
    from s2i_prep.store import layout
    from s2i_train.data import _sources
    from s2i_train.transforms import check_pixel_mapping

    assert _sources.SUBSETS is layout.SPLIT_PARTS
    check_pixel_mapping({"name": PIXEL_MAPPING})  # the converter's mapping is accepted as is
