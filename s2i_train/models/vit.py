"""The ViT encoder shared by pretraining and evaluation, and the masked-encoder base class.

Parameter names are timm's ``VisionTransformer`` names, which are also the MAE repository's, so a
pretraining checkpoint's encoder keys load unchanged into the evaluation model and MAE/timm files
load into both.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from s2i_train.masking import Mask, make_mask

__all__ = ["ENCODER_SIZES", "MaskedViT", "create_encoder", "sincos_pos_embed"]

# embed_dim, depth, heads (timm / DeiT sizes); vit_test is the tiny model the tests train
ENCODER_SIZES: dict[str, dict[str, int]] = {
    "vit_test": dict(embed_dim=32, depth=2, num_heads=2),
    "vit_tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "vit_small": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base": dict(embed_dim=768, depth=12, num_heads=12),
}


def _size(size: str) -> dict[str, int]:
    if size not in ENCODER_SIZES:
        raise KeyError(f"unknown model size {size!r}; choose from {', '.join(ENCODER_SIZES)}")
    return ENCODER_SIZES[size]


def _vit_kwargs(size: str, img_size: int | tuple[int, int], patch_size: int) -> dict[str, Any]:
    return dict(
        img_size=img_size,
        patch_size=patch_size,
        in_chans=3,
        mlp_ratio=4.0,
        qkv_bias=True,
        class_token=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        **_size(size),
    )


def create_encoder(
    size: str,
    img_size: int | tuple[int, int] = 224,
    patch_size: int = 16,
    num_classes: int = 0,
    global_pool: str = "token",
    drop_path_rate: float = 0.0,
) -> VisionTransformer:
    """The evaluation ViT: ``global_pool="token"`` (cls token after the final norm, MAE's linear
    probe) or ``"avg"`` (mean of patch tokens through ``fc_norm``, MAE's fine-tuning)."""
    return VisionTransformer(
        num_classes=num_classes,
        global_pool=global_pool,
        drop_path_rate=drop_path_rate,
        **_vit_kwargs(size, img_size, patch_size),
    )


def sincos_pos_embed(dim: int, grid: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos table (1, [1 +] gh*gw, dim), identical to
    ``get_2d_sincos_pos_embed``:
    the first half of the channels encodes the column, the second half the row; the cls slot is
    0."""
    gh, gw = grid
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))

    def one_d(pos: np.ndarray) -> np.ndarray:
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    cols, rows = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
    emb = np.concatenate([one_d(cols), one_d(rows)], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros((1, dim)), emb], axis=0)
    return torch.from_numpy(emb).float().unsqueeze(0)


def _init_mae(module: nn.Module) -> None:
    """MAE's initialisation: xavier-uniform linears with zero bias, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MaskedViT(VisionTransformer):
    """A timm ViT that encodes only the visible patches of a mask (MAE's ``forward_encoder``).

    Subclasses add a decoder and implement ``forward(imgs, seeds) -> (loss, pred, mask)``. Keys of
    decoder parameters start with ``decoder_`` or are listed in ``DECODER_KEYS`` so that evaluation
    can drop them (:meth:`encoder_state_dict`).
    """

    DECODER_KEYS: tuple[str, ...] = ("mask_token",)

    def __init__(
        self,
        size: str,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        mask_ratio: float = 0.75,
        masking: str = "random",
        norm_pix_loss: bool = False,
    ) -> None:
        super().__init__(
            num_classes=0, global_pool="token", **_vit_kwargs(size, img_size, patch_size)
        )
        self.size = size
        self.mask_ratio = mask_ratio
        self.masking = masking
        self.norm_pix_loss = norm_pix_loss
        self.grid: tuple[int, int] = tuple(self.patch_embed.grid_size)  # type: ignore[assignment]
        self.patch = patch_size
        # fixed sin-cos positions, as MAE pretraining
        self.pos_embed.data.copy_(sincos_pos_embed(self.embed_dim, self.grid))
        self.pos_embed.requires_grad_(False)

    def _init_mae_weights(self) -> None:
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(_init_mae)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, L, p*p*3), MAE's patch vector order (row, column, channel)."""
        p, (gh, gw) = self.patch, self.grid
        x = imgs.reshape(imgs.shape[0], 3, gh, p, gw, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(imgs.shape[0], gh * gw, p * p * 3)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, p*p*3) -> (B, 3, H, W)."""
        p, (gh, gw) = self.patch, self.grid
        x = x.reshape(x.shape[0], gh, gw, p, p, 3)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], 3, gh * p, gw * p)

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """Per-patch targets, normalised by each patch's own mean and variance with
        ``norm_pix_loss``."""
        t = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = t.mean(dim=-1, keepdim=True)
            var = t.var(dim=-1, keepdim=True)
            t = (t - mean) / (var + 1.0e-6) ** 0.5
        return t

    def draw_mask(self, seeds: torch.Tensor) -> Mask:
        return make_mask(self.masking, seeds, self.grid, self.mask_ratio)

    def forward_encoder(self, imgs: torch.Tensor, mask: Mask) -> torch.Tensor:
        """(B, 1 + K, D): the cls token and the K visible patches after the final norm."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        x = torch.gather(x, 1, mask.ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = self.blocks(torch.cat([cls, x], dim=1))
        return self.norm(x)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's parameters only (timm ``VisionTransformer`` keys)."""
        return {
            k: v for k, v in self.state_dict().items() if not is_decoder_key(k, self.DECODER_KEYS)
        }


def is_decoder_key(key: str, extra: tuple[str, ...] = ("mask_token",)) -> bool:
    """True for pretraining-only parameters: ``decoder_*`` and the listed extras (e.g.
    ``mask_token``)."""
    return key.startswith("decoder_") or key.split(".")[0] in extra
