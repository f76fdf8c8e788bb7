"""``s2i-prep demo``: the whole product on built-in example data, in one command."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

#: Written into the demo's folder: marks it as the demo's own (a rerun may replace it) and keeps
#: it out of git wherever it is created.
MARKER = ".s2i-demo"
GITIGNORE = "# written by `s2i-prep demo`: generated files, not for version control\n*\n"


@click.command()
@click.argument("out_dir", default="s2i-demo", type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "--samples", default=300, show_default=True, type=click.IntRange(min=1),
              help="Synthetic NTU recordings to generate.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic data.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier demo in OUT_DIR (a rerun does this by itself).")
@click.pass_context
def demo(ctx: click.Context, out_dir: Path, samples: int, seed: int, overwrite: bool) -> None:
    """Generate a small synthetic NTU RGB+D dataset in OUT_DIR/raw, convert it to OUT_DIR/ntu.zarr,
    describe it, and render one sample to OUT_DIR/preview.png.

    The same steps by hand: `s2i-prep synth`, `s2i-prep convert`, `s2i-prep inspect`,
    `s2i-prep preview`. Running the demo again into the same OUT_DIR starts it afresh; a folder
    the demo did not create is never touched.
    """
    from .convert import convert
    from .inspect_cmd import inspect
    from .preview import preview
    from .synth import synth

    raw, dataset, png = out_dir / "raw", out_dir / "ntu.zarr", out_dir / "preview.png"
    earlier = (out_dir / MARKER).is_file()
    if out_dir.is_dir() and any(out_dir.iterdir()) and not earlier:
        raise click.UsageError(
            f"{out_dir}: exists and was not made by `s2i-prep demo`; choose another OUT_DIR "
            "(the demo replaces only its own folders)"
        )
    # --overwrite is accepted for older scripts: an earlier demo is replaced in any case.
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("s2i-prep demo output; rerunning the demo replaces it\n")
    (out_dir / ".gitignore").write_text(GITIGNORE)
    again = ["--overwrite"] if earlier else []
    if earlier and raw.is_dir():
        # synth --overwrite replaces same-named files only; an earlier, larger demo would leave
        # extra recordings behind, so the demo's own raw folder starts empty.
        shutil.rmtree(raw)
    steps = [
        (synth, ["--format", "ntu25", str(raw), "--samples", str(samples), "--seed", str(seed)] + again),
        (convert, ["--format", "ntu25", str(raw), str(dataset)] + again),
        (inspect, [str(dataset)]),
        (preview, [str(dataset), "-o", str(png)]),
    ]
    for k, (command, args) in enumerate(steps, 1):
        click.secho(f"[{k}/{len(steps)}] s2i-prep {command.name} {' '.join(args)}", bold=True, err=True)
        status = command.main(args, prog_name=f"s2i-prep {command.name}", standalone_mode=False)
        # 3 = converted with some input files skipped: the synthetic set has empty recordings on purpose
        if status not in (None, 0, 3):
            ctx.exit(status)
    click.echo(f"done: open {png} to see what the model is fed; the dataset is {dataset}")
