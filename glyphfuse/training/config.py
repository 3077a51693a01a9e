"""Training configuration: one dataclass that round-trips through JSON (a run's ``run.json``).

Kept apart from :mod:`glyphfuse.training.loop` so the CLI and other tools can read and write training
configs without importing the training loop.

Batch arithmetic: ``batch_size`` is the per-process micro-batch. One optimizer step sees
``batch_size * grad_accum * world_size`` images (world_size = number of torchrun processes).

Learning rate: linear warm-up from 0 to ``lr`` over ``warmup_steps``, then ``lr_schedule``:
``constant`` (the default: open-ended training, and resuming with a larger ``--steps`` changes
nothing that is done) or ``cosine`` (half a cosine from ``lr`` down to ``lr * min_lr_ratio`` at
``max_steps``: a planned run of known length, which ends on small steps; a larger ``--steps``
on resume stretches the rest of the curve).

Spike guard: with ``spike_skip`` > 0, an optimizer step whose gradient norm is more than
``spike_skip`` times the running average of the accepted steps' norms is skipped (its data is
still consumed, so the run stays exact on resume). One outlier batch then cannot throw AdamW's
moments and the weights off: a 128 px run at constant lr 2e-3 once jumped from loss 0.03 to 0.75
and never came back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glyphfuse.core.config import MAX_SEED, PRESETS, ModelConfig, load_model_config
from glyphfuse.core.json_config import JsonConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import read_json


# Bounds that keep a mistyped value from asking for a million worker processes or batches that
# no machine holds.
UPPER_LIMITS = {"batch_size": 65536, "grad_accum": 65536, "num_workers": 256, "sample_steps": 100_000}
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig(JsonConfig):
    KIND = "training config"  # in messages (JsonConfig)

    # what to train on what
    model: str | dict = "base64"  # preset name or a ModelConfig dict (a JSON file path is read by from_user)
    data: str = ""  # image folder: name.png + name.txt pairs and/or metadata.jsonl
    # optimisation
    batch_size: int = 32  # per process, per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-4
    warmup_steps: int = 1000
    lr_schedule: str = "constant"  # after warm-up: "constant" | "cosine" (down to lr * min_lr_ratio at max_steps)
    min_lr_ratio: float = 0.1  # cosine only
    spike_skip: float = 0.0  # skip a step whose gradient norm exceeds this many times the running average (0 = off)
    max_steps: int = 100_000
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: float = 0.9999  # effective decay at step s: min(ema_decay, (1 + s) / (10 + s))
    text_dropout: float = 0.1  # probability of replacing a transcript by the guidance null input
    control_dropout: float = 0.2  # colour models: probability of dropping each scene control (kind, colours)
    t_max: float = 1.0  # train on the least noisy fraction of the timesteps only (an SR model sampled with sr_start <= t_max)
    # super-resolution batch preparation (ignored for base models)
    sr_blur: bool = False  # light Gaussian blur (sigma ~ U(0.4, 0.6)) of the low-res input
    # machinery
    num_workers: int = 2  # DataLoader worker processes (0 = load in the training process)
    compile: bool = False  # torch.compile the model
    seed: int = 0
    device: str = "auto"
    # outputs
    checkpoint_every: int = 1000  # steps; a checkpoint is also written at the end and on SIGINT/SIGTERM
    keep_last: int = 3  # step checkpoints kept (0 = keep all)
    sample_every: int = 1000  # steps between sample grids (0 = never)
    sample_prompts: list[str] | None = None  # None = DEFAULT_SAMPLE_PROMPTS
    sample_steps: int = 20  # DDIM steps for the sample grids
    sample_guidance: float = 3.0
    log_every: int = 50  # steps between metrics.jsonl rows / non-TTY progress lines
    progress: bool = True  # rich progress display on a terminal (rank 0)

    # -- checks and derived values ------------------------------------------------------------

    def validate(self, where: str = "training config") -> None:
        for name, high in UPPER_LIMITS.items():
            if getattr(self, name) > high:
                raise GlyphfuseError(f"{where}: {name} {getattr(self, name)} is more than the sane maximum {high}")
        for name in ("lr", "weight_decay", "adam_beta1", "adam_beta2", "grad_clip", "ema_decay", "text_dropout", "control_dropout", "t_max", "sample_guidance", "min_lr_ratio", "spike_skip"):
            if not math.isfinite(getattr(self, name)):
                raise GlyphfuseError(f"{where}: {name} must be a finite number, got {getattr(self, name)}")
        if not 0 <= self.seed <= MAX_SEED:
            raise GlyphfuseError(f"{where}: seed must be between 0 and {MAX_SEED}, got {self.seed}")
        positive = ("batch_size", "grad_accum", "max_steps")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise GlyphfuseError(f"{where}: {name} must be >= 1, got {getattr(self, name)}")
        non_negative = ("warmup_steps", "checkpoint_every", "keep_last", "sample_every", "num_workers", "grad_clip", "weight_decay")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise GlyphfuseError(f"{where}: {name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise GlyphfuseError(f"{where}: lr must be > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise GlyphfuseError(f"{where}: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise GlyphfuseError(f"{where}: min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.spike_skip != 0 and not self.spike_skip > 1.0:
            raise GlyphfuseError(f"{where}: spike_skip must be 0 (off) or more than 1, got {self.spike_skip}")
        if not 0.0 < self.t_max <= 1.0:
            raise GlyphfuseError(f"{where}: t_max must be a fraction of the timesteps in (0, 1], got {self.t_max}")
        for name in ("text_dropout", "control_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise GlyphfuseError(f"{where}: {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise GlyphfuseError(f"{where}: ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.log_every < 1:
            raise GlyphfuseError(f"{where}: log_every must be >= 1, got {self.log_every}")
        if self.sample_steps < 1:
            raise GlyphfuseError(f"{where}: sample_steps must be >= 1, got {self.sample_steps}")

    def model_config(self) -> ModelConfig:
        """The ModelConfig this run trains: a preset by name, a JSON file path, or an inline dict."""
        if isinstance(self.model, dict):
            return ModelConfig.from_dict(self.model)
        return load_model_config(self.model)

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based): linear warm-up, then constant or
        half a cosine down to ``lr * min_lr_ratio`` at ``max_steps``."""
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        decay_steps = max(1, self.max_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        floor = self.lr * self.min_lr_ratio
        return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def ema_decay_at(self, step: int) -> float:
        """EMA decay after optimizer step ``step`` (0-based): small early on so the EMA forgets
        the random initialisation quickly, then ``ema_decay``."""
        return min(self.ema_decay, (1.0 + step) / (10.0 + step))


def build_train_config(
    data: str | Path | None,
    *,
    base: TrainConfig | None = None,
    config_file: str | Path | None = None,
    model: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a training config from layers, later ones winning:
    ``base`` (defaults, or a resumed run's run.json) < ``config_file`` (a TrainConfig JSON, may be
    partial) < ``model`` (preset name or ModelConfig JSON path) < ``overrides`` (entries whose value
    is None are ignored: flags the user did not give) < ``data``.

    A model given as a file path is read here and stored inline, so run.json is self-contained.
    """
    values = (base or TrainConfig()).to_dict()
    if config_file is not None:
        loaded = read_json(config_file, "training config file")
        if not isinstance(loaded, dict):
            raise GlyphfuseError(f"{config_file}: expected a JSON object")
        values.update(loaded)
    if model is not None:
        values["model"] = model
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if data is not None:
        values["data"] = str(data)
    if isinstance(values.get("model"), str) and values["model"] not in PRESETS:
        values["model"] = load_model_config(values["model"]).to_dict()
    config = TrainConfig.from_dict(values, where=str(config_file or "training config"))
    config.model_config()  # fail early on a bad model spec
    return config
