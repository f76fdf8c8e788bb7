"""``s2i-train``: the training command line (subcommands added per concern)."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Pretrain and evaluate vision models on s2i datasets."""
