"""``s2i-prep verify``: check a converted dataset against the on-disk contract (docs/FORMAT.md)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.pass_context
def verify(ctx: click.Context, output: Path) -> None:
    """Check dataset OUTPUT: layout, arrays, ids, splits, labels, every shard readable and finite.

    Prints one line per problem and exits with status 1 when there is any.
    """
    from ..store import verify_dataset

    problems = verify_dataset(output)
    for problem in problems:
        click.echo(problem if problem.startswith(str(output)) else f"{output}: {problem}")
    if problems:
        ctx.exit(1)
    click.echo(f"{output}: ok")
