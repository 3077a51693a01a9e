"""Improved-diffusion style U-Net with weave attention on the upsampling path.

Layout (module names are part of the checkpoint format; warm start relies on them)::

    input_conv                       3x3 conv, in_channels -> base_channels * channel_mult[0]
    input_blocks[i]                  per level, outermost first: num_res_blocks x UNetBlock(res[, attn])
                                     then UNetBlock(down) except after the deepest level
    middle                           res1, attn, res2 at the deepest size
    output_blocks[j]                 per level, deepest first: (num_res_blocks + 1) x
                                     UNetBlock(res[, weave][, attn][, up]) fed with skip concat
    out                              GroupNorm, SiLU, zero-initialised 3x3 conv
    (patch_size p > 1: pixel-unshuffle before input_conv, pixel-shuffle after out)
    position_tables["<size>"]        axial position embedding shared by the weave layers at <size>

A super-resolution U-Net is a base U-Net plus one new OUTERMOST level (channel_mult prefixed by
one entry): base ``input_blocks[i]`` is SR ``input_blocks[i + num_res_blocks + 1]``, base
``output_blocks[j]`` is SR ``output_blocks[j]``, ``middle`` and the position tables (keyed by
feature-map size) line up unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glyphfuse.core.attention import AxialPositionEmbedding, SelfAttention2d, WeaveLayer
from glyphfuse.core.config import UNetConfig
from glyphfuse.core.layers import group_norm, zero_module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, then AdaGN timestep modulation norm(h) * (1 + scale) + shift,
    SiLU, dropout, zero-initialised conv; 1x1 conv skip when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, time_embed_dim: int, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(group_norm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(time_embed_dim, 2 * out_channels))
        self.out_norm = group_norm(out_channels)
        self.out_layers = nn.Sequential(
            nn.SiLU(), nn.Dropout(dropout), zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, H, W); emb: (B, E) -> (B, C_out, H, W)
        h = self.in_layers(x)
        scale, shift = self.emb_layers(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        return self.skip(x) + self.out_layers(h)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNetBlock(nn.Module):
    """res -> weave -> attn -> down/up, each part optional. ``weave_size`` names the position
    table the weave layer uses (the feature-map size it runs at)."""

    def __init__(self, res=None, weave=None, attn=None, down=None, up=None, weave_size: int | None = None):
        super().__init__()
        self.res, self.weave, self.attn, self.down, self.up = res, weave, attn, down, up
        self.weave_size = weave_size

    def forward(self, h, emb, text=None, text_mask=None, positions=None):
        if self.res is not None:
            h = self.res(h, emb)
        if self.weave is not None:
            h, text = self.weave(h, text, text_mask, emb, positions[str(self.weave_size)])
        if self.attn is not None:
            h = self.attn(h)
        if self.down is not None:
            h = self.down(h)
        if self.up is not None:
            h = self.up(h)
        return h, text


class MiddleBlock(nn.Module):
    def __init__(self, channels: int, time_embed_dim: int, head_channels: int, dropout: float):
        super().__init__()
        self.res1 = ResBlock(channels, channels, time_embed_dim, dropout)
        self.attn = SelfAttention2d(channels, head_channels)
        self.res2 = ResBlock(channels, channels, time_embed_dim, dropout)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.res2(self.attn(self.res1(h, emb)), emb)


class UNet(nn.Module):
    """(x (B, in_channels, S, S), emb (B, E), text (B, L, Wt), text_mask (B, L)) -> (B, out_channels, S, S)."""

    def __init__(self, config: UNetConfig, image_size: int, text_width: int, time_embed_dim: int):
        super().__init__()
        self.config = config
        base, mults, n_res = config.base_channels, config.channel_mult, config.num_res_blocks
        head_ch, dropout = config.head_channels, config.dropout

        ch = base * mults[0]
        self.patch_size = config.patch_size
        self.input_conv = nn.Conv2d(config.in_channels * self.patch_size**2, ch, 3, padding=1)
        skip_channels = [ch]
        size = image_size // self.patch_size
        self.input_blocks = nn.ModuleList()
        for level, mult in enumerate(mults):
            for _ in range(n_res):
                out = base * mult
                attn = SelfAttention2d(out, head_ch) if size in config.attention_resolutions else None
                self.input_blocks.append(UNetBlock(res=ResBlock(ch, out, time_embed_dim, dropout), attn=attn))
                ch = out
                skip_channels.append(ch)
            if level != len(mults) - 1:
                self.input_blocks.append(UNetBlock(down=Downsample(ch)))
                size //= 2
                skip_channels.append(ch)
        self.bottom_size = size

        self.middle = MiddleBlock(ch, time_embed_dim, head_ch, dropout)

        self.output_blocks = nn.ModuleList()
        self.position_tables = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(mults))):
            for i in range(n_res + 1):
                out = base * mult
                res = ResBlock(ch + skip_channels.pop(), out, time_embed_dim, dropout)
                ch = out
                weave = None
                if size in config.weave_resolutions:
                    weave = WeaveLayer(ch, text_width, time_embed_dim, head_ch)
                    if str(size) not in self.position_tables:
                        self.position_tables[str(size)] = AxialPositionEmbedding(size, 2 * ch)
                attn = SelfAttention2d(ch, head_ch) if size in config.attention_resolutions else None
                up = Upsample(ch) if level > 0 and i == n_res else None
                self.output_blocks.append(UNetBlock(res=res, weave=weave, attn=attn, up=up, weave_size=size if weave else None))
                if up is not None:
                    size *= 2

        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), zero_module(nn.Conv2d(ch, config.out_channels * self.patch_size**2, 3, padding=1)))

    def forward(self, x: torch.Tensor, emb: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        positions = {size: table() for size, table in self.position_tables.items()}  # each (1, 2C, s, s)
        if self.patch_size > 1:
            x = F.pixel_unshuffle(x, self.patch_size)  # (B, C * p * p, H / p, W / p)
        h = self.input_conv(x)
        skips = [h]
        for block in self.input_blocks:
            h, _ = block(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for block in self.output_blocks:
            h = torch.cat([h, skips.pop()], dim=1)
            h, text = block(h, emb, text, text_mask, positions)
        out = self.out(h)
        return F.pixel_shuffle(out, self.patch_size) if self.patch_size > 1 else out
