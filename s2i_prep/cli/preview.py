"""``s2i-prep preview``: one stored sample as a PNG, to see what the model will be fed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import PathOrUrl, storage_options_option, use_storage_options


@click.command()
@click.argument("dataset", type=PathOrUrl(exists=True))
@storage_options_option
@click.option(
    "--sample",
    "sample_id",
    metavar="ID",
    help="Sample id (e.g. S001C001P001R001A001) [default: the first sample].",
)
@click.option("--index", type=click.IntRange(min=0), help="Sample by position instead of by id.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="PNG file to write.",
)
@click.option(
    "--scale",
    default=4,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Pixels per stored value of a compact grid.",
)
def preview(
    dataset: Path, sample_id: str | None, index: int | None, output: Path, scale: int,
    storage_options: dict[str, Any],
) -> None:
    """Render one sample of DATASET (every stream, part and person boundaries marked) to a PNG.
    DATASET may be the URL of a Zarr dataset (s3://...)."""
    use_storage_options(storage_options, dataset)
    if sample_id is not None and index is not None:
        raise click.UsageError("give either --sample or --index, not both")
    from ..encoding import EncodeConfig
    from ..errors import S2IError
    from ..previews import render_preview
    from ..specs import parse_spec_text
    from ..store import open_dataset

    with open_dataset(dataset) as ds:
        ids = ds.column("sample_id")
        if sample_id is not None:
            found = (ids == sample_id).nonzero()[0]
            if not len(found):
                near = [str(s) for s in ids[:3]]
                raise S2IError(
                    f"{dataset}: no sample {sample_id!r} ({len(ids)} samples, e.g. {', '.join(near)})"
                )
            index = int(found[0])
        index = index or 0
        if index >= len(ids):
            raise S2IError(f"{dataset}: index {index} is beyond the last sample ({len(ids) - 1})")
        sample = ds.sample(index)
        encoding = ds.attrs["encoding"]
        spec_text = ds.attrs["spec"]
    # The dataset carries its own spec; validate it like any other.
    spec = parse_spec_text(spec_text, f"{dataset} (stored spec)")
    image = render_preview(
        sample,
        spec,
        EncodeConfig.from_dict(encoding),
        encoding["pixel_mapping"],
        scale=scale,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    image.save(output)
    click.echo(
        f"{ids[index]} (index {index}) -> {output} ({image.width}x{image.height})",
        err=True,
    )
