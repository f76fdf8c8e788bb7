"""Options shared by several commands, defined once."""

from __future__ import annotations

import json
import os
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


class PathOrUrl(click.ParamType):
    """A local path (``file://`` URLs included) or an fsspec URL such as ``s3://bucket/raw``
    (a :class:`~s2i_prep.urls.Url`); ``exists`` checks local paths only (a URL is listed later,
    with its credentials)."""

    name = "path_or_url"

    def __init__(self, exists: bool = False) -> None:
        self.exists = exists

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..urls import location

        found = location(value)
        if self.exists and isinstance(found, Path) and not os.path.lexists(found):
            self.fail(f"Path {str(found)!r} does not exist.", param, ctx)
        return found


def _parse_storage_options(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, found {item!r}", ctx, param)
        try:
            options[key] = json.loads(text)  # anon=true, retries=5; anything else stays text
        except ValueError:
            options[key] = text
    return options


def storage_options_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--storage-option KEY=VALUE`` (repeatable): options of the fsspec filesystem of URL
    arguments, e.g. ``endpoint_url=http://minio:9000`` or ``anon=true``."""
    return click.option(
        "--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
        callback=_parse_storage_options,
        help="Option of the filesystem of s3://, gs://, ... arguments (repeatable), e.g. "
        "endpoint_url=http://host:9000 or anon=true; credentials are best left to the "
        "environment (docs/DISTRIBUTED.md). Never recorded in the dataset.",
    )(command)


def use_storage_options(options: dict[str, Any], *locations: Any) -> None:
    """Apply ``--storage-option`` to the protocols of the URL arguments (this process and the
    workers it forks)."""
    from ..urls import Url, set_storage_options

    for loc in locations:
        if options and isinstance(loc, Url):
            set_storage_options(loc.protocol, options)
