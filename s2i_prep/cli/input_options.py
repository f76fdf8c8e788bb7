"""What ``convert`` makes of its INPUT and format options: pickle input, an inferred format,
reader-specific options, and options a format cannot take (kept apart from convert.py)."""

from __future__ import annotations

from pathlib import Path

import click

from ..urls import Url
from .options import format_or_spec

#: Names an OUTPUT may have (the store is chosen by the suffix).
OUTPUT_SUFFIXES = (".zarr", ".h5", ".hdf5")


def split_inputs(paths: tuple[Path | Url, ...]) -> tuple[tuple[Path | Url, ...], Path | Url]:
    """``INPUT... OUTPUT`` -> (inputs, output): the last path is the output. Refuses a missing
    OUTPUT or INPUT, an OUTPUT that looks like an input, and inputs that do not exist."""
    from ..readers.archive import is_archive

    *inputs, output = paths
    if output.suffix not in OUTPUT_SUFFIXES:
        if not inputs or output.exists() and (output.is_dir() or is_archive(output)):
            raise click.UsageError(
                f"missing OUTPUT: the last path ({output}) is taken as the output, but it "
                f"{'is an existing input' if output.exists() else 'has no dataset suffix'}; "
                "give the dataset to write last, ending in .zarr, .h5 or .hdf5 "
                "(s2i-prep convert INPUT... OUTPUT)"
            )
        raise click.BadParameter(
            f"expected a name ending in .zarr, .h5 or .hdf5, found {output.name!r}",
            param_hint="OUTPUT",
        )
    if not inputs:
        raise click.UsageError(f"missing INPUT: give the raw dataset(s) before OUTPUT {output} "
                               "(s2i-prep convert INPUT... OUTPUT)")
    seen: dict[Path | Url, Path | Url] = {}
    for path in inputs:
        key = path if isinstance(path, Url) else path.absolute()
        if key in seen:
            raise click.BadParameter(f"{path} is listed twice", param_hint="INPUT")
        seen[key] = path
        if isinstance(path, Url):
            continue  # listed by the conversion, with its credentials
        if path.suffix in OUTPUT_SUFFIXES and path.is_dir():
            raise click.BadParameter(
                f"{path} is an S2I dataset, not raw input; the OUTPUT ({output}) goes last and "
                "only once", param_hint="INPUT")
        if not path.exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="INPUT")
    return tuple(inputs), output


def input_format(
    inputs: tuple[Path | Url, ...], fmt: str | None, spec: Path | None, trust_pickle: bool,
    quiet: bool,
) -> str:
    """The format to convert with; a pickle INPUT may leave it to be inferred (pyskl_pickle)."""
    from ..readers.archive import archive_problem, is_archive
    from ..readers.pyskl_pickle import infer_format, is_pickle_input

    pickles = [p for p in inputs if isinstance(p, Path) and is_pickle_input(p)]
    for path in inputs:
        if isinstance(path, Url):
            continue  # objects of the format's files, or a .zip (docs/DISTRIBUTED.md)
        problem = archive_problem(path)
        if problem:
            raise click.BadParameter(problem, param_hint="INPUT")
        if path.is_file() and not is_pickle_input(path) and not is_archive(path):
            raise click.BadParameter(
                f"{path} is a file; INPUT is the dataset's folder, its archive (.zip, .tar, "
                ".tar.gz/.tgz, .tar.bz2, .tar.xz), or a pyskl/mmaction2 annotation pickle "
                "(.pkl, .pickle)",
                param_hint="INPUT",
            )
    if pickles and len(inputs) > 1:
        raise click.BadParameter(
            f"{pickles[0]}: a pyskl/mmaction2 annotation pickle converts alone, not with other "
            "inputs; convert each pickle into its own dataset", param_hint="INPUT")
    if trust_pickle and not pickles:
        raise click.UsageError("--trust-pickle applies only when INPUT is a .pkl/.pickle file")
    if pickles and not fmt and not spec:
        name, (joints, dims) = infer_format(pickles[0], trust_pickle)
        if not quiet:
            click.echo(f"format {name}: inferred from keypoint arrays of {joints} joints x {dims} "
                       "coordinates (name another with --format or --spec)", err=True)
        return name
    return format_or_spec(fmt, spec)


def refuse_align_for_2d(source: str) -> None:
    """``--align`` rotates 3-D joints; say so before any file is read (planar.py)."""
    from ..planar import ALIGN_2D_MESSAGE
    from ..specs import load_spec

    spec = load_spec(source)
    if len(spec.dims) < 3:
        raise click.BadParameter(ALIGN_2D_MESSAGE.format(fmt=spec.format), param_hint="--align")


def reader_options(**options: str | None) -> dict[str, str]:
    """The reader-specific options the user gave (a reader rejects options it does not have)."""
    return {k: v for k, v in options.items() if v is not None}


def workers_for_input(inputs: tuple[Path | Url, ...], workers: int | None) -> int | None:
    """A pickle is one input file, converted by one task: without ``--workers`` it runs in this
    process, so its samples are not sent back through a pipe in one large message."""
    from ..readers.pyskl_pickle import is_pickle_input

    if workers is None and len(inputs) == 1 and isinstance(inputs[0], Path) \
            and is_pickle_input(inputs[0]):
        return 0
    return workers
