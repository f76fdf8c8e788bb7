"""``s2i-prep convert``: options -> :class:`~s2i_prep.pipeline.ConvertConfig` -> ``convert()``."""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .input_options import (
    input_format,
    reader_options,
    refuse_align_for_2d,
    split_inputs,
    workers_for_input,
)
from .options import PathOrUrl, format_options, storage_options_option, use_storage_options

if TYPE_CHECKING:
    from ..pipeline import Kept, ProgressUpdate

#: Exit status of a conversion that finished but skipped some inputs.
EXIT_SKIPPED = 3
#: Seconds between progress lines when stderr is not a terminal (log files, nohup, CI).
LOG_EVERY_S = 5.0
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
  130, 143, 129  stopped by Ctrl-C, SIGTERM or SIGHUP: committed shards
     are kept and the command to continue (--resume) is printed
\b
Examples:
  s2i-prep convert --format ntu25 nturgb+d_skeletons/ ntu.zarr
  s2i-prep convert --format ntu25 nturgbd_skeletons_s001_to_s017.zip
      nturgbd_skeletons_s018_to_s032.zip ntu120.zarr
  s2i-prep convert --format ucla20 --image-size 224 --dtype uint8 all_sqe/ ucla.h5
  s2i-prep convert --format pku25 --clip-bounds one_based PKUMMD/ pku.zarr --resume
  s2i-prep convert --format openpose18 kinetics-skeleton/ kinetics.zarr
  s2i-prep convert --format ntu25 --trust-pickle ntu60_3danno.pkl ntu.zarr"""


class _ConvertCommand(click.Command):
    """Remembers its own command-line arguments, to print the exact ``--resume`` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["s2i.convert_args"] = list(args)
        return super().parse_args(ctx, args)


def resume_command(args: list[str]) -> str:
    """The command that continues a conversion run with ``args``: the same, with ``--resume``
    instead of ``--overwrite``."""
    kept = [a for a in args if a != "--overwrite"]
    if "--resume" not in kept:
        kept.append("--resume")
    return "s2i-prep convert " + shlex.join(kept)


def _kept_text(kept: Kept | None, output: Path) -> str:
    if kept is None:
        return f"nothing had been committed yet, so nothing of {output} was kept"
    return (f"{kept.samples} converted samples are kept in {kept.partial} (input files "
            f"1..{kept.files_done} of {kept.files_total} done)")


