"""``s2i-prep convert``: options -> :class:`~s2i_prep.pipeline.ConvertConfig` -> ``convert()``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .input_options import input_format, reader_options, refuse_align_for_2d, workers_for_input
from .options import format_options

if TYPE_CHECKING:
    from ..pipeline import ProgressUpdate

#: Exit status of a conversion that finished but skipped some inputs.
EXIT_SKIPPED = 3
_STREAMS = ("joint", "motion", "bone")


def _parse_streams(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [s for s in names if s not in _STREAMS]
    if not names or bad or len(set(names)) != len(names):
        raise click.BadParameter(
            f"expected a comma-separated subset of {','.join(_STREAMS)} without repeats, found {value!r}"
        )
    return names


def _parse_size(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        size = [int(p) for p in value.lower().split("x")]
    except ValueError:
        size = []
    if len(size) == 1:
        size *= 2
    if len(size) != 2 or min(size) < 1:
        raise click.BadParameter(
            f"expected N or HxW with positive integers (e.g. 224, 224x448), found {value!r}"
        )
    return size[0], size[1]


_EPILOG = """\b
Exit status:
  0  every input converted
  3  finished, but some inputs were skipped (listed with reasons in the
     dataset's `report` attribute and summarised on stderr)
  1  failed: bad options or input, existing/locked output, a bad file
     with --on-error fail, or no sample converted at all
\b
Examples:
  s2i-prep convert --format ntu25 nturgb+d_skeletons/ ntu.zarr
  s2i-prep convert --format ucla20 --image-size 224 --dtype uint8 all_sqe/ ucla.h5
  s2i-prep convert --format pku25 --clip-bounds one_based PKUMMD/ pku.zarr --resume
  s2i-prep convert --format openpose18 kinetics-skeleton/ kinetics.zarr
  s2i-prep convert --format ntu25 --trust-pickle ntu60_3danno.pkl ntu.zarr"""


@click.command(epilog=_EPILOG)
@click.argument(
    "input_dir",
    metavar="INPUT",
    type=click.Path(exists=True, path_type=Path),
)
@click.argument("output", metavar="OUTPUT", type=click.Path(dir_okay=True, path_type=Path))
@format_options
@click.option(
    "--streams",
    default=",".join(_STREAMS),
    show_default=True,
    callback=_parse_streams,
    help="Streams to store, comma-separated.",
)
@click.option(
    "--frames",
    default=64,
    show_default=True,
    type=click.IntRange(min=2),
    help="Rows (resampled frames) of the compact grid.",
)
@click.option(
    "--align/--no-align",
    default=False,
    show_default=True,
    help="Rotate every sample so the spine points to +z and the shoulders to +x.",
)
@click.option(
    "--image-size",
    metavar="N|HxW",
    callback=_parse_size,
    help="Store resized images of this size instead of the compact grid.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "uint8"]),
    default="float16",
    show_default=True,
    help="Stored dtype; uint8 needs --image-size.",
)
@click.option(
    "--codec",
    type=click.Choice(["auto", "zstd", "lz4", "gzip", "lzf", "none"]),
    default="auto",
    show_default=True,
    help="Compression (zstd/lz4 for .zarr, gzip/lzf for .h5).",
)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    help="Samples per shard [default: about 64 MiB].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="Worker processes [default: all cores; 0 = none].",
)
@click.option(
    "--on-error",
    type=click.Choice(["skip", "fail"]),
    default="skip",
    show_default=True,
    help="Skip bad inputs into the report, or stop at the first one.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted conversion into OUTPUT.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
@click.option(
    "--keep-missing",
    is_flag=True,
    help="Keep samples on the format's exclude lists (e.g. NTU's missing skeletons).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Convert only the first N input files (trial runs).",
)
@click.option(
    "--clip-bounds",
    type=click.Choice(["half_open", "one_based", "closed"]),
    help="PKU-MMD (pku_txt reader) only: how a label row's start,end become frames: "
    "half_open = start..end-1 [reader default], one_based = start-1..end-1, "
    "closed = start..end.",
)
@click.option(
    "--person-order",
    type=click.Choice(["stgcn", "clip", "score", "file"]),
    help="Untracked people (estimated poses): how they fill the actor slots. Kinetics-skeleton: "
    "stgcn = per frame by summed joint score, as st-gcn [default]; clip = by score summed over "
    "the clip; file. Toyota: score = per frame by cumscore [default]; file.",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="INPUT is a pyskl/mmaction2 annotation pickle you trust: unpickling can run code, so "
    "pickles are refused without this flag. The format may then be left out (inferred from the "
    "keypoint arrays).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.pass_context
def convert(
    ctx: click.Context,
    input_dir: Path,
    output: Path,
    fmt: str | None,
    spec: Path | None,
    streams: tuple[str, ...],
    frames: int,
    align: bool,
    image_size: tuple[int, int] | None,
    dtype: str,
    codec: str,
    shard_size: int | None,
    workers: int | None,
    on_error: str,
    resume: bool,
    overwrite: bool,
    keep_missing: bool,
    limit: int | None,
    clip_bounds: str | None,
    person_order: str | None,
    trust_pickle: bool,
    quiet: bool,
) -> None:
    """Convert the raw skeleton dataset INPUT into the S2I dataset OUTPUT.

    INPUT is the dataset's folder, or a pyskl/mmaction2 annotation pickle (with --trust-pickle).

    OUTPUT ending in .zarr is written as Zarr v3, .h5/.hdf5 as HDF5. The output is built under
    OUTPUT.partial and renamed when complete; bad input files are skipped and reported.
    """
    source = input_format(input_dir, fmt, spec, trust_pickle, quiet)
    if dtype == "uint8" and image_size is None:
        raise click.BadParameter(
            "uint8 needs --image-size (the compact grid is stored as float16)",
            param_hint="--dtype",
        )
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if output.suffix not in (".zarr", ".h5", ".hdf5"):
        raise click.BadParameter(
            f"expected a name ending in .zarr, .h5 or .hdf5, found {output.name!r}",
            param_hint="OUTPUT",
        )

    if align:
        refuse_align_for_2d(source)

    from ..parallel import cap_threads

    if workers != 0:
        cap_threads()  # before numba is imported, so forked workers inherit the settings
    from ..encoding import EncodeConfig
    from ..pipeline import ConvertConfig
    from ..pipeline import convert as run_convert

    cfg = ConvertConfig(
        input=input_dir,
        output=output,
        format=source,
        encode=EncodeConfig(
            streams=streams,
            frames=frames,
            align=align,
            image_size=image_size,
            dtype=dtype,
        ),
        workers=workers_for_input(input_dir, workers),
        codec=codec,
        shard_size=shard_size,
        on_error=on_error,
        resume=resume,
        overwrite=overwrite,
        keep_missing=keep_missing,
        limit=limit,
        reader_options={
            **reader_options(clip_bounds=clip_bounds, person_order=person_order),
            **({"trust_pickle": True} if trust_pickle else {}),
        },
    )
    bar = None if quiet or not sys.stderr.isatty() else _ProgressBar()
    try:
        result = run_convert(cfg, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if not quiet:
        click.echo(
            f"converted {result.samples} samples from {result.files} files, skipped {result.skipped}"
            f", excluded {result.excluded}; {result.mb_per_s:.1f} MB/s in {result.seconds:.1f} s"
            f" -> {result.output}",
            err=True,
        )
        for path, reason, kind in result.skipped_list[:10]:
            click.echo(f"  skipped [{kind}] {path}: {reason}", err=True)
        if result.skipped > 10:
            click.echo(
                f"  ... {result.skipped - 10} more in the dataset's report attribute",
                err=True,
            )
    if result.skipped:
        ctx.exit(EXIT_SKIPPED)


class _ProgressBar:
    """tqdm on stderr fed by :class:`~s2i_prep.pipeline.ProgressUpdate`: files/s, MB/s, skips, ETA.

    The bar appears with the first update, when the number of input files is known.
    """

    def __init__(self) -> None:
        import time

        self._bar: Any = None  # tqdm, created on the first update
        self._t0 = time.perf_counter()

    def __call__(self, update: ProgressUpdate) -> None:
        import time

        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=update.files_total,
                unit="file",
                file=sys.stderr,
                dynamic_ncols=True,
                smoothing=0.1,
            )
        rate = update.bytes_done / 1e6 / max(time.perf_counter() - self._t0, 1e-9)
        self._bar.set_postfix_str(f"{rate:.0f} MB/s, skipped {update.skipped}", refresh=False)
        self._bar.update(update.files_done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
