"""Command-line options that several commands share, declared once, and their checks.

The sampling options of ``sample`` and ``eval`` are declared here once, with their defaults taken
from :class:`glyphfuse.sampling.settings.SamplingSettings`; a command lists them as parameter defaults
(``steps: int = options.STEPS``) and turns them into one settings object with
:func:`sampling_settings`.
"""

from __future__ import annotations

import math
from typing import Optional

import typer

from glyphfuse.core.config import MAX_SEED
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.sampling.settings import SamplingSettings


def finite(param: typer.CallbackParam, value: Optional[float]) -> Optional[float]:
    """Option callback: NaN and infinity are refused while the command line is parsed."""
    if value is not None and not math.isfinite(value):
        raise GlyphfuseError(f"{param.opts[0]} must be a finite number, got {value}")
    return value


def seed_range(param: typer.CallbackParam, value: Optional[int]) -> Optional[int]:
    """Option callback: a seed is 0 .. 2^63 - 1 (torch generators take 64-bit seeds)."""
    if value is not None and not 0 <= value <= MAX_SEED:
        raise GlyphfuseError(f"{param.opts[0]} must be between 0 and {MAX_SEED}, got {value}")
    return value


def sampling_settings(**options) -> SamplingSettings:
    """The SamplingSettings of a command's sampling options (one keyword per field), checked: a
    bad value or combination is one line naming the option (``--eta ... dpmpp-2m``)."""
    settings = SamplingSettings(**options)
    settings.validate(options=True)
    return settings


# --- the sampling options of `sample` and `eval` -------------------------------------------------

DEFAULTS = SamplingSettings()

STEPS = typer.Option(DEFAULTS.steps, "--steps", min=1, help="Denoising steps of the base model (any number up to the model's num_timesteps).")
SAMPLER = typer.Option(DEFAULTS.sampler, "--sampler", help=f"ddim (deterministic with --eta 0), ddpm (ancestral) or dpmpp-2m (DPM-Solver++(2M): deterministic, second order). The default, {DEFAULTS.sampler} with {DEFAULTS.steps} steps, writes as well as ddim with 50 on the packaged model (README, Sampling steps).", show_default=True)
GUIDANCE = typer.Option(DEFAULTS.guidance, "--guidance", "-g", callback=finite, help="Classifier-free guidance scale (1 = no guidance).")
ETA = typer.Option(DEFAULTS.eta, "--eta", min=0.0, callback=finite, help="DDIM noise (0 = deterministic, 1 = DDPM-like).")
DYNAMIC_THRESHOLD = typer.Option(DEFAULTS.dynamic_threshold, "--dynamic-threshold", min=0.0, max=1.0, callback=finite, help="Imagen dynamic thresholding percentile of |x0| (e.g. 0.995) instead of clipping x0 to [-1, 1].")
SEED = typer.Option(DEFAULTS.seed, "--seed", callback=seed_range, help="Random seed; image i uses seed + i. Same seed and settings -> same images (and the same eval report, which records it).")
CANDIDATES = typer.Option(DEFAULTS.candidates, "--candidates", min=1, help="OCR rejection sampling: draw this many candidates per output image and keep the one OCR reads best (needs tesseract when > 1).")
KEEP_ONLY_IF_ABOVE = typer.Option(DEFAULTS.keep_only_if_above, "--keep-only-if-above", min=0.0, max=1.0, callback=finite, help="Rejection sampling: if the best candidate's OCR similarity reaches this, keep only candidates at or above it.")
DELETE_UNDER = typer.Option(DEFAULTS.delete_under, "--delete-under", min=0.0, max=1.0, callback=finite, help="Rejection sampling: otherwise drop candidates under this similarity (never all).")
SR_STEPS = typer.Option(DEFAULTS.sr_steps, "--sr-steps", min=1, help="Denoising steps of the SR model (default: --steps).")
SR_START = typer.Option(DEFAULTS.sr_start, "--sr-start", min=0.0, max=1.0, callback=finite, help="Where the SR chain starts: the low-res image upsampled bicubically and noised to this fraction of the timesteps (1 = from pure noise).")
SR_GUIDANCE = typer.Option(DEFAULTS.sr_guidance, "--sr-guidance", callback=finite, help="Classifier-free guidance scale of the SR model.")
COLOUR = typer.Option(False, "--colour", "--color", help="Draw a colour picture with the packaged painter: the packaged grey model writes the text, the painter paints a scene of --style around it. Implied by --style, --text-color or --background-color when no --checkpoint is given.")


def wants_colour(colour: bool, checkpoint, *controls) -> bool:
    """``--colour``, or (no checkpoint given) any scene control: the packaged painter is wanted."""
    return colour or (checkpoint is None and any(control is not None for control in controls))


GLYPHS = typer.Option("model", "--glyphs", help="A painter's glyphs (a glyph-guided checkpoint such as paint128): model (a grey text model, the packaged one or --glyph-checkpoint, writes the text, best of --candidates by OCR, and the painter paints around its ink) or typeset (the font renderer draws the ink exactly).")
NO_ANCHOR_INK = typer.Option(False, "--no-anchor-ink", help="Painters: leave every pixel to the painter (default: the ink and a halo held to two legible tones it chose).")
GLYPH_CHECKPOINT = typer.Option(None, "--glyph-checkpoint", help="The grey model that writes a painter's glyphs (--glyphs model). Default: the packaged model.")
STYLE = typer.Option(None, "--style", help="Colour models: the kind of picture: plain, gradient, sign, caption, paper, screen (default: drawn at random per image).")
TEXT_COLOR = typer.Option(None, "--text-color", help="Colour models: the text's colour, a name (red, navy, ...) or #RRGGBB (default: the model's choice).")
BACKGROUND_COLOR = typer.Option(None, "--background-color", help="Colour models: the colour behind the text (the panel, paper or flat colour), a name or #RRGGBB (default: the model's choice).")
BATCH_SIZE = typer.Option(DEFAULTS.batch_size, "--batch-size", min=1, help="Images per forward pass.")
DEVICE = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps")
OCR_PROCESSES = typer.Option(None, "--ocr-processes", min=1, help="Tesseract processes run in parallel (default: CPU count).")


# Every long-running command takes it (the training commands through their TrainingOption).
NO_PROGRESS = typer.Option(False, "--no-progress", help="No progress bar (for logs and scripts; errors and results are still printed).")
