"""``s2i-train``: pretrain and evaluate ViTs on s2i datasets.

Each command turns its options into a config dataclass, calls one ``run_*`` function and prints the
final figures as one JSON object, the last line on stdout. Progress bars go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

EPILOG = """\b
Exit status: 0 done; 1 bad options, data, checkpoint or output folder (message on stderr,
before any training starts), or training failed (e.g. a non-finite loss); 2 usage error."""

SIZES = ("vit_test", "vit_tiny", "vit_small", "vit_base")


def _common(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Options every training/evaluation command takes."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        opts = [
            click.option(
                "--data",
                "data",
                multiple=True,
                required=True,
                type=click.Path(),
                help="Converted s2i dataset (.zarr/.h5); repeat to train on several.",
            ),
            click.option(
                "--split",
                "split",
                multiple=True,
                default=("none",) if kind == "pretrain" else None,
                required=kind != "pretrain",
                show_default=kind == "pretrain",
                help="Split name (e.g. ntu60-xsub), one for all --data or one per --data; "
                "'none' = every sample (pretraining only).",
            ),
            click.option(
                "--stream", default="joint", show_default=True, help="joint, motion or bone."
            ),
            click.option("--out", required=True, type=click.Path(), help="Run folder."),
            click.option(
                "--epochs",
                type=click.IntRange(min=0),
                default=None,
                help="Epochs [command default].",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(min=1),
                default=None,
                help="Batch per process [command default].",
            ),
            click.option(
                "--input-size",
                type=click.IntRange(min=8),
                default=None,
                help="Model input (square) [224; evaluation: the checkpoint's].",
            ),
            click.option(
                "--patch-size",
                type=click.IntRange(min=1),
                default=None,
                help="ViT patch [16; evaluation: the checkpoint's].",
            ),
            click.option(
                "--blr",
                type=float,
                default=None,
                help="Base lr; lr = blr * batch * processes / 256.",
            ),
            click.option(
                "--min-lr", type=float, default=None, help="Final lr of the cosine schedule."
            ),
            click.option("--warmup-epochs", type=float, default=None, help="Linear warmup epochs."),
            click.option("--weight-decay", type=float, default=None),
            click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
            click.option(
                "--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N."
            ),
            click.option(
                "--workers",
                type=click.IntRange(min=0),
                default=None,
                help="DataLoader workers [4 on CUDA, 0 on CPU].",
            ),
            click.option(
                "--augment/--no-augment",
                default=None,
                help="Temporal crop + 3-D rotation [on; linprobe: off, features cached].",
            ),
            click.option(
                "--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."
            ),
            click.option("--overwrite", is_flag=True, help="Replace the run in --out."),
            click.option(
                "-q", "--quiet", is_flag=True, help="No progress bars or notes on stderr."
            ),
        ]
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return add


def _eval_source(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--checkpoint",
            type=click.Path(),
            default=None,
            help="Pretraining run (RUN or RUN/checkpoint.pt); "
            "model size and geometry come from it.",
        ),
        click.option(
            "--init",
            type=click.Path(),
            default=None,
            help="Image-pretrained weights (MAE repository or timm file) instead.",
        ),
        click.option("--random-init", is_flag=True, help="Untrained encoder: the baseline."),
        click.option(
            "--model",
            type=click.Choice(SIZES),
            default=None,
            help="Encoder size with --init/--random-init [vit_base].",
        ),
        click.option(
            "--label-fraction",
            type=click.FloatRange(min=0, max=1, min_open=True),
            default=None,
            help="Keep this class-balanced fraction of training labels (0.01, 0.1).",
        ),
        click.option(
            "--eval-every",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Also test every N epochs (logged to metrics.jsonl).",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _config(cls: type, opts: dict[str, Any]) -> Any:
    """Options -> config: unset (None) options keep the config's default."""
    quiet = opts.pop("quiet", False)
    kw = {k: v for k, v in opts.items() if v is not None}
    for k in ("data", "split"):
        if k in kw:
            kw[k] = tuple(kw[k])
    return cls(show_progress=not quiet, **kw)


def _finish(result: dict[str, Any]) -> None:
    if result:  # DDP ranks other than 0 print nothing
        click.echo(json.dumps(result))


def _guard(fn: Callable[[], dict[str, Any]]) -> None:
    from s2i_train.errors import S2ITrainError

    try:
        _finish(fn())
    except S2ITrainError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.group(epilog=EPILOG)
