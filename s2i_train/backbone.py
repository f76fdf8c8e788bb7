"""The encoder an evaluation starts from: a pretraining run's checkpoint, an image-pretrained file
(``--init``) or random weights (``--random-init``), with the model size and input geometry read
from the checkpoint unless the command overrides them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timm.models.vision_transformer import VisionTransformer

from s2i_train.checkpoint import InitReport, load_checkpoint, load_init, load_weights
from s2i_train.errors import CheckpointMismatchError, S2ITrainError
from s2i_train.models.vit import ENCODER_SIZES, create_encoder

__all__ = ["Geometry", "build_encoder", "resolve_geometry"]


@dataclass(frozen=True)
class Geometry:
    """Model size and input geometry of an evaluation, plus where its weights come from."""

    model: str
    input_size: int
    patch_size: int
    source: str  # "checkpoint" | "init" | "random"
    path: str | None = None
    pretrain: dict[str, Any] | None = None  # the checkpoint's config, when there is one


def resolve_geometry(
    checkpoint: str | None,
    init: str | None,
    random_init: bool,
    model: str | None,
    input_size: int | None,
    patch_size: int | None,
) -> Geometry:
    """Check the weight options (exactly one source) and settle size and geometry, before any data
    is read or any training starts."""
    given = [
        name
        for name, v in (
            ("--checkpoint", checkpoint),
            ("--init", init),
            ("--random-init", random_init),
        )
        if v
    ]
    if len(given) != 1:
        raise S2ITrainError(
            "give exactly one of --checkpoint RUN/checkpoint.pt, --init FILE or --random-init"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    if model is not None and model not in ENCODER_SIZES:
        raise S2ITrainError(f"--model {model!r}: choose from {', '.join(ENCODER_SIZES)}")
    if checkpoint:
        state = load_checkpoint(checkpoint)
        cfg = state["config"]
        saved = cfg.get("model")
        if model is not None and model != saved:
            raise CheckpointMismatchError(
                f"{checkpoint}: the checkpoint holds a {saved} encoder but --model {model} "
                "was asked for; "
                "drop --model (evaluation reads it from the checkpoint)"
            )
        geo = Geometry(
            saved,
            input_size or cfg["input_size"],
            patch_size or cfg["patch_size"],
            "checkpoint",
            str(_checkpoint_file(checkpoint)),
            cfg,
        )
    else:
        geo = Geometry(
            model or "vit_base",
            input_size or 224,
            patch_size or 16,
            "init" if init else "random",
            init,
        )
    if geo.input_size % geo.patch_size:
        raise S2ITrainError(
            f"--input-size {geo.input_size} is not a multiple of --patch-size {geo.patch_size}"
        )
    return geo


def _checkpoint_file(path: str) -> Path:
    p = Path(path)
    return p / "checkpoint.pt" if p.is_dir() else p


def build_encoder(
    geo: Geometry, num_classes: int, global_pool: str, drop_path_rate: float = 0.0
) -> tuple[VisionTransformer, InitReport | None]:
    """A timm ViT with a ``num_classes`` head, loaded from ``geo``'s weights (decoder dropped,
    position embeddings interpolated when the geometry differs)."""
    encoder = create_encoder(
        geo.model,
        img_size=geo.input_size,
        patch_size=geo.patch_size,
        num_classes=num_classes,
        global_pool=global_pool,
        drop_path_rate=drop_path_rate,
    )
    if geo.source == "random":
        return encoder, None
    if geo.source == "init":
        return encoder, load_init(encoder, geo.path or "")
    # a run checkpoint holds MAE-repository keys: the decoder is dropped, positions resized
    return encoder, load_weights(encoder, load_checkpoint(geo.path or "")["model"], geo.path or "")