@click.command(cls=_ConvertCommand, epilog=_EPILOG)
@click.argument("paths", metavar="INPUT... OUTPUT", nargs=-1, required=True, type=PathOrUrl())
@format_options
@storage_options_option
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
    "--dask",
    metavar="ADDRESS",
    help="Run the work on a Dask cluster: its scheduler address (tcp://host:8786), or local:N "
    "for N local worker processes; needs the dask extra (see docs/DISTRIBUTED.md).",
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
    paths: tuple[Path, ...],
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
    dask: str | None,
    on_error: str,
    resume: bool,
    overwrite: bool,
    keep_missing: bool,
    limit: int | None,
    clip_bounds: str | None,
    person_order: str | None,
    trust_pickle: bool,
    quiet: bool,
    storage_options: dict[str, Any],
) -> None:
    """Convert the raw skeleton dataset INPUT into the S2I dataset OUTPUT.

    INPUT is the dataset's folder, the dataset's own archive (.zip, .tar, .tar.gz/.tgz,
    .tar.bz2, .tar.xz: members are read in place, never extracted; reported as
    archive.zip:member), or a pyskl/mmaction2 annotation pickle (with --trust-pickle). Several
    INPUTs (folders and archives, e.g. NTU-120's two zips) convert into one dataset over the
    union of their files, ordered by sample name whatever order they are listed in.

    OUTPUT ending in .zarr is written as Zarr v3, .h5/.hdf5 as HDF5. The output is built under
    OUTPUT.partial and renamed when complete; bad input files are skipped and reported.

    INPUT and a .zarr OUTPUT may be fsspec URLs (s3://bucket/raw, gs://..., memory://...) with
    the fsspec implementation installed (s3fs, gcsfs, ...); see docs/DISTRIBUTED.md.
    """
    inputs, output = split_inputs(paths)
    use_storage_options(storage_options, *inputs, output)
    source = input_format(inputs, fmt, spec, trust_pickle, quiet)
    if dtype == "uint8" and image_size is None:
        raise click.BadParameter(
            "uint8 needs --image-size (the compact grid is stored as float16)",
            param_hint="--dtype",
        )
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if dask is not None and workers is not None:
        raise click.UsageError("--dask and --workers exclude each other (a Dask cluster has its "
                               "own workers)")

    if align:
        refuse_align_for_2d(source)

    from ..parallel import cap_threads

    if workers != 0:
        cap_threads()  # before numba is imported, so forked workers inherit the settings
    from ..encoding import EncodeConfig
    from ..pipeline import ConvertConfig
    from ..pipeline import convert as run_convert

    cfg = ConvertConfig(
        input=inputs,
        output=output,
        format=source,
        encode=EncodeConfig(
            streams=streams,
            frames=frames,
            align=align,
            image_size=image_size,
            dtype=dtype,
        ),
        workers=workers_for_input(inputs, workers),
        dask=dask,
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
    from ..errors import S2IError
    from ..pipeline import ConvertFailed, ConvertStopped
    from ..stopping import exit_status, stop_signals

    progress: _ProgressBar | _ProgressLog | None = None
    if not quiet:
        progress = _ProgressBar() if sys.stderr.isatty() else _ProgressLog()
    again = resume_command(ctx.meta.get("s2i.convert_args") or [*map(str, inputs), str(output)])
    try:
        with stop_signals():
            result = run_convert(cfg, progress=progress,
                                 log=None if progress is None else progress.write)
    except KeyboardInterrupt as exc:  # ConvertStopped, or a stop before the output was opened
        if progress is not None:
            progress.close()
        signum = getattr(exc, "signum", signal.SIGINT)
        kept = exc.kept if isinstance(exc, ConvertStopped) else None
        click.echo(f"stopped by {signal.Signals(signum).name}: workers stopped; "
                   f"{_kept_text(kept, output)}.\ncontinue with:\n  {again}", err=True)
        ctx.exit(exit_status(signum))
    except ConvertFailed as exc:
        if exc.kept is None:
            raise
        raise S2IError(f"{exc}\ncontinue with:\n  {again}") from None
    finally:
        if progress is not None:
            progress.close()
    if not quiet:
        setup = (f" (+{result.setup_seconds:.1f} s start-up)"
                 if result.setup_seconds >= 1 else "")
        limited = f", left out {result.limited} by --limit" if result.limited else ""
        click.echo(
            f"converted {result.samples} samples from {result.files} files, "
            f"skipped {result.skipped}, excluded {result.excluded}{limited}; "
            f"{result.mb_per_s:.1f} MB/s in {result.seconds - result.setup_seconds:.1f} s{setup}"
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


def _rate(update: ProgressUpdate) -> float:
    """MB/s of this run's conversion (kernel compilation and start-up left out)."""
    return update.run_bytes / 1e6 / update.run_seconds if update.run_seconds > 0 else 0.0


class _ProgressLog:
    """Progress for a stderr that is not a terminal (nohup, cluster logs, CI): one line when the
    inputs are known, then one every ``every`` seconds, instead of silence until the end."""

    def __init__(self, every: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self._next: float | None = None

    def __call__(self, update: ProgressUpdate) -> None:
        now = self.clock()
        if self._next is None:
            self._next = now + self.every
            click.echo(f"converting {update.files_total} input files "
                       f"({update.bytes_total / 1e6:.1f} MB)", err=True)
            return
        if now < self._next or update.files_done == update.files_total:
            return
        self._next = now + self.every
        rate = _rate(update)
        left = update.bytes_total - update.bytes_done
        eta = f", about {left / 1e6 / rate:.0f} s left" if rate > 0 else ""
        click.echo(
            f"  {update.files_done}/{update.files_total} files "
            f"({100 * update.files_done / max(update.files_total, 1):.0f}%), "
            f"{update.samples} samples, {update.skipped} skipped, {rate:.0f} MB/s{eta}",
            err=True,
        )

    def write(self, message: str) -> None:
        click.echo(message, err=True)

    def close(self) -> None:
        """Nothing to tidy: every line is complete when printed."""


class _ProgressBar:
    """tqdm on stderr fed by :class:`~s2i_prep.pipeline.ProgressUpdate`: files/s, MB/s, skips, ETA.

    The bar appears with the first update, sent as soon as the inputs are planned (before any
    kernel compilation), so a first run shows 0/N at once.
    """

    def __init__(self) -> None:
        self._bar: Any = None  # tqdm, created on the first update

    def __call__(self, update: ProgressUpdate) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=update.files_total,
                unit="file",
                file=sys.stderr,
                dynamic_ncols=True,
                smoothing=0.1,
            )
        self._bar.set_postfix_str(f"{_rate(update):.0f} MB/s, skipped {update.skipped}",
                                  refresh=False)
        self._bar.update(update.files_done - self._bar.n)

    def write(self, message: str) -> None:
        """A notice above the bar (printing past tqdm would break its line)."""
        if self._bar is None:
            click.echo(message, err=True)
        else:
            self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
