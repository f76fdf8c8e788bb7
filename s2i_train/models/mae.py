"""MAE (He et al. 2022) on a timm ViT: the encoder sees only visible patches, a light decoder
reconstructs the masked ones, and the loss is the MSE on masked patches (optionally per-patch
normalised targets). Parameter names follow the MAE repository's ``models_mae.py``, so its full
checkpoints (encoder + ``decoder_*``) load directly."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from s2i_train.models import register_model
from s2i_train.models.vit import ENCODER_SIZES, MaskedViT, sincos_pos_embed

__all__ = ["MAE"]


class MAE(MaskedViT):
    """``forward(imgs, seeds) -> (loss, pred, mask)``: imgs (B, 3, H, W) normalised images, seeds
    (B,) int64 per-sample mask seeds; pred (B, L, p*p*3) for every patch, mask (B, L) 1 = masked."""

    def __init__(
        self,
        size: str,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int | None = None,
        mask_ratio: float = 0.75,
        masking: str = "random",
        norm_pix_loss: bool = False,
    ) -> None:
        super().__init__(size, img_size, patch_size, mask_ratio, masking, norm_pix_loss)
        heads = decoder_heads or max(1, decoder_dim // 32)  # MAE: 512-d, 16 heads
        self.decoder_embed = nn.Linear(self.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(
            sincos_pos_embed(decoder_dim, self.grid), requires_grad=False
        )
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.decoder_blocks = nn.ModuleList(
            [
                Block(decoder_dim, heads, 4.0, qkv_bias=True, norm_layer=norm)
                for _ in range(decoder_depth)
            ]
        )
        self.decoder_norm = norm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, patch_size * patch_size * 3)
        self._init_mae_weights()
        nn.init.normal_(self.mask_token, std=0.02)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """(B, 1 + K, D) encoder output -> (B, L, p*p*3) predictions for every patch."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        tokens = torch.cat([x[:, 1:, :], self.mask_token.expand(b, n + 1 - x.shape[1], -1)], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([x[:, :1, :], tokens], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]

    def forward(
        self, imgs: torch.Tensor, seeds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = self.draw_mask(seeds)
        pred = self.forward_decoder(self.forward_encoder(imgs, mask), mask.ids_restore)
        loss = ((pred.float() - self.target(imgs).float()) ** 2).mean(dim=-1)
        loss = (loss * mask.mask).sum() / mask.mask.sum()
        return loss, pred, mask.mask


for _size in ENCODER_SIZES:
    register_model(f"mae_{_size}")(partial(MAE, _size))
