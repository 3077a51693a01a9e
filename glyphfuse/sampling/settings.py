"""Sampling settings: one dataclass for how images are drawn, from the command line to the sampler.

    from glyphfuse.sampling.settings import SamplingSettings
    settings = SamplingSettings(steps=20, candidates=4)        # every other field at its default
    settings.validate()                                         # one-line GlyphfuseError if out of range
    SamplingSettings.from_json(settings.to_json()) == settings  # True; loading validates

``glyphfuse sample`` and ``glyphfuse eval`` build one from their options; it goes unchanged through
:func:`glyphfuse.evaluate.run_eval`, :func:`glyphfuse.sampling.pipeline.sample_many`,
:func:`glyphfuse.sampling.generation.generate` and :func:`glyphfuse.sampling.sr.upsample_with_sr`, and the eval report
records its :meth:`~SamplingSettings.to_dict`. Those functions also take the fields as keyword
arguments (``generate(model, config, prompts, steps=20, seed=3)``): :func:`resolve_settings`
puts them into a ``settings`` (or the defaults).

The default sampler and step count are :data:`DEFAULT_SAMPLER` and :data:`DEFAULT_STEPS`, here
and nowhere else: the CLI options and every function default read them from this module.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from glyphfuse.core.config import MAX_SEED, check_sampler
from glyphfuse.core.controls import SceneControls
from glyphfuse.core.json_config import JsonConfig
from glyphfuse.core.errors import GlyphfuseError

# The one place to change the default sampler and step count. Chosen from the measured curve of
# benchmarks/bench_sampler.py on the packaged model (README, "Sampling steps"): DDIM with 8 steps
# (16 U-Net evaluations an image with guidance) writes held-out prompts as well as DDIM with 50.
DEFAULT_SAMPLER = "ddim"
DEFAULT_STEPS = 8
# Where the SR chain starts: the low-res image upsampled bicubically and noised to this fraction of
# the schedule's timesteps, so the SR model refines the base's text instead of redrawing it from
# pure noise (1.0). Chosen from benchmarks/bench_sr.py on the packaged cascade (examples/recipes/README.md,
# lines128): from 0.05 the SR reads within 0.02 of the base on every held-out set and sharpens the
# edges; from 0.1 it loses a little on `cased` and `alnum`, from 1.0 it redraws the text worse.
DEFAULT_SR_START = 0.05


# Bounds that keep a mistyped value from asking for a batch no machine holds or a chain that never
# ends (a candidate is a full image of work; every step is one network call).
UPPER_LIMITS = {"steps": 10_000, "sr_steps": 10_000, "candidates": 1024, "batch_size": 4096}

@dataclass
class SamplingSettings(JsonConfig):
    KIND = "sampling settings"  # in messages (JsonConfig)

    # the base model's chain
    steps: int = DEFAULT_STEPS  # denoising steps, each one network call
    sampler: str = DEFAULT_SAMPLER  # ddim, ddpm or dpmpp-2m (glyphfuse.core.diffusion.SAMPLERS)
    guidance: float = 3.0  # classifier-free guidance scale; 1 = off
    eta: float = 0.0  # DDIM noise: 0 = deterministic, 1 = DDPM-like
    dynamic_threshold: float | None = None  # Imagen percentile of |x0| (e.g. 0.995) instead of clipping
    seed: int = 0  # image i of a call draws its noise from seed + i
    # OCR rejection sampling (glyphfuse.sampling.pipeline, glyphfuse.ocr.ranking.prune_candidates)
    candidates: int = 1  # candidates drawn per output image
    keep_only_if_above: float = 0.8  # if the best similarity reaches this, keep only those at or above it
    delete_under: float = 0.3  # otherwise drop those under this (never all)
    # the super-resolution stage (glyphfuse.sampling.sr)
    sr_steps: int | None = None  # None = steps
    sr_guidance: float = 1.0
    sr_low_res_noise: float = 0.0  # noise augmentation of the low-res input, in [0, 1)
    sr_start: float = DEFAULT_SR_START  # SR chain: start from the bicubic upsample noised to this fraction of the timesteps (1 = pure noise)
    # a colour scene model's controls (glyphfuse.core.controls); None = drawn at random (the kind
    # from seed + i, the colours by the model)
    style: str | None = None  # scene kind: plain, gradient, sign, caption, paper, screen
    text_color: str | None = None  # a colour name or #RRGGBB
    background_color: str | None = None
    # a painter's ink anchoring (glyphfuse.sampling.glyphs.ink_anchor): its picture held to the glyphs in two tones it chose
    anchor_ink: bool = True
    # machinery: no effect on the images (a prompt's image does not depend on its batch)
    batch_size: int = 16  # images per forward pass (x2 rows with guidance)

    # -- checks and derived values ------------------------------------------------------------

    def validate(self, where: str = "", *, options: bool = False) -> None:
        """One-line GlyphfuseError on the first value out of range, naming the field (with
        ``options``: the command-line option, ``--delete-under``), after ``where`` when given."""
        name = _option_name if options else str
        prefix = f"{where}: " if where else ""
        try:
            check_sampler(self.sampler)
        except GlyphfuseError as exc:
            raise GlyphfuseError(f"{prefix}{exc}") from None
        for field in ("guidance", "eta", "sr_guidance", "sr_low_res_noise", "sr_start", "keep_only_if_above", "delete_under"):
            if not math.isfinite(getattr(self, field)):
                raise GlyphfuseError(f"{prefix}{name(field)} must be a finite number, got {getattr(self, field)}")
        for field in ("steps", "candidates", "batch_size", "sr_steps"):
            value = getattr(self, field)
            if value is not None and value < 1:
                raise GlyphfuseError(f"{prefix}{name(field)} must be >= 1, got {value}")
            if value is not None and value > UPPER_LIMITS[field]:
                raise GlyphfuseError(f"{prefix}{name(field)} {value} is more than the sane maximum {UPPER_LIMITS[field]}")
        if not 0 <= self.seed <= MAX_SEED:
            raise GlyphfuseError(f"{prefix}{name('seed')} must be between 0 and {MAX_SEED}, got {self.seed}")
        if self.eta < 0:
            raise GlyphfuseError(f"{prefix}{name('eta')} must be >= 0, got {self.eta}")
        if self.eta > 0 and self.sampler == "dpmpp-2m":
            raise GlyphfuseError(f"{prefix}{name('eta')} is a ddim setting; dpmpp-2m is deterministic (got {name('eta')} {self.eta})")
        if self.dynamic_threshold is not None and not 0.0 < self.dynamic_threshold <= 1.0:
            raise GlyphfuseError(f"{prefix}{name('dynamic_threshold')} must be a percentile in (0, 1], got {self.dynamic_threshold}")
        for field in ("keep_only_if_above", "delete_under"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise GlyphfuseError(f"{prefix}{name(field)} must be a similarity in [0, 1], got {getattr(self, field)}")
        if not 0.0 <= self.sr_low_res_noise < 1.0:
            raise GlyphfuseError(f"{prefix}{name('sr_low_res_noise')} must be in [0, 1), got {self.sr_low_res_noise}")
        if not 0.0 < self.sr_start <= 1.0:
            raise GlyphfuseError(f"{prefix}{name('sr_start')} must be a fraction of the timesteps in (0, 1], got {self.sr_start}")
        try:
            self.controls()
        except GlyphfuseError as exc:
            raise GlyphfuseError(f"{prefix}{exc}") from None

    def controls(self) -> SceneControls:
        """The scene controls these settings ask for (each None when not given)."""
        return SceneControls.from_options(self.style, self.text_color, self.background_color)

    def sr_stage(self) -> "SamplingSettings":
        """The settings of the super-resolution chain: ``sr_steps`` (default: ``steps``) and
        ``sr_guidance`` in place of ``steps`` and ``guidance``, no scene controls (the low-res image
        carries them); everything else shared."""
        return dataclasses.replace(self, steps=self.sr_steps or self.steps, guidance=self.sr_guidance, style=None, text_color=None,
                                   background_color=None)


FIELD_NAMES = tuple(field.name for field in dataclasses.fields(SamplingSettings))


def resolve_settings(settings: SamplingSettings | None = None, **overrides) -> SamplingSettings:
    """``settings`` (default: ``SamplingSettings()``) with the keyword ``overrides`` put in, checked:
    how ``generate(..., steps=20)`` and ``generate(..., settings=s)`` meet. A keyword that is no
    field is a TypeError, as for any function."""
    unknown = sorted(set(overrides) - set(FIELD_NAMES))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}; the sampling settings are {', '.join(FIELD_NAMES)}")
    settings = settings if settings is not None else SamplingSettings()
    if not overrides:
        settings.validate()
        return settings
    return SamplingSettings.from_dict({**settings.to_dict(), **overrides}, where="")


def _option_name(field: str) -> str:
    """The command-line option of a field: ``delete_under`` -> ``--delete-under``."""
    return "--" + field.replace("_", "-")
