"""Training super-resolution models: their training pairs, their sample grids and ``train-sr``.

An SR model learns to draw a target image given its low-res version. Each training target is
area-downsampled to the low-res size, optionally blurred lightly, and noise-augmented with a
per-sample level (the formula is :func:`glyphfuse.core.diffusion.augment_low_res`; the model is
told the level). :func:`train_sr` runs the shared trainer (:mod:`glyphfuse.training.loop`) with two
hooks: :func:`sr_model_inputs` (that conditioning, for every micro-batch) and
:func:`sr_preview` (sample grids of low-res input | SR output | ground truth).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from glyphfuse.training.batches import open_training_data
from glyphfuse.core.checkpoint import load_checkpoint_config, load_weights_into
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.diffusion import augment_low_res
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.images import make_grid, tensor_to_pil
from glyphfuse.data.imagefolder import ImageTextDataset
from glyphfuse.data.prompts import DEFAULT_SAMPLE_PROMPTS
from glyphfuse.training.run_folder import find_latest_checkpoint
from glyphfuse.sampling.settings import DEFAULT_SR_START
from glyphfuse.sampling.sr import upsample_with_sr
from glyphfuse.training.loop import InitModel, ModelInputs, Preview, TrainResult, config_for_run, train
from glyphfuse.training.config import TrainConfig


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample separable Gaussian blur. images (B, C, H, W), sigma (B,) in pixels (small)."""
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)  # (K,)
    kernels = torch.exp(-0.5 * (offsets[None] / sigma[:, None].to(images)) ** 2)  # (B, K)
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    batch, channels, height, width = images.shape
    x = images.reshape(1, batch * channels, height, width)
    k = kernels.repeat_interleave(channels, dim=0)  # (B*C, K)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k[:, None, None, :], groups=batch * channels)  # along W
    x = F.conv2d(x, k[:, None, :, None], groups=batch * channels)  # along H
    return x.reshape(batch, channels, height, width)


