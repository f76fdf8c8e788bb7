"""DiffMAE (Wei et al., ICCV 2023): masked autoencoding as conditional denoising.

The encoder is MAE's (visible patches only). Each masked patch is noised at a diffusion step t drawn
per sample, and a *cross-self* decoder (the paper's Fig. 3 variant) reads the noisy masked patches
as
queries: every block runs self-attention among the queries, cross-attention to the visible encoder
tokens, then an MLP. It predicts the clean patches x0; the loss is the MSE to x0 on masked patches.

Choices (the paper's code was never released; see docs/TRAINING.md):

- **Schedule:** DDPM's linear betas 1e-4 .. 0.02 over T = 1000 steps, t uniform in 0 .. T-1, as in
  DDPM and the public DiffMAE reimplementations; it keeps the noise levels comparable with theirs.
- **Target:** x0 (the paper reports x0 prediction beating epsilon prediction for recognition). With
  ``norm_pix_loss`` the diffusion runs in the per-patch-normalised target space, so the noise and
  the
  signal have the same scale in every patch.
- **Decoder context:** the last encoder layer (projected to the decoder width, with positions), not
  the paper's block-to-block top-down links, so that any decoder depth fits any encoder depth.
- **Noise:** drawn from the same per-sample seeds as the mask (counter-based hash + Box-Muller), so
  DDP and resumed runs see exactly the noise of a one-process run.

Evaluation uses the encoder only (:meth:`MaskedViT.encoder_state_dict`); no noise downstream.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp
from timm.models.vision_transformer import Attention

from s2i_train.masking import hash_uniform
from s2i_train.models import register_model
from s2i_train.models.vit import ENCODER_SIZES, MaskedViT, sincos_pos_embed

__all__ = ["DiffMAE", "linear_alpha_bars"]


def linear_alpha_bars(
    steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    """Cumulative products of (1 - beta_t) for DDPM's linear schedule, float64 (steps,)."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps (B,) -> (B, dim), as in DDPM/ADM."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class CrossAttention(nn.Module):
    """Multi-head attention of queries x over a context (torch SDPA kernel)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q = self.q(x).view(b, n, h, c // h).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, h, c // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class CrossSelfBlock(nn.Module):
    """Pre-norm block: self-attention, cross-attention to the encoder tokens, MLP."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.norm1, self.attn = norm(dim), Attention(dim, num_heads, qkv_bias=True)
        self.norm2, self.cross = norm(dim), CrossAttention(dim, num_heads)
        self.norm_ctx = norm(dim)
        self.norm3, self.mlp = norm(dim), Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross(self.norm2(x), self.norm_ctx(context))
        return x + self.mlp(self.norm3(x))


class DiffMAE(MaskedViT):
    """``forward(imgs, seeds) -> (loss, pred, mask)`` like :class:`~s2i_train.models.mae.MAE`;
    pred holds the x0 predictions at masked patches and zeros elsewhere."""

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
        diffusion_steps: int = 1000,
    ) -> None:
        super().__init__(size, img_size, patch_size, mask_ratio, masking, norm_pix_loss)
        heads = decoder_heads or max(1, decoder_dim // 32)
        pdim = patch_size * patch_size * 3
        self.decoder_embed = nn.Linear(self.embed_dim, decoder_dim)
        self.decoder_pos_embed = nn.Parameter(
            sincos_pos_embed(decoder_dim, self.grid), requires_grad=False
        )
        self.decoder_noise_embed = nn.Linear(pdim, decoder_dim)
        self.decoder_time_embed = nn.Sequential(
            nn.Linear(decoder_dim, decoder_dim), nn.SiLU(), nn.Linear(decoder_dim, decoder_dim)
        )
        self.decoder_blocks = nn.ModuleList(
            [CrossSelfBlock(decoder_dim, heads) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, pdim)
        self.register_buffer(
            "alpha_bars", linear_alpha_bars(diffusion_steps).float(), persistent=False
        )
        self._init_mae_weights()

    def _gather(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    def forward(
        self, imgs: torch.Tensor, seeds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = self.draw_mask(seeds)
        keep = mask.ids_keep.shape[1]
        ids_masked = torch.argsort(mask.ids_restore, dim=1)[
            :, keep:
        ]  # masked patches in draw order
        latent = self.forward_encoder(imgs, mask)

        # context: visible encoder tokens at their positions (cls at slot 0)
        pos = self.decoder_pos_embed.expand(imgs.shape[0], -1, -1)
        ctx = self.decoder_embed(latent)
        ctx = ctx + torch.cat([pos[:, :1], self._gather(pos[:, 1:], mask.ids_keep)], dim=1)

        # forward diffusion of the masked target patches at one step per sample
        x0 = self._gather(self.target(imgs).float(), ids_masked)  # (B, M, P)
        steps = len(self.alpha_bars)
        t = (hash_uniform(seeds, 1, stream=6)[:, 0] * steps).long().clamp_(max=steps - 1)
        ab = self.alpha_bars[t].view(-1, 1, 1)
        u = hash_uniform(seeds, 2 * x0.shape[1] * x0.shape[2], stream=7).view(x0.shape[0], 2, -1)
        eps = torch.sqrt(-2.0 * torch.log1p(-u[:, 0])) * torch.cos(
            2 * math.pi * u[:, 1]
        )  # Box-Muller
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps.view_as(x0)

        q = self.decoder_noise_embed(xt.to(ctx.dtype)) + self._gather(pos[:, 1:], ids_masked)
        q = q + self.decoder_time_embed(timestep_embedding(t, q.shape[-1]).to(q.dtype))[:, None, :]
        for blk in self.decoder_blocks:
            q = blk(q, ctx)
        pred_masked = self.decoder_pred(self.decoder_norm(q))
        loss = ((pred_masked.float() - x0) ** 2).mean()
        pred = torch.zeros(
            x0.shape[0],
            mask.mask.shape[1],
            x0.shape[2],
            device=imgs.device,
            dtype=pred_masked.dtype,
        )
        pred.scatter_(1, ids_masked.unsqueeze(-1).expand_as(pred_masked), pred_masked)
        return loss, pred, mask.mask


for _size in ENCODER_SIZES:
    register_model(f"diffmae_{_size}")(partial(DiffMAE, _size))