def main() -> None:
    """Pretrain (MAE, DiffMAE) and evaluate (linear probe, fine-tune, k-NN, fusion) ViTs on s2i
    datasets."""


@main.command(epilog=EPILOG)
@_common("pretrain")
@click.option("--method", type=click.Choice(["mae", "diffmae"]), default="mae", show_default=True)
@click.option("--model", type=click.Choice(SIZES), default="vit_base", show_default=True)
@click.option(
    "--init",
    type=click.Path(),
    default=None,
    help="Start from image-pretrained weights (MAE or timm file).",
)
@click.option(
    "--mask",
    type=click.Choice(["random", "block", "joint", "temporal"]),
    default="random",
    show_default=True,
    help="joint = whole patch columns, temporal = whole patch rows.",
)
@click.option(
    "--mask-ratio",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.75,
    show_default=True,
)
@click.option(
    "--norm-pix-loss/--no-norm-pix-loss",
    default=False,
    show_default=True,
    help="Per-patch normalised targets (MAE's option; off: it discards each patch's mean colour, "
    "i.e. the joints' coordinates).",
)
@click.option("--decoder-dim", type=click.IntRange(min=8), default=512, show_default=True)
@click.option("--decoder-depth", type=click.IntRange(min=1), default=8, show_default=True)
def pretrain(**opts: Any) -> None:
    """Masked pretraining; a checkpoint every epoch in --out."""
    from s2i_train.pretrain import PretrainConfig, run_pretrain

    _guard(lambda: run_pretrain(_config(PretrainConfig, opts)))


@main.command(epilog=EPILOG)
@_common("linprobe")
@_eval_source
@click.option(
    "--pool",
    type=click.Choice(["cls", "avg"]),
    default="cls",
    show_default=True,
    help="Features: the cls token (MAE) or the mean of the patch tokens.",
)
def linprobe(**opts: Any) -> None:
    """Linear probe of a frozen encoder (BatchNorm without affine + linear head). Final JSON:
    top1, top5, n_test."""
    from s2i_train.probe import LinprobeConfig, run_linprobe

    _guard(lambda: run_linprobe(_config(LinprobeConfig, opts)))


@main.command(epilog=EPILOG)
@_common("finetune")
@_eval_source
@click.option("--layer-decay", type=float, default=None, help="Layer-wise lr decay [0.65].")
@click.option("--drop-path", type=float, default=None, help="Stochastic depth [0.1].")
@click.option("--label-smoothing", type=float, default=None, help="[0.1]")
def finetune(**opts: Any) -> None:
    """Fine-tune the whole encoder; --label-fraction for semi-supervised, another dataset's
    checkpoint for transfer."""
    from s2i_train.finetune import FinetuneConfig, run_finetune

    _guard(lambda: run_finetune(_config(FinetuneConfig, opts)))


@main.command(epilog=EPILOG)
@_common("knn")
@_eval_source
@click.option("--k", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--temperature", type=float, default=0.07, show_default=True)
@click.option(
    "--pool",
    type=click.Choice(["cls", "avg"]),
    default="cls",
    show_default=True,
    help="Features: the cls token or the mean of the patch tokens.",
)
def knn(**opts: Any) -> None:
    """k-nearest-neighbour top-1/top-5 of frozen features (no training)."""
    from s2i_train.probe import KnnConfig, run_knn

    _guard(lambda: run_knn(_config(KnnConfig, opts)))


@main.command(epilog=EPILOG)
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--mode",
    type=click.Choice(["softmax", "logits"]),
    default="softmax",
    show_default=True,
    help="Sum softmax probabilities or raw logits.",
)
@click.option("--weights", default=None, help="Comma-separated weight per run [all 1].")
def fuse(runs: tuple[str, ...], mode: str, weights: str | None) -> None:
    """Fuse the saved test scores of evaluation runs (e.g. joint, motion, bone: 3s-S2I)."""
    from s2i_train.fusion import fuse as fuse_scores

    w = None
    if weights:
        try:
            w = [float(v) for v in weights.split(",")]
        except ValueError:
            raise click.BadParameter(
                f"{weights!r} is not a comma-separated list of numbers", param_hint="--weights"
            ) from None
    _guard(lambda: fuse_scores(list(runs), mode, w))


if __name__ == "__main__":
    main()
