"""What ``generate`` checks before any compute is spent: the prompts, and the extra inputs of
super-resolution, inpainting and glyph-guided models. Each problem is a one-line GlyphfuseError."""

from __future__ import annotations

from typing import Sequence

import torch

from glyphfuse.core.config import ModelConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.tokenizer import encoded_length


def checked_prompts(prompts: Sequence[str], config: ModelConfig, low_res: torch.Tensor | None) -> list[str]:
    """``prompts`` as a list, or a GlyphfuseError before any compute is spent: no prompts, a
    non-string, low-res images missing (SR model) or out of place (base model) or miscounted,
    a prompt longer than the model reads."""
    prompts = list(prompts)
    if not prompts:
        raise GlyphfuseError("generate: no prompts given")
    if any(not isinstance(p, str) for p in prompts):
        raise GlyphfuseError("generate: prompts must be strings (None is reserved for the guidance null input)")
    if config.is_super_resolution and low_res is None:
        raise GlyphfuseError(f"model {config.name!r} is a super-resolution model: it needs low_res images")
    if not config.is_super_resolution and low_res is not None:
        raise GlyphfuseError(f"model {config.name!r} is not a super-resolution model: low_res must be None")
    if low_res is not None and low_res.shape[0] != len(prompts):
        raise GlyphfuseError(f"got {low_res.shape[0]} low-res images for {len(prompts)} prompts")
    check_prompt_lengths(prompts, config)
    return prompts


def check_known(known: torch.Tensor | None, mask: torch.Tensor | None, config: ModelConfig, count: int) -> None:
    """GlyphfuseError unless ``known`` and ``mask`` are both absent, or both given with the shapes
    inpainting needs (an SR model does not inpaint)."""
    if known is None and mask is None:
        return
    if known is None or mask is None:
        raise GlyphfuseError("inpainting needs both the known picture and its mask")
    if config.is_super_resolution:
        raise GlyphfuseError(f"model {config.name!r} is a super-resolution model; it does not inpaint")
    size = (config.image_size, config.image_size)
    if tuple(known.shape) != (count, config.channels, *size) or tuple(mask.shape) != (count, 1, *size):
        raise GlyphfuseError(f"inpainting inputs have shapes {tuple(known.shape)} and {tuple(mask.shape)}, expected "
                             f"{(count, config.channels, *size)} and {(count, 1, *size)}")


def check_glyphs(glyphs: torch.Tensor | None, config: ModelConfig, count: int) -> None:
    """GlyphfuseError unless a glyph-guided model gets glyphs (count, 1, H, W) and any other none."""
    if not config.glyphs:
        if glyphs is not None:
            raise GlyphfuseError(f"model {config.name!r} is not glyph-guided; it takes no glyphs")
        return
    expected = (count, 1, config.image_size, config.image_size)
    if glyphs is None:
        raise GlyphfuseError(f"model {config.name!r} paints around glyphs: give it the glyphs (typeset or from a grey model)")
    if tuple(glyphs.shape) != expected:
        raise GlyphfuseError(f"glyphs have shape {tuple(glyphs.shape)}, expected {expected}")


def check_prompt_lengths(prompts: Sequence[str], config: ModelConfig) -> None:
    """GlyphfuseError naming the first prompt that is longer than the model reads."""
    for prompt in prompts:
        tokens = encoded_length(prompt)
        if tokens > config.text.max_length:
            shown = repr(prompt if len(prompt) <= 40 else prompt[:40] + "...")
            raise GlyphfuseError(
                f"prompt {shown} ({len(prompt)} characters) needs {tokens} tokens, more than the {config.text.max_length} that model "
                f"{config.name!r} reads (text.max_length, the begin token included); shorten it (a character outside printable ASCII takes one token per UTF-8 byte)"
            )