def prepare_super_resolution_batch(
    images: torch.Tensor, low_res_size: int, noise_max: float, generator: torch.Generator, *, blur: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make the SR conditioning for targets ``images`` (B, C, H, W): area-downsample to
    ``low_res_size``, optionally blur lightly (sigma ~ U(0.4, 0.6) per sample, as the original),
    then noise-augment with level ~ U(0, noise_max) per sample.
    Returns (low_res (B, C, low_res_size, low_res_size), level (B,)). ``generator`` is a CPU
    generator; all draws come from it, so the result is reproducible on any device."""
    batch = images.shape[0]
    low_res = F.interpolate(images, size=(low_res_size, low_res_size), mode="area")
    if blur:
        sigma = 0.4 + 0.2 * torch.rand(batch, generator=generator)
        low_res = _gaussian_blur(low_res, sigma.to(low_res.device))
    level = noise_max * torch.rand(batch, generator=generator)  # (B,)
    noise = torch.randn(low_res.shape, generator=generator).to(low_res)
    return augment_low_res(low_res, level.to(low_res.device), noise), level.to(images.device)


def make_low_res(images: torch.Tensor, low_res_size: int, *, blur: bool = False, seed: int = 0) -> torch.Tensor:
    """The clean (no noise augmentation) SR conditioning of targets (B, C, H, W): the trainer's
    area downsampling and optional light blur."""
    low_res, _ = prepare_super_resolution_batch(images, low_res_size, 0.0, torch.Generator().manual_seed(seed), blur=blur)
    return low_res


def sr_sample_grid(model: nn.Module, config: ModelConfig, images: torch.Tensor, texts: Sequence[str], *, steps: int, guidance: float, seed: int, blur: bool = False,
                   start: float = DEFAULT_SR_START, device=None) -> Image.Image:
    """A PIL grid with one row per example: low-res input (nearest-upscaled) | SR output | ground truth.
    ``start``: where the SR chain starts (SamplingSettings.sr_start)."""
    low_res = make_low_res(images, config.low_res_size, blur=blur, seed=seed)
    upsampled = upsample_with_sr(model, config, list(texts), low_res, steps=steps, seed=seed, guidance=guidance, start=start, device=device)
    shown_low = F.interpolate(low_res, size=images.shape[-2:], mode="nearest")
    pictures = []
    for low, sr, truth in zip(shown_low, upsampled, images):
        pictures += [tensor_to_pil(low), tensor_to_pil(sr), tensor_to_pil(truth.cpu())]
    return make_grid(pictures, columns=3)


def sr_sample_examples(dataset: ImageTextDataset, count: int) -> tuple[torch.Tensor, list[str]]:
    """The first ``count`` examples of a training dataset as (images (B, C, H, W), texts): the
    fixed ground truth of the SR sample grids."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    return torch.stack([image for image, *_ in items]), [text for _, text, *_ in items]


# ---------------------------------------------------------------------------------------------
# train-sr: the shared trainer with the SR hooks, initialised from a warm-started SR checkpoint
# ---------------------------------------------------------------------------------------------


def sr_model_inputs(model_config: ModelConfig, *, blur: bool = False) -> ModelInputs:
    """The trainer's ``model_inputs`` hook for an SR model: each micro-batch's low-res
    conditioning and its noise level (:func:`prepare_super_resolution_batch`)."""

    def model_inputs(images: torch.Tensor, texts: Sequence[str], generator: torch.Generator) -> dict[str, torch.Tensor]:
        low_res, level = prepare_super_resolution_batch(images, model_config.low_res_size, model_config.low_res_noise_max, generator, blur=blur)
        return {"low_res": low_res, "low_res_noise_level": level}

    return model_inputs


def sr_preview(config: TrainConfig, model_config: ModelConfig) -> Preview:
    """The trainer's ``preview`` hook for an SR model: the first training examples (as many as
    there are sample prompts) as rows of low-res | SR output | ground truth. The examples are
    read at the first grid."""
    count = len(config.sample_prompts or DEFAULT_SAMPLE_PROMPTS)
    examples: tuple[torch.Tensor, list[str]] | None = None  # (images (B, C, H, W), texts)

    def preview(ema: nn.Module) -> Image.Image:
        nonlocal examples
        if examples is None:
            examples = sr_sample_examples(open_training_data(config.data, model_config), count)
        truth, texts = examples
        device = next(ema.parameters()).device
        start = min(config.t_max, DEFAULT_SR_START)  # never above the noise levels the run trains on
        return sr_sample_grid(ema, model_config, truth, texts, steps=config.sample_steps, guidance=config.sample_guidance, seed=config.seed, blur=config.sr_blur,
                              start=start, device=device)

    return preview


def init_from_checkpoint(path: str | Path) -> InitModel:
    """An ``init_model`` hook for :func:`glyphfuse.training.loop.train` that loads the weights of the
    checkpoint folder ``path`` (e.g. made by ``glyphfuse warm-start``) into the fresh model."""
    return functools.partial(load_weights_into, path=path)


def train_sr(data, out, *, init=None, model: str | None = None, config_file=None, overrides: dict | None = None, resume: bool | None = None, **train_kwargs) -> TrainResult:
    """Train a super-resolution model on the image folder ``data`` into the run folder ``out``
    with the shared trainer (resume, torchrun, EMA, checkpoints; sample grids show low-res input |
    SR output | ground truth).

    init: SR checkpoint folder to start from (``glyphfuse warm-start``); its config is the model.
    model: instead, an SR ModelConfig JSON file (or preset, e.g. sr256) trained from random init.
    A run folder that already has a checkpoint resumes it; ``init`` is then not loaded again.
    ``train_kwargs`` go to :func:`glyphfuse.training.loop.train` (e.g. ``on_step``).
    """
    overrides = dict(overrides or {})
    init_model = None
    resuming = resume is not False and find_latest_checkpoint(out) is not None
    if init is not None:
        if model is not None:
            raise GlyphfuseError("give either --init SR_CKPT or --model, not both")
        init_config = load_checkpoint_config(init)
        if not init_config.is_super_resolution:
            raise GlyphfuseError(f"{init}: {init_config.name!r} is not a super-resolution checkpoint; make one with glyphfuse warm-start BASE_CKPT --out SR_CKPT")
        overrides["model"] = init_config.to_dict()
        init_model = init_from_checkpoint(init)
    elif model is None and not resuming:
        raise GlyphfuseError(f"{out}: a new SR run needs --init SR_CKPT (from glyphfuse warm-start) or --model SR_CONFIG")
    train_config = config_for_run(data, out, config_file=config_file, model=model, overrides=overrides, resume=resume)
    model_config = train_config.model_config()
    if not model_config.is_super_resolution:
        raise GlyphfuseError(f"model {model_config.name!r} is not a super-resolution model; train-sr needs one (train base models with train-base)")
    return train(
        train_config, out, resume=resume, init_model=init_model,
        model_inputs=sr_model_inputs(model_config, blur=train_config.sr_blur), preview=sr_preview(train_config, model_config), **train_kwargs,
    )
