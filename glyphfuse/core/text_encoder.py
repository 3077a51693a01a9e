"""Transformer text encoder with T5 relative position bias.

Input of every token = token embedding + learned absolute position embedding + line embedding
(+ optionally a column-in-line embedding) + a projection of the diffusion timestep embedding (the encoder knows the noise level, so it runs
again at every denoising step). Then ``depth`` pre-LayerNorm bidirectional blocks (self-attention
with one T5 relative-position-bias table shared by all layers, GLU feed-forward) and a final
LayerNorm. Padding keys are masked; BOS/NULL at position 0 is always a real key, so no attention
row is ever fully masked.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from glyphfuse.core.config import TextEncoderConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.layers import GLUFeedForward, zero_module
from glyphfuse.core.tokenizer import NEWLINE_ID, VOCAB_SIZE


def relative_position_bucket(
    relative_position: torch.Tensor, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    """T5's bidirectional bucketing of ``relative_position = key_pos - query_pos``.

    Half of the buckets serve keys after the query (offset ``num_buckets // 2``), half keys at or
    before it. Within a half, with ``n = |relative_position|`` and ``exact = half // 2``:
    ``n < exact`` gets bucket ``n``; larger distances get
    ``exact + floor(log(n / exact) / log(max_distance / exact) * (half - exact))``,
    clamped to ``half - 1`` (so everything beyond ``max_distance`` shares the last bucket).
    """
    half = num_buckets // 2
    buckets = (relative_position > 0).long() * half
    n = relative_position.abs()
    exact = half // 2
    is_small = n < exact
    # clamp(min=1) keeps log() finite for n = 0; those entries take the is_small branch anyway
    log_ratio = torch.log(n.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    large = exact + (log_ratio * (half - exact)).long()
    large = large.clamp(max=half - 1)
    return buckets + torch.where(is_small, n, large)


class RelativePositionBias(nn.Module):
    """One learned (bucket x head) table; (L,) positions -> (1, heads, L, L) additive bias."""

    def __init__(self, heads: int, num_buckets: int, max_distance: int):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.table = nn.Embedding(num_buckets, heads)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, length: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(length, device=device)
        rel = pos[None, :] - pos[:, None]  # (L_query, L_key): key - query
        buckets = relative_position_bucket(rel, self.num_buckets, self.max_distance)
        return self.table(buckets).permute(2, 0, 1).unsqueeze(0)  # (1, H, L, L)


class EncoderBlock(nn.Module):
    """Pre-LN transformer block: x + SelfAttn(LN(x)), then x + GLU(LN(x))."""

    def __init__(self, width: int, heads: int, ff_mult: int):
        super().__init__()
        self.heads = heads
        self.norm_attn = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.attn_out = nn.Linear(width, width)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = GLUFeedForward(width, ff_mult * width)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        # x: (B, L, W); attn_bias: (B, H, L, L) float, -inf on padding keys
        B, L, W = x.shape
        q, k, v = self.qkv(self.norm_attn(x)).view(B, L, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)  # (B, H, L, D)
        x = x + self.attn_out(h.transpose(1, 2).reshape(B, L, W))
        return x + self.ff(self.norm_ff(x))


def column_ids(token_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) token ids -> (B, L) column of each token within its line: the BOS or newline token
    that starts a line is column 0, its first character column 1."""
    positions = torch.arange(token_ids.shape[1], device=token_ids.device).expand_as(token_ids)
    line_start = torch.where(token_ids == NEWLINE_ID, positions, torch.zeros_like(positions))
    return positions - torch.cummax(line_start, dim=1).values


class TextEncoder(nn.Module):
    """(token_ids, line_ids, mask, time_emb) -> (B, L, width) token features."""

    def __init__(self, config: TextEncoderConfig, time_embed_dim: int):
        super().__init__()
        if config.width % config.head_dim:
            raise GlyphfuseError(f"text encoder config: width {config.width} is not a multiple of head_dim {config.head_dim}")
        self.config = config
        width = config.width
        heads = width // config.head_dim
        self.token_embed = nn.Embedding(VOCAB_SIZE, width)
        self.position_embed = nn.Embedding(config.max_length, width)
        self.line_embed = nn.Embedding(config.max_lines, width)
        self.column_embed = nn.Embedding(config.max_length, width) if config.column_embedding else None
        # Token identity must dominate the input stream. With std-0.02 tables a default-initialised
        # timestep projection was ~25x larger than the tokens: every token looked the same to the
        # blocks and to the weave layers, and a 6,700-step CPU run learned to ignore the text
        # (its output moved 0.01% between prompts). Zero-initialising the projection alone was not
        # enough: it grew within 1,000 steps and drowned the std-0.02 tokens again. So: unit-scale
        # tables (the pre-LN blocks normalise the sum anyway) and a timestep that enters at zero.
        self.time_proj = nn.Sequential(nn.SiLU(), zero_module(nn.Linear(time_embed_dim, width)))
        for table in (self.token_embed, self.position_embed, self.line_embed, self.column_embed):
            if table is not None:
                nn.init.normal_(table.weight, std=1.0)
        self.relative_bias = RelativePositionBias(heads, config.num_buckets, config.max_distance)
        self.blocks = nn.ModuleList([EncoderBlock(width, heads, config.ff_mult) for _ in range(config.depth)])
        self.norm_out = nn.LayerNorm(width)

    def forward(
        self, token_ids: torch.Tensor, line_ids: torch.Tensor, mask: torch.Tensor, time_emb: torch.Tensor
    ) -> torch.Tensor:
        # token_ids, line_ids, mask: (B, L); time_emb: (B, time_embed_dim)
        B, L = token_ids.shape
        if L > self.config.max_length:
            raise GlyphfuseError(
                f"text batch is {L} tokens long, more than the model's max_length {self.config.max_length}"
            )
        positions = torch.arange(L, device=token_ids.device)
        x = (
            self.token_embed(token_ids)
            + self.position_embed(positions)[None]
            + self.line_embed(line_ids.clamp(0, self.config.max_lines - 1))
            + self.time_proj(time_emb)[:, None, :]
        )  # (B, L, W)
        if self.column_embed is not None:
            x = x + self.column_embed(column_ids(token_ids))
        # additive mask: shared relative bias + -inf on this row's padding keys (batch-major)
        key_pad = torch.zeros(B, 1, 1, L, dtype=x.dtype, device=x.device).masked_fill(~mask[:, None, None, :], float("-inf"))
        attn_bias = self.relative_bias(L, x.device).to(x.dtype) + key_pad  # (B, H, L, L)
        for block in self.blocks:
            x = block(x, attn_bias)
        return self.norm_out(x)
