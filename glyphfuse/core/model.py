"""GlyphModel: the text-conditioned denoiser (timestep embedding + text encoder + U-Net).

One forward pass::

    emb  = time_embed(sinusoid(t))  [+ low_res_noise_embed(sinusoid(noise_level * 1000)) for SR]
                                    [+ control_embed(kind, text colour, background colour) for scenes]
    text = text_encoder(tokens, line ids, mask, emb)        # (B, L, W_text), once per forward
    out  = unet(x_t [| upsampled low_res] [| masked image | mask] [| glyphs], emb, text, mask)  # text stream evolves in the weave layers

Each row of the batch is computed independently of the others: all masks are batch-major and
padding keys get exactly zero attention, so a prompt's output does not depend on its batch
neighbours nor on how much padding it received (tested in tests/test_model.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glyphfuse.core.config import ModelConfig
from glyphfuse.core.controls import ControlBatch
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.layers import timestep_embedding
from glyphfuse.core.text_encoder import TextEncoder
from glyphfuse.core.tokenizer import TextBatch
from glyphfuse.core.unet import UNet


def _check_config(config: ModelConfig) -> None:
    unet = config.unet
    expected_in = config.input_channels
    if unet.in_channels != expected_in:
        kind = ("super-resolution" if config.is_super_resolution else "glyph-guided inpainting" if config.inpaint and config.glyphs
                else "inpainting" if config.inpaint else "glyph-guided" if config.glyphs else "base")
        raise GlyphfuseError(
            f"model config {config.name!r}: unet.in_channels is {unet.in_channels}, a {kind} model with "
            f"{config.channels} image channel(s) needs {expected_in}"
        )
    factor = 2 ** (len(unet.channel_mult) - 1) * unet.patch_size
    if config.image_size % factor:
        raise GlyphfuseError(
            f"model config {config.name!r}: image_size {config.image_size} is not divisible by {factor} "
            f"(patch_size * 2 ** (levels - 1) for channel_mult {tuple(unet.channel_mult)})"
        )


# The glyph input is amplified: its input weights start at zero, and under Adam a weight moves by
# about the learning rate a step whatever its input's scale, so this gain makes the glyph path learn
# that many times faster than the rest (the painter's glyphs were barely used after 48k images at 1).
GLYPH_GAIN = 8.0


class ControlEmbedding(nn.Module):
    """Scene controls -> (B, E), added to the timestep embedding: a learned vector per kind (row 0:
    no kind) plus an MLP of the two colours and their given-flags. Both start at zero, so a
    model warm-started without controls begins as it was."""

    def __init__(self, num_kinds: int, dim: int):
        super().__init__()
        self.kinds = nn.Embedding(num_kinds + 1, dim)
        nn.init.zeros_(self.kinds.weight)
        self.colors = nn.Sequential(nn.Linear(8, dim), nn.SiLU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.colors[2].weight)
        nn.init.zeros_(self.colors[2].bias)

    def forward(self, controls: ControlBatch) -> torch.Tensor:
        given = controls.given  # (B, 2)
        colors = controls.colors * given.repeat_interleave(3, dim=1)  # (B, 6): a colour not given is 0
        return self.kinds(controls.kind_ids) + self.colors(torch.cat([colors, given], dim=1))


class GlyphModel(nn.Module):
    """Predicts eps or v (per the diffusion config) for noisy images given a TextBatch."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        _check_config(config)
        self.config = config
        base = config.unet.base_channels
        self.time_embed_dim = 4 * base
        self.time_embed = nn.Sequential(nn.Linear(base, self.time_embed_dim), nn.SiLU(), nn.Linear(self.time_embed_dim, self.time_embed_dim))
        self.low_res_noise_embed = None
        if config.is_super_resolution:
            self.low_res_noise_embed = nn.Sequential(
                nn.Linear(base, self.time_embed_dim), nn.SiLU(), nn.Linear(self.time_embed_dim, self.time_embed_dim)
            )
        self.control_embed = ControlEmbedding(len(config.scene_kinds), self.time_embed_dim) if config.scene_kinds else None
        self.text_encoder = TextEncoder(config.text, self.time_embed_dim)
        self.unet = UNet(config.unet, config.image_size, config.text.width, self.time_embed_dim)

    def forward(
        self,
        x_t: torch.Tensor,
        timesteps: torch.Tensor,
        text: TextBatch,
        low_res: torch.Tensor | None = None,
        low_res_noise_level: torch.Tensor | None = None,
        controls: ControlBatch | None = None,
        masked_image: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        glyphs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # x_t: (B, C, H, W); timesteps: (B,) float in 0..num_timesteps-1 -> (B, out_channels, H, W)
        # controls: the scene controls of a colour model (None: none given); other models ignore them
        # masked_image (B, C, H, W), mask (B, 1, H, W): an inpainting model's known picture, zero where
        # mask is 1 (draw there); not given = nothing known, the model draws the whole picture
        # glyphs (B, 1, H, W): a glyph-guided model's text ink, -1 (none) .. 1; not given = no text
        B = x_t.shape[0]
        if len(text) != B:
            raise ValueError(f"batch of {B} images but {len(text)} prompts")
        base = self.config.unet.base_channels
        emb = self.time_embed(timestep_embedding(timesteps.to(x_t.device).expand(B), base))  # (B, E)

        if self.config.is_super_resolution:
            if low_res is None:
                raise GlyphfuseError(f"model {self.config.name!r} is a super-resolution model and needs a low_res image")
            up = F.interpolate(low_res.to(x_t.dtype), size=x_t.shape[-2:], mode="bilinear", align_corners=False)
            x_t = torch.cat([x_t, up], dim=1)  # (B, 2C, H, W)
            if low_res_noise_level is None:
                low_res_noise_level = torch.zeros(B, device=x_t.device)
            emb = emb + self.low_res_noise_embed(timestep_embedding(low_res_noise_level.to(x_t.device).expand(B) * 1000.0, base))
        elif low_res is not None:
            raise ValueError(f"model {self.config.name!r} is not a super-resolution model; low_res must be None")

        if self.config.inpaint:
            if mask is None:
                mask = torch.ones_like(x_t[:, :1])
            if masked_image is None:
                masked_image = torch.zeros_like(x_t)
            x_t = torch.cat([x_t, masked_image.to(x_t), mask.to(x_t)], dim=1)  # (B, 2C + 1, H, W)
        elif masked_image is not None or mask is not None:
            raise ValueError(f"model {self.config.name!r} is not an inpainting model; masked_image and mask must be None")

        if self.config.glyphs:
            if glyphs is None:
                glyphs = torch.full_like(x_t[:, :1], -1.0)
            x_t = torch.cat([x_t, GLYPH_GAIN * glyphs.to(x_t)], dim=1)  # (..., +1, H, W)
        elif glyphs is not None:
            raise ValueError(f"model {self.config.name!r} is not glyph-guided; glyphs must be None")

        if self.control_embed is not None:
            if controls is None:
                controls = ControlBatch.build([None] * B, self.config.scene_kinds)
            emb = emb + self.control_embed(controls.to(x_t.device)).to(emb.dtype)

        text = text.to(x_t.device)
        text_features = self.text_encoder(text.token_ids, text.line_ids, text.mask, emb)  # (B, L, W_text)
        return self.unet(x_t, emb, text_features, text.mask)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts by top-level part, plus "total"."""
    counts: dict[str, int] = {}
    for name, child in model.named_children():
        if child is not None:
            counts[name] = sum(p.numel() for p in child.parameters())
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
