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

**Ink anchoring** (:func:`ink_anchor`, on by default, ``SamplingSettings.anchor_ink``): at every
sampling step the painter's predicted clean picture is held to the glyphs' shape in two tones it
chose itself: the ink takes the median colour the painter predicts over the ink, a halo of
:data:`INK_HALO_PX` around it the median it predicts there (a sign's panel, a caption's outline),
and the ink is moved toward black or white only as far as the data's own contrast rule needs
(WCAG ratio :data:`~glyphfuse.data.scenes.MIN_CONTRAST_RATIO`). Everything else, and the colours,
stay the painter's. It cleans the speck the painters' learned register draws over the first letter
(see README, "The register, and what ink anchoring does about it").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from glyphfuse.core.diffusion import Projection
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.scenes import MIN_CONTRAST_RATIO, contrast_ratio
from glyphfuse.data.synth import FRAME_RECIPE, recipe_glyphs

GLYPH_SOURCES = ("model", "typeset")
NULL_GLYPH = -1.0  # the glyph input of "no text" (guidance's null input)
INK_QUANTILE = 0.001  # a grey sample's ink level: its darkest 0.1 % (16 pixels at 128 px; "emu" has ~60)
MIN_INK_CONTRAST = 0.2  # least (background - ink) of a grey sample, in [-1, 1] units, to hold any ink
INK_HALO_PX = 4  # ink anchoring: the halo's width around the ink, in pixels of the painter's picture
MIN_ANCHOR_PIXELS = 4  # ink anchoring leaves a picture alone with fewer ink (or halo) pixels than this


def coverage_to_glyphs(coverage: torch.Tensor) -> torch.Tensor:
    """Ink coverage 0..1 -> the glyph input -1..1."""
    return coverage * 2.0 - 1.0


def glyphs_to_coverage(glyphs: torch.Tensor) -> torch.Tensor:
    """The glyph input -1..1 -> ink coverage 0..1 (float)."""
    return ((glyphs.float() + 1.0) / 2.0).clamp(0.0, 1.0)


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
    darkest :data:`INK_QUANTILE` (a short word's ink is well under 1 % of the picture), and coverage
    is the linear step between them. A sample without ink (less than :data:`MIN_INK_CONTRAST`
    between the two) gives no glyphs."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise GlyphfuseError(f"glyphs come from grey images (B, 1, H, W), got shape {tuple(images.shape)}")
    flat = images.float().flatten(1)
    background = flat.median(dim=1).values[:, None, None, None]
    ink = torch.quantile(flat, INK_QUANTILE, dim=1)[:, None, None, None]
    contrast = background - ink
    coverage = ((background - images.float()) / contrast.clamp_min(1e-3)).clamp(0.0, 1.0)
    coverage = torch.where(contrast >= MIN_INK_CONTRAST, coverage, torch.zeros_like(coverage))
    return coverage_to_glyphs(coverage)


def legible_ink(ink: torch.Tensor, halo: torch.Tensor, min_ratio: float = MIN_CONTRAST_RATIO) -> torch.Tensor:
    """The ink colour (3,) in [-1, 1], moved toward black or white (whichever contrasts more with
    ``halo``) just far enough for a WCAG contrast ratio of ``min_ratio`` against ``halo``."""
    to_rgb = lambda colour: (colour.detach().cpu().double().numpy().clip(-1.0, 1.0) + 1.0) * 127.5  # noqa: E731
    ink_rgb, halo_rgb = to_rgb(ink), to_rgb(halo)
    if contrast_ratio(ink_rgb, halo_rgb) >= min_ratio:
        return ink
    black, white = np.zeros(3), np.full(3, 255.0)
    target = black if contrast_ratio(black, halo_rgb) >= contrast_ratio(white, halo_rgb) else white
    for share in np.linspace(0.05, 1.0, 20):
        moved = (1.0 - share) * ink_rgb + share * target
        if contrast_ratio(moved, halo_rgb) >= min_ratio:
            break
    return torch.as_tensor(moved / 127.5 - 1.0, dtype=ink.dtype, device=ink.device)


def ink_anchor(glyphs: torch.Tensor, halo_px: int = INK_HALO_PX) -> Projection:
    """The projection (x0 (B, 3, H, W) -> x0) that holds a painter's picture to ``glyphs`` (B, 1, H, W)
    in [-1, 1] (see the module docstring); a picture with no ink is left alone."""
    coverage = glyphs_to_coverage(glyphs)  # (B, 1, H, W)
    grown = F.max_pool2d(coverage, 2 * halo_px + 1, stride=1, padding=halo_px)
    halo = (grown - coverage).clamp(0.0, 1.0)
    ink_pixels, halo_pixels = coverage[:, 0] > 0.5, (grown[:, 0] > 0.5) & (coverage[:, 0] < 0.1)  # (B, H, W)
    enough = (ink_pixels.flatten(1).sum(1) >= MIN_ANCHOR_PIXELS) & (halo_pixels.flatten(1).sum(1) >= MIN_ANCHOR_PIXELS)
    anchored = enough.nonzero().flatten().tolist()  # the pictures with ink, decided once for every step

    def project(x0: torch.Tensor) -> torch.Tensor:
        out = x0.clone()
        for i in anchored:
            halo_colour = x0[i][:, halo_pixels[i]].median(dim=1).values.clamp(-1.0, 1.0)  # (3,)
            ink_colour = legible_ink(x0[i][:, ink_pixels[i]].median(dim=1).values.clamp(-1.0, 1.0), halo_colour)
            out[i] = out[i] * (1.0 - halo[i]) + halo[i] * halo_colour[:, None, None]
            out[i] = out[i] * (1.0 - coverage[i]) + coverage[i] * ink_colour[:, None, None]
        return out

    return project
