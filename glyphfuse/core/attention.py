"""Attention blocks of the U-Net: spatial self-attention and the text<->image weave layer.

Masks are always built batch-major, shape (B, 1, 1, L_text), and broadcast over heads by
``scaled_dot_product_attention`` -- never tiled by hand, so a row can only ever see its own
padding mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glyphfuse.core.layers import GLUFeedForward, group_norm, zero_module


def _heads(channels: int, head_channels: int) -> int:
    return max(1, channels // head_channels)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    # (B, N, D) -> (B, heads, N, D / heads)
    B, N, D = x.shape
    return x.view(B, N, heads, D // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    # (B, heads, N, d) -> (B, N, heads * d)
    B, H, N, d = x.shape
    return x.transpose(1, 2).reshape(B, N, H * d)


class SelfAttention2d(nn.Module):
    """x + Attn(GroupNorm(x)) over all H*W positions; zero-initialised output projection."""

    def __init__(self, channels: int, head_channels: int):
        super().__init__()
        self.heads = _heads(channels, head_channels)
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x).view(B, C, H * W))  # (B, 3C, HW)
        q, k, v = qkv.view(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)  # (B, h, HW, d)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, h, HW, d)
        h = h.transpose(-1, -2).reshape(B, C, H * W)
        return x + self.proj_out(h).view(B, C, H, W)


class AxialPositionEmbedding(nn.Module):
    """Absolute 2-D position for one feature-map size: row table + column table.

    Returns a (1, dim, size, size) map that is added to the weave layers' AdaGN [scale, shift];
    one instance per feature-map size is shared by all weave layers at that size.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.rows = nn.Parameter(torch.randn(size, dim) * 0.02)
        self.cols = nn.Parameter(torch.randn(size, dim) * 0.02)

    def forward(self) -> torch.Tensor:
        grid = self.rows[:, None, :] + self.cols[None, :, :]  # (size, size, dim)
        return grid.permute(2, 0, 1).unsqueeze(0)


class WeaveLayer(nn.Module):
    """One weave step between the image stream (B, C, H, W) and the text stream (B, L, W_text).

    1. image-to-text: LN(text) queries attend over AdaGN(image) keys/values; text += out
    2. text += GLU(LN(text))
    3. text-to-image: AdaGN(image) queries attend over LN(text) keys/values (padding masked);
       image += out (zero-initialised, so a fresh layer leaves the image unchanged)

    AdaGN(image) = GroupNorm(image) * (1 + scale) + shift with [scale, shift] =
    Linear(SiLU(time_emb)) + the axial position embedding of this feature-map size.
    The text residual outputs are zero-initialised too, so a fresh layer is an exact identity.
    """

    def __init__(self, channels: int, text_width: int, time_embed_dim: int, head_channels: int, ff_mult: int = 2):
        super().__init__()
        self.heads = _heads(channels, head_channels)
        self.channels = channels
        self.image_norm = group_norm(channels)
        self.image_mod = nn.Sequential(nn.SiLU(), nn.Linear(time_embed_dim, 2 * channels))
        # 1. image -> text
        self.i2t_norm = nn.LayerNorm(text_width)
        self.i2t_q = nn.Linear(text_width, channels)
        self.i2t_kv = nn.Linear(channels, 2 * channels)
        self.i2t_out = zero_module(nn.Linear(channels, text_width))
        # 2. text feed-forward
        self.ff_norm = nn.LayerNorm(text_width)
        self.ff = GLUFeedForward(text_width, ff_mult * text_width, zero_out=True)
        # 3. text -> image
        self.t2i_norm = nn.LayerNorm(text_width)
        self.t2i_q = nn.Linear(channels, channels)
        self.t2i_kv = nn.Linear(text_width, 2 * channels)
        self.t2i_out = zero_module(nn.Linear(channels, channels))

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        time_emb: torch.Tensor,
        position: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # image: (B, C, H, W); text: (B, L, Wt); text_mask: (B, L) bool; time_emb: (B, E);
        # position: (1, 2C, H, W)
        B, C, H, W = image.shape
        scale_shift = self.image_mod(time_emb)[:, :, None, None] + position  # (B, 2C, H, W)
        scale, shift = scale_shift.chunk(2, dim=1)
        image_n = self.image_norm(image) * (1 + scale) + shift
        image_n = image_n.flatten(2).transpose(1, 2)  # (B, HW, C)

        # 1. text queries over image keys/values (every pixel is real: no mask)
        q = _split_heads(self.i2t_q(self.i2t_norm(text)), self.heads)  # (B, h, L, d)
        k, v = (_split_heads(t, self.heads) for t in self.i2t_kv(image_n).chunk(2, dim=-1))  # (B, h, HW, d)
        text = text + self.i2t_out(_merge_heads(F.scaled_dot_product_attention(q, k, v)))

        # 2. gated feed-forward on the text
        text = text + self.ff(self.ff_norm(text))

        # 3. image queries over text keys/values; this row's padding keys masked
        q = _split_heads(self.t2i_q(image_n), self.heads)  # (B, h, HW, d)
        k, v = (_split_heads(t, self.heads) for t in self.t2i_kv(self.t2i_norm(text)).chunk(2, dim=-1))  # (B, h, L, d)
        key_mask = text_mask[:, None, None, :]  # (B, 1, 1, L), True = attend
        h = _merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask))  # (B, HW, C)
        image = image + self.t2i_out(h).transpose(1, 2).reshape(B, C, H, W)
        return image, text
