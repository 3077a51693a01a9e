"""Glyph images for glyph-guided models: where the text's ink is, as a (B, 1, H, W) tensor in [-1, 1].

A glyph-guided model (``ModelConfig.glyphs``, preset ``paint128``) paints a colour picture around
the ink it is shown. The ink comes from one of two sources (:data:`GLYPH_SOURCES`):

* ``model``: a grey text model (the packaged ``lines128`` base, which writes at the same places in
  the same font) writes the prompt, and :func:`glyphs_from_grey` reads its ink back. The words are
  then the diffusion model's own spelling, pruned by OCR as usual (:mod:`glyphfuse.sampling.pipeline`).
* ``typeset``: the font renderer draws the prompt exactly where the data recipe writes it
  (:func:`typeset_glyphs`), the glyphs the painter saw in training. Exact by construction.

-1 is "no ink", 1 full ink, as the training data's coverage maps 0..1 onto -1..1. The glyphs are part
of the condition: a text dropped for guidance in training has none, and so has the null input of
classifier-free guidance (:data:`NULL_GLYPH`), so guidance strengthens the glyphs with the text.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.synth import FRAME_RECIPE, recipe_glyphs

GLYPH_SOURCES = ("model", "typeset")
NULL_GLYPH = -1.0  # the glyph input of "no text" (guidance's null input)
MIN_INK_CONTRAST = 0.2  # least (background - ink) of a grey sample, in [-1, 1] units, to hold any ink


def coverage_to_glyphs(coverage: torch.Tensor) -> torch.Tensor:
    """Ink coverage 0..1 -> the glyph input -1..1."""
    return coverage * 2.0 - 1.0


def typeset_glyphs(prompts: Sequence[str | None], size: int, recipe: str = FRAME_RECIPE) -> torch.Tensor:
    """(B, 1, size, size): each prompt typeset exactly where data of ``recipe`` writes it; None (the
    guidance null input) has no ink."""
    glyphs_of = recipe_glyphs(recipe, size)
    blank = np.zeros((size, size), dtype=np.float32)
    coverage = np.stack([blank if prompt is None else glyphs_of(prompt) for prompt in prompts])  # (B, size, size) 0..1
    return coverage_to_glyphs(torch.from_numpy(coverage)[:, None])


def glyphs_from_grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) glyph input from grey samples (B, 1, H, W) in [-1, 1] of dark text on a light
    flat background (what ``lines128`` draws): the background is each image's median, the ink its
    darkest percent, and coverage is the linear step between them. A sample without ink (less than
    :data:`MIN_INK_CONTRAST` between the two) gives no glyphs."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise GlyphfuseError(f"glyphs come from grey images (B, 1, H, W), got shape {tuple(images.shape)}")
    flat = images.float().flatten(1)
    background = flat.median(dim=1).values[:, None, None, None]
    ink = torch.quantile(flat, 0.01, dim=1)[:, None, None, None]
    contrast = background - ink
    coverage = ((background - images.float()) / contrast.clamp_min(1e-3)).clamp(0.0, 1.0)
    coverage = torch.where(contrast >= MIN_INK_CONTRAST, coverage, torch.zeros_like(coverage))
    return coverage_to_glyphs(coverage)
