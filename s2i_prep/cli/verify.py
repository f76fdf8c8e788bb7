"""``s2i-prep verify``: check a converted dataset against the on-disk contract (docs/FORMAT.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import PathOrUrl, storage_options_option, use_storage_options


@click.command()
@click.argument("output", type=PathOrUrl())
@storage_options_option
@click.pass_context
def verify(ctx: click.Context, output: Path, storage_options: dict[str, Any]) -> None:
    """Check dataset OUTPUT: layout, arrays, ids, splits, labels, every shard readable and finite.

    Prints one line per problem and exits with status 1 when there is any.
    """
    from ..store import verify_dataset

    use_storage_options(storage_options, output)

    problems = verify_dataset(output)
    for problem in problems:
        click.echo(problem if problem.startswith(str(output)) else f"{output}: {problem}")
    if problems:
        ctx.exit(1)
    click.echo(f"{output}: ok")
