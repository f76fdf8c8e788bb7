"""``s2i-prep synth``: write a synthetic raw dataset to try the pipeline without the real data."""

from __future__ import annotations

from pathlib import Path

import click


def _frames(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        lo, hi = (int(v) for v in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"expected MIN:MAX such as 40:150, found {value!r}") from None
    return lo, hi


@click.command()
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["ntu25", "pku25", "ucla20", "openpose18", "coco17", "toyota13"]),
    help="Grammar and layout to imitate.",
)
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--samples",
    "-n",
    required=True,
    type=click.IntRange(min=1),
    help="Samples to write (PKU-MMD: action clips over all views).",
)
@click.option(
    "--classes",
    type=click.IntRange(min=1),
    default=None,
    help="Use the first K classes of the catalogue [default: all the dataset can hold].",
)
@click.option(
    "--subjects",
    type=click.IntRange(min=1),
    default=None,
    help="Performers [default: 40 NTU, 20 PKU-MMD phase 1, 13 phase 2, 10 NW-UCLA].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Same seed, same bytes.",
)
@click.option(
    "--frames",
    callback=_frames,
    default=None,
    metavar="MIN:MAX",
    help="Frames per sample (PKU-MMD: per action) [default: 40:150 NTU, 40:120 PKU, 20:80 UCLA].",
)
@click.option(
    "--line-endings",
    type=click.Choice(["lf", "crlf", "mixed"]),
    default="lf",
    show_default=True,
    help="mixed: each file draws LF or CRLF.",
)
@click.option(
    "--noise/--no-noise",
    default=True,
    show_default=True,
    help="Sensor jitter, dropouts, empty frames and extra bodies, or clean data.",
)
@click.option(
    "--phase",
    type=click.Choice(["1", "2"]),
    default="1",
    show_default=True,
    help="PKU-MMD naming: phase 1 (0002-L) or phase 2 (A10N08-L).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes (0 = in-process) [default: the usable cores]; output does not depend on it.",
)
@click.option("--overwrite", is_flag=True, help="Write into a non-empty OUT_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def synth(
    fmt: str,
    out_dir: Path,
    samples: int,
    classes: int | None,
    subjects: int | None,
    seed: int,
    frames: tuple[int, int] | None,
    line_endings: str,
    noise: bool,
    phase: str,
    workers: int | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write SAMPLES synthetic raw files to OUT_DIR in the real dataset's grammar and layout."""
    import json

    from ..parallel import cap_threads, default_workers

    cap_threads()
    from ..synthetic import write_synthetic

    try:
        summary = write_synthetic(
            fmt,
            out_dir,
            samples,
            workers=default_workers() if workers is None else workers,
            overwrite=overwrite,
            classes=classes,
            subjects=subjects,
            seed=seed,
            frames=frames,
            line_endings=line_endings,
            noise=noise,
            phase=int(phase),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    info = summary.to_dict()
    if as_json:
        click.echo(json.dumps(info))
        return
    feats = ", ".join(f"{k} {v}" for k, v in info["features"].items()) or "none"
    click.echo(
        f"wrote {info['samples']} {fmt} samples of {info['classes']} classes "
        f"in {info['files']} files "
        f"({info['bytes'] / 1e6:.1f} MB, {info['seconds']:.1f} s) to {out_dir}"
    )
    click.echo(f"realism features: {feats}")
