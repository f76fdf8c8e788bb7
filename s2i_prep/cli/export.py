"""``s2i-prep export``: a converted dataset's skeletons as a pyskl pickle or CTR-GCN arrays."""

from __future__ import annotations

from pathlib import Path

import click

_EPILOG = """\b
Examples:
  s2i-prep export --to pyskl ntu.zarr ntu_3danno.pkl
  s2i-prep export --to ctrgcn --split ntu60-xsub ntu.zarr ctrgcn_ntu60/
  s2i-prep export --to pyskl --input /data/kinetics-skeleton kinetics.zarr k400_2d.pkl"""


@click.command(epilog=_EPILOG)
@click.option("--to", "target", required=True, type=click.Choice(["pyskl", "ctrgcn"]),
              help="pyskl: one annotation pickle (OUT.pkl); ctrgcn: OUT/<split>.npz per split.")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--split", "splits", multiple=True, metavar="NAME",
              help="Only this split (repeatable) [default: every split of the dataset].")
@click.option("--input", "input_path", type=click.Path(exists=True, path_type=Path),
              help="Where the raw input is now [default: the path recorded in the dataset].")
@click.option("--trust-pickle", is_flag=True,
              help="The raw input is a pickle you trust (never taken from the dataset's record).")
@click.option("--no-verify", is_flag=True,
              help="Do not check that the re-read skeletons give the stored samples.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
@click.option("-q", "--quiet", is_flag=True, help="No summary line.")
def export(target: str, dataset: Path, out: Path, splits: tuple[str, ...], input_path: Path | None,
           trust_pickle: bool, no_verify: bool, overwrite: bool, quiet: bool) -> None:
    """Write the selected skeletons of DATASET for pyskl or CTR-GCN training code.

    The raw input DATASET was converted from is read again with the stored spec and options, and
    every sample is checked against the stored one before anything is written (docs/EXPORT.md).
    """
    from ..export import export as run_export

    result = run_export(dataset, out, target, splits=splits, input_path=input_path,
                        trust_pickle=trust_pickle, verify=not no_verify, overwrite=overwrite)
    if not quiet:
        click.echo(f"exported {result.samples} samples ({', '.join(result.splits) or 'no split'}) "
                   f"-> {', '.join(map(str, result.outputs))}", err=True)
