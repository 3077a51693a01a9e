"""Small building blocks shared by the text encoder, the U-Net and the weave attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of float timesteps: (B,) -> (B, dim), [cos | sin] halves."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def num_groups(channels: int, max_groups: int = 32) -> int:
    """The largest group count <= max_groups that divides ``channels`` (32 for the usual widths,
    16 for a 16-channel tiny model, 24 for 48 channels)."""
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups(channels), channels, eps=1e-5)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` (used for residual output layers) and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class GLUFeedForward(nn.Module):
    """Gated feed-forward: Linear -> (a * GELU(b)) -> Linear. (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, hidden: int, zero_out: bool = False):
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * hidden)
        self.proj_out = nn.Linear(hidden, dim)
        if zero_out:
            zero_module(self.proj_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(a * F.gelu(b))
