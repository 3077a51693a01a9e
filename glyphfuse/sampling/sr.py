"""Super-resolution at sampling time: which SR model fits which base model, and upsampling.

    from glyphfuse.sampling.sr import check_sr_compatible, upsample_with_sr
    check_sr_compatible(base_config, sr_config)              # before any sampling
    low = generate(base, base_config, prompts, settings)     # (B, C, 64, 64)
    high = upsample_with_sr(sr, sr_config, prompts, low, settings)  # (B, C, 128, 128)

:func:`check_sr_compatible` is the one home of the base-vs-SR check: the pipeline, ``sample``,
``eval`` and warm start all ask it. The SR model sees the low-res image upsampled bilinearly and
concatenated to its noisy input (GlyphModel does that); here only the shapes are checked and,
optionally, the same noise augmentation as in training is applied to the low-res images
(``sr_low_res_noise``), with that level passed to the model as ``low_res_noise_level``.
The SR chain does not start from pure noise but from the low-res image upsampled bicubically and
noised to the fraction ``sr_start`` of the timesteps: the SR model refines the text the base
wrote (sharper edges, no lattice) instead of redrawing it, which it does less faithfully.
Training SR models is :mod:`glyphfuse.training.sr`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from glyphfuse.sampling import generation
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.diffusion import augment_low_res
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.sampling.settings import SamplingSettings, resolve_settings

# upsample_with_sr's keyword arguments name the SR chain's own values, as they always have:
# steps=, guidance=, low_res_noise= are the settings' sr_steps, sr_guidance, sr_low_res_noise.
SR_KEYWORDS = {"steps": "sr_steps", "guidance": "sr_guidance", "low_res_noise": "sr_low_res_noise", "start": "sr_start"}


def check_sr_compatible(base_config: ModelConfig, sr_config: ModelConfig | None = None, *,
                        base_where: str | None = None, sr_where: str | None = None) -> None:
    """GlyphfuseError unless ``base_config`` is a base model and ``sr_config`` (when given) can
    upsample its images: an SR model whose low-res size is the base image size, the same
    channels and the same text encoder/tokenizer settings (so a prompt means the same tokens to
    both). ``base_where`` / ``sr_where`` name the checkpoints in the message (default: config names)."""
    if base_config.is_super_resolution:
        raise GlyphfuseError(
            f"{base_where or f'model {base_config.name!r}'}: is a super-resolution model; the first stage needs a base model "
            "(an SR checkpoint goes to --sr-checkpoint)"
        )
    base_where = base_where or f"base model {base_config.name!r}"
    if sr_config is None:
        return
    sr_where = sr_where or f"SR model {sr_config.name!r}"
    if not sr_config.is_super_resolution:
        raise GlyphfuseError(f"{sr_where}: is not a super-resolution model (no low_res_size); make one with glyphfuse warm-start")
    if sr_config.low_res_size != base_config.image_size:
        raise GlyphfuseError(
            f"{sr_where}: upsamples {sr_config.low_res_size} px images but {base_where} makes {base_config.image_size} px images"
        )
    if sr_config.channels != base_config.channels:
        raise GlyphfuseError(f"{sr_where}: has {sr_config.channels} image channel(s), {base_where} has {base_config.channels}")
    base_text, sr_text = dataclasses.asdict(base_config.text), dataclasses.asdict(sr_config.text)
    differ = [f"{key} {sr_text[key]} vs {base_text[key]}" for key in base_text if base_text[key] != sr_text.get(key)]
    if differ:
        raise GlyphfuseError(f"{sr_where}: text encoder settings differ from {base_where} ({'; '.join(differ)})")


class _WithLowResNoiseLevel(nn.Module):
    """Passes a fixed low_res_noise_level to an SR model (generation.generate does not)."""

    def __init__(self, model: nn.Module, level: float):
        super().__init__()
        self.model = model
        self.level = float(level)

    def forward(self, x_t, timesteps, text, low_res=None):
        level = torch.full((x_t.shape[0],), self.level, device=x_t.device)
        return self.model(x_t, timesteps, text, low_res=low_res, low_res_noise_level=level)


def noise_low_res(low_res: torch.Tensor, level: float, seed: int) -> torch.Tensor:
    """The training-time noise augmentation at a fixed ``level``; image i's noise comes from a
    generator seeded by (seed, i), so it does not depend on the batch."""
    noise = torch.stack([
        torch.randn(low_res.shape[1:], generator=torch.Generator().manual_seed((int(seed) + i) ^ 0x5EEDF00D)) for i in range(low_res.shape[0])
    ]).to(low_res)
    return augment_low_res(low_res, torch.full((low_res.shape[0],), float(level)), noise)


@torch.no_grad()
def upsample_with_sr(
    sr_model: nn.Module,
    sr_config: ModelConfig,
    prompts: Sequence[str],
    low_res_images: torch.Tensor,
    settings: SamplingSettings | None = None,
    *,
    device: str | torch.device | None = None,
    show_progress: bool = False,
    **overrides,
) -> torch.Tensor:
    """SR images (B, C, S, S) in [-1, 1] for ``low_res_images`` (B, C, s, s) in [-1, 1] and their
    prompts, S = sr_config.image_size, s = sr_config.low_res_size.

    settings: the pipeline's :class:`~glyphfuse.sampling.settings.SamplingSettings`; the SR chain runs
    ``sr_steps`` (default: ``steps``) steps at guidance ``sr_guidance`` with the shared sampler,
    eta, dynamic threshold, batch size and seed (image i's noise comes from seed + i, as in
    generation.generate), and augments the low-res input like training does at level
    ``sr_low_res_noise`` (0 = clean). The chain starts from the bicubic upsample noised to the
    fraction ``sr_start`` of the timesteps (1 = from pure noise). Keyword overrides: ``steps``,
    ``guidance``, ``low_res_noise`` and ``start`` are the SR chain's own (see :data:`SR_KEYWORDS`),
    any other is a field.
    """
    settings = resolve_settings(settings, **{SR_KEYWORDS.get(key, key): value for key, value in overrides.items()})
    if not sr_config.is_super_resolution:
        raise GlyphfuseError(f"model {sr_config.name!r} is not a super-resolution model; it cannot upsample")
    prompts = list(prompts)
    expected = (len(prompts), sr_config.channels, sr_config.low_res_size, sr_config.low_res_size)
    if low_res_images.dim() != 4 or tuple(low_res_images.shape) != expected:
        raise GlyphfuseError(
            f"SR model {sr_config.name!r}: low-res images have shape {tuple(low_res_images.shape)}, expected {expected} "
            f"({len(prompts)} prompt(s), {sr_config.channels} channel(s), {sr_config.low_res_size} px)"
        )
    low_res = low_res_images.float().clamp(-1, 1)
    start = None
    if settings.sr_start < 1.0:
        size = (sr_config.image_size, sr_config.image_size)
        start = F.interpolate(low_res, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)  # (B, C, S, S)
    model = sr_model
    if settings.sr_low_res_noise > 0:
        low_res = noise_low_res(low_res, settings.sr_low_res_noise, settings.seed)
        model = _WithLowResNoiseLevel(sr_model, settings.sr_low_res_noise)
    return generation.generate(model, sr_config, prompts, settings.sr_stage(), low_res=low_res, start_images=start,
                               start_fraction=settings.sr_start, device=device, show_progress=show_progress)
