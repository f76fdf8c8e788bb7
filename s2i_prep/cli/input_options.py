"""What ``convert`` makes of its INPUT and format options: pickle input, an inferred format,
reader-specific options, and options a format cannot take (kept apart from convert.py)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import format_or_spec


def input_format(
    input_path: Path, fmt: str | None, spec: Path | None, trust_pickle: bool, quiet: bool
) -> str:
    """The format to convert with; a pickle INPUT may leave it to be inferred (pyskl_pickle)."""
    if not isinstance(input_path, Path):  # an fsspec URL: objects of the format's files
        if trust_pickle:
            raise click.UsageError("--trust-pickle applies only to a local .pkl/.pickle INPUT")
        return format_or_spec(fmt, spec)
    from ..readers.archive import is_archive
    from ..readers.pyskl_pickle import infer_format, is_pickle_input

    pickle_input = is_pickle_input(input_path)
    if input_path.is_file() and not pickle_input and not is_archive(input_path):
        raise click.BadParameter(
            f"{input_path} is a file; INPUT is the dataset's folder, its .zip archive, or a "
            "pyskl/mmaction2 "
            "annotation pickle (.pkl, .pickle)",
            param_hint="INPUT",
        )
    if trust_pickle and not pickle_input:
        raise click.UsageError("--trust-pickle applies only when INPUT is a .pkl/.pickle file")
    if pickle_input and not fmt and not spec:
        name, (joints, dims) = infer_format(input_path, trust_pickle)
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


def workers_for_input(input_path: Path, workers: int | None) -> int | None:
    """A pickle is one input file, converted by one task: without ``--workers`` it runs in this
    process, so its samples are not sent back through a pipe in one large message."""
    from ..readers.pyskl_pickle import is_pickle_input

    if workers is None and isinstance(input_path, Path) and is_pickle_input(input_path):
        return 0
    return workers
