"""``s2i-prep inspect``: describe a converted dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import PathOrUrl, storage_options_option, use_storage_options


@click.command()
@click.argument("output", type=PathOrUrl())
@storage_options_option
@click.option("--json", "as_json", is_flag=True, help="Print the full description as JSON.")
def inspect(output: Path, as_json: bool, storage_options: dict[str, Any]) -> None:
    """Describe dataset OUTPUT (.zarr or .h5): samples, classes, splits, encoding, skipped files."""
    import json

    from ..store import inspect_dataset

    use_storage_options(storage_options, output)

    info = inspect_dataset(output)
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    storage = info["storage"] or {}
    enc = info["encoding"] or {}
    classes = info["classes"]
    click.echo(
        f"{info['path']}  ({info['backend']}, layout v{info['layout_version']}, "
        f"s2i {info['s2i_version']})"
    )
    click.echo(
        f"samples   {info['num_samples']}  x  {tuple(info['sample_shape'])} {info['dtype']}"
        f"  (streams: {', '.join(info['streams'] or [])})"
    )
    click.echo(
        f"storage   codec {storage.get('codec')}, {storage.get('shard_size')} samples/shard, "
        f"{info['bytes_on_disk'] / 1e6:.1f} MB on disk"
    )
    click.echo(
        "encoding  "
        + ", ".join(
            f"{k}={v.get('name') if isinstance(v, dict) else v}"
            for k, v in enc.items()
            if k != "streams"
        )
    )
    sizes = sorted(classes.values())
    click.echo(
        f"classes   {len(classes)} present of {info['class_count']}"
        + (f", {sizes[0]}..{sizes[-1]} samples per class" if sizes else "")
    )
    for name, parts in info["splits"].items():
        source = info["split_sources"].get(name, "rule")
        origin = "" if source == "rule" else f"  [{source}]"
        click.echo(f"split     {name}: train {parts['train']}, test {parts['test']}{origin}")
    if info["metadata_fields"]:
        click.echo(f"fields    {', '.join(info['metadata_fields'])}")
    skipped = info["skipped"]
    click.echo(f"skipped   {len(skipped)} input file(s)")
    for row in skipped[:10]:
        click.echo(f"  {row.get('path')}: {row.get('reason')}")
    if len(skipped) > 10:
        click.echo(f"  ... {len(skipped) - 10} more (see --json)")
