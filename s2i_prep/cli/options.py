"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def format_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--format NAME`` / ``--spec FILE`` (exactly one; resolve with :func:`format_or_spec`)."""
    command = click.option(
        "--spec",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Your own joint spec (YAML) instead of --format.",
    )(command)
    return click.option(
        "-f", "--format", "fmt", metavar="NAME",
        help="Built-in format: ntu25, pku25, ucla20, openpose18, coco17, toyota13, toyota13_2d (`s2i-prep formats`).",
    )(command)


def format_or_spec(fmt: str | None, spec: Path | None) -> str:
    """The format name or spec path to load; a usage error unless exactly one was given."""
    if fmt and spec:
        raise click.UsageError("give either --format or --spec, not both")
    if not fmt and not spec:
        raise click.UsageError("missing --format NAME (see `s2i-prep formats`) or --spec FILE.yaml")
    return str(spec) if spec else str(fmt)
