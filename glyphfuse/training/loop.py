"""The training loop: one loop for every model; what is special about a model comes in as hooks.

``train(config, run_dir)`` trains a :class:`~glyphfuse.core.model.GlyphModel` on an image folder
and leaves a run folder (:mod:`glyphfuse.training.run_folder`: run.json, metrics, samples, checkpoints).

* **Exact resume.** The data order depends only on (seed, epoch) and is taken by position
  (:mod:`glyphfuse.training.batches`); all per-step randomness (text dropout, extra model inputs,
  timesteps, noise, dropout layers) comes from generators seeded by (seed, step, rank,
  micro-batch); learning rate and EMA decay are functions of the step.
* **SIGINT / SIGTERM** finish the step, write a checkpoint and return (``TrainResult.interrupted``;
  the CLI exits 130 / 143). **NaN / inf loss** stops with a GlyphfuseError naming the step,
  before the optimizer applies the bad gradients.
* **torchrun**: each rank trains on its shard of every epoch with DistributedDataParallel;
  rank 0 writes checkpoints, logs and samples.

Hooks (the loop passes extra model inputs through without knowing what they are):
``model_inputs(images, texts, generator) -> {name: tensor}`` builds keyword inputs for the model from
each micro-batch's images (B, C, H, W) and transcripts (None where the text was dropped for guidance),
drawing only from the CPU ``generator`` (exact resume);
its entry :data:`LOSS_WEIGHT`, if any, is not a model input but the per-pixel weights of the loss;
``preview(ema_model) -> PIL image`` draws the sample grids (default :func:`prompt_grid_preview`).
Super-resolution models get both from :func:`glyphfuse.training.sr.train_sr`, inpainting models
their masks from :func:`glyphfuse.training.inpaint.train_inpaint`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from PIL import Image

from glyphfuse.training import run_folder
from glyphfuse.training.batches import batch_stream, derived_seed, open_training_data
from glyphfuse.core import distributed
from glyphfuse.core.checkpoint import load_checkpoint, load_checkpoint_config, parameter_counts
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.controls import training_controls
from glyphfuse.core.device import autocast_dtype
from glyphfuse.core.diffusion import GaussianDiffusion
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.images import make_grid, tensor_to_pil
from glyphfuse.core.model import GlyphModel
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.data.imagefolder import ImageTextDataset, problem_summary
from glyphfuse.data.prompts import DEFAULT_SAMPLE_PROMPTS
from glyphfuse.training.run_folder import RunLock, find_latest_checkpoint
from glyphfuse.sampling.generation import generate
from glyphfuse.sampling.inputs import check_prompt_lengths
from glyphfuse.training.progress import TrainProgress
from glyphfuse.training.signals import StopSignals
from glyphfuse.training.spikes import SpikeGuard
from glyphfuse.training.config import TrainConfig, build_train_config

__all__ = ["TrainConfig", "TrainResult", "TrainLoop", "build_train_config", "config_for_run", "prompt_grid_preview", "train"]

# Larger models are refused before anything is allocated (a mistyped or hostile model config): 2e9
MAX_PARAMETERS = 2_000_000_000  # parameters are 8 GB of fp32 weights plus 16 GB of AdamW state
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}

ModelInputs = Callable[[torch.Tensor, list[str], torch.Generator], dict[str, torch.Tensor]]  # (images, texts, generator) -> model kwargs
LOSS_WEIGHT = "loss_weight"  # a model_inputs entry that is not a model input: per-pixel loss weights (B, 1, H, W)
Preview = Callable[[torch.nn.Module], Image.Image]  # EMA model -> sample grid
InitModel = Callable[[torch.nn.Module], None]  # fills a fresh model (warm start)
OnStep = Callable[[int, dict[str, float]], None]  # (step, {"loss", "lr"})


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    step: int  # optimizer steps done in total
    checkpoint: Path | None  # the newest complete checkpoint folder
    interrupted: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run
    last_loss: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) of this call, rank 0
    model: torch.nn.Module | None = field(default=None, repr=False)  # the raw (non-EMA) model
    ema: torch.nn.Module | None = field(default=None, repr=False)  # the EMA model (what is sampled)

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_CODES.get(self.interrupted or "", 0)


def config_for_run(data: str | Path | None, run_dir: str | Path, *, config_file: str | Path | None = None, model: str | None = None,
                   overrides: dict[str, Any] | None = None, resume: bool | None = None) -> TrainConfig:
    """The TrainConfig for a (new or resumed) run folder, as the CLI builds it: a resumed run
    starts from its saved run.json, so only the options given again change anything (e.g. a
    larger --steps); a new run starts from the defaults. Then ``config_file``, ``model`` and the
    non-None ``overrides`` apply (see build_train_config)."""
    saved = run_folder.run_config_path(run_dir)
    base = None
    if resume is not False and saved.is_file() and find_latest_checkpoint(run_dir) is not None:
        base = TrainConfig.load(saved)
    return build_train_config(data, base=base, config_file=config_file, model=model, overrides=overrides)


def prompt_grid_preview(config: TrainConfig, model_config: ModelConfig, inputs: Callable[[list[str]], dict] | None = None) -> Preview:
    """The default sample grid: the EMA model draws ``config.sample_prompts`` (default
    DEFAULT_SAMPLE_PROMPTS), four a row. The prompts' lengths are checked now, not at the first
    grid hours later. ``inputs(prompts)``: extra keyword inputs of ``generate`` (a glyph-guided
    model's glyphs), built once here."""
    prompts = list(config.sample_prompts) if config.sample_prompts else list(DEFAULT_SAMPLE_PROMPTS)
    check_prompt_lengths(prompts, model_config)
    extra = inputs(prompts) if inputs is not None else {}

    def preview(ema: torch.nn.Module) -> Image.Image:
        images = generate(ema, model_config, prompts, steps=config.sample_steps, guidance=config.sample_guidance, seed=config.seed, **extra)
        return make_grid([tensor_to_pil(image) for image in images], columns=min(4, len(prompts)))

    return preview


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool | None = None, on_step: OnStep | None = None,
          init_model: InitModel | None = None, model_inputs: ModelInputs | None = None, preview: Preview | None = None) -> TrainResult:
    """Train ``config`` into ``run_dir`` until ``config.max_steps`` optimizer steps are done.

    resume: None = continue from ``checkpoints/latest`` when there is one (the usual case);
        True = require one; False = refuse a run folder that already has checkpoints.
    on_step(step, metrics): called on every rank after every optimizer step (metrics: loss, lr).
    init_model(model): called once on a fresh run before the EMA copy is taken (warm start).
    model_inputs, preview: the hooks of the module docstring. Without ``preview`` a model with
        no extra inputs gets :func:`prompt_grid_preview`, any other no sample grids.
    """
    config.validate()
    run_dir = Path(run_dir)
    model_config = config.model_config()
    check_trainable(model_config, model_inputs)
    dist, device = distributed.setup(config.device)
    lock = RunLock(run_dir) if dist.is_main else None  # one trainer per run folder (rank 0 holds it)
    loop: TrainLoop | None = None
    try:
        if lock is not None:
            lock.acquire()
        if dist.is_main:
            find_latest_checkpoint(run_dir, repair=True)  # one process puts back what a killed write moved aside
        dist.barrier()
        latest = run_folder.resume_checkpoint(run_dir, resume)
        dataset = open_training_data(config.data, model_config)
        if len(dataset) // dist.world_size < config.batch_size:
            raise GlyphfuseError(
                f"{config.data}: {len(dataset)} usable example(s) is fewer than batch size {config.batch_size} x {dist.world_size} process(es)"
            )
        if dist.is_main:
            run_folder.make_run_dir(run_dir)
            run_folder.write_problems(run_dir, dataset.problems)
        dist.barrier()
        if preview is None and model_inputs is None and config.sample_every:
            preview = prompt_grid_preview(config, model_config)
        loop = TrainLoop(config, run_dir, dist, device, dataset, latest, init_model=init_model, model_inputs=model_inputs, preview=preview, on_step=on_step)
        loop.start(latest, lock)
        return loop.run()
    finally:
        if loop is not None and loop.progress is not None:
            loop.progress.bar.stop()
        if lock is not None:
            lock.release()
        distributed.shutdown(dist)


def check_trainable(model_config: ModelConfig, model_inputs: ModelInputs | None) -> None:
    """Refuse, before anything is allocated, a model too large to train and a super-resolution
    or inpainting model without its extra inputs."""
    parameters = parameter_counts(model_config)["total"]
    if parameters > MAX_PARAMETERS:
        raise GlyphfuseError(f"model {model_config.name!r} has {parameters / 1e9:.1f}B parameters, more than glyphfuse trains ({MAX_PARAMETERS / 1e9:.0f}B); check its config")
    if model_config.is_super_resolution and model_inputs is None:
        raise GlyphfuseError(f"model {model_config.name!r} is a super-resolution model and needs its low-res inputs: train it with glyphfuse.training.sr.train_sr (glyphfuse train-sr)")
    if model_config.inpaint and model_inputs is None:
        raise GlyphfuseError(f"model {model_config.name!r} is an inpainting model and needs its masks: train it with glyphfuse.training.inpaint.train_inpaint (glyphfuse train-inpaint)")


class TrainLoop:
    """One run in progress: the model, its EMA and AdamW, fresh (seeded by config.seed, then
    ``init_model``) or restored from the checkpoint ``latest`` with its step and data position;
    the batch stream and the bookkeeping. :func:`train` calls ``start`` and ``run``."""

    def __init__(self, config: TrainConfig, run_dir: Path, dist: distributed.Distributed, device: torch.device, dataset: ImageTextDataset,
                 latest: Path | None, *, init_model: InitModel | None = None, model_inputs: ModelInputs | None = None,
                 preview: Preview | None = None, on_step: OnStep | None = None):
        self.config, self.model_config, self.run_dir, self.dist, self.device = config, config.model_config(), run_dir, dist, device
        self.dataset, self.model_inputs, self.preview, self.on_step = dataset, model_inputs, preview, on_step
        self.progress: TrainProgress | None = None  # set by start()
        torch.manual_seed(config.seed)
        self.model = GlyphModel(self.model_config).to(device)
        betas = (config.adam_beta1, config.adam_beta2)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, betas=betas, weight_decay=config.weight_decay)
        self.step, self.position = 0, (0, 0)  # position: (epoch, index) of the next batch
        self.guard = SpikeGuard()
        if latest is not None:
            if load_checkpoint_config(latest).to_dict() != self.model_config.to_dict():
                raise GlyphfuseError(f"{latest}: the checkpoint's model config differs from this run's model ({self.model_config.name}); use another output folder")
            self.step, epoch, index, loop_state = run_folder.restore_training_state(latest, self.model, self.optimizer, device)
            self.position = (epoch, index)
            self.guard = SpikeGuard.from_dict(loop_state)
            self.ema, _ = load_checkpoint(latest, device=device)
        else:
            if init_model is not None:
                init_model(self.model)
            self.ema = copy.deepcopy(self.model)
        self.ema.eval().requires_grad_(False)
        self.parameters, self.ema_parameters = list(self.model.parameters()), list(self.ema.parameters())  # for every step's update
        self.net = dist.wrap(self.model, device)
        if config.compile:
            self.net = torch.compile(self.net)
        self.diffusion = GaussianDiffusion(self.model_config.diffusion)
        self.amp_dtype = autocast_dtype(device)
        self.checkpoint_step = self.step if latest is not None else -1  # the step the newest checkpoint holds
        self.result = TrainResult(run_dir=run_dir, step=self.step, checkpoint=latest, model=self.model, ema=self.ema)

    def start(self, latest: Path | None, lock: RunLock | None) -> None:
        """Rank 0 writes run.json (and drops the metrics rows a killed run logged after
        ``latest``) and says what is about to happen; every rank sets up its progress."""
        config, run_dir, dist = self.config, self.run_dir, self.dist
        if dist.is_main:
            run_folder.write_run_config(run_dir, config)
            if latest is not None:
                run_folder.truncate_metrics(run_dir, self.step)
        images_per_step = config.batch_size * config.grad_accum * dist.world_size
        self.progress = TrainProgress(dist.is_main, config, self.step, images_per_step)
        self.problems_at_start = self.problems_shown = len(self.dataset.problems)
        if not dist.is_main:
            return
        say, problems = self.progress.bar.print, self.dataset.problems
        if lock.stale:
            say(f"note: the previous trainer of {run_dir} ({lock.stale}) did not exit cleanly (crashed or killed); took over its stale lock")
        if lock.unlocked:
            say(f"warning: {lock.unlocked}; nothing stops a second trainer on {run_dir}")
        if latest is not None:
            say(f"resuming {run_dir} from step {self.step} ({latest})")
        if problems:
            say(f"skipped {len(problems)} unusable file(s) in {config.data} ({problem_summary(problems)}; listed in {run_dir / run_folder.PROBLEMS}); first: {problems[0]}")
        say(f"training {self.model_config.name} on {len(self.dataset)} examples, {dist.world_size} process(es) on {self.device}, "
            f"{images_per_step} images/step, steps {self.step}->{config.max_steps}")

    def run(self) -> TrainResult:
        """Train until config.max_steps (or a stop signal), checkpointing and sampling on the way."""
        config, dist = self.config, self.dist
        stream = batch_stream(
            self.dataset, batch_size=config.batch_size, seed=config.seed, epoch=self.position[0], index=self.position[1],
            rank=dist.rank, world_size=dist.world_size, num_workers=config.num_workers, pin_memory=self.device.type == "cuda",
        )
        with StopSignals() as signals:
            self.model.train()
            while self.step < config.max_steps:
                started = time.perf_counter()
                lr = config.lr_at(self.step)
                loss, stop_signal = self.optimizer_step(stream, lr, signals)
                self.step += 1
                self.record(loss, lr, time.perf_counter() - started)
                if self.on_step is not None:
                    self.on_step(self.step, {"loss": loss, "lr": lr})
                # single process: also honour a signal that arrived during this step's bookkeeping
                # (with several ranks only the all-reduced flag is safe: all ranks must agree)
                if stop_signal or (not dist.enabled and signals.received):
                    self.save()
                    self.result.interrupted = signals.received or "SIGTERM"
                    return self.finish(f"stopped by {self.result.interrupted} at step {self.step}; checkpoint {self.result.checkpoint}; run the same command again to resume")
                if config.checkpoint_every and self.step % config.checkpoint_every == 0 and self.step < config.max_steps:
                    self.save()
                if dist.is_main and self.preview is not None and config.sample_every and self.step % config.sample_every == 0:
                    run_folder.write_sample_grid(self.run_dir, self.step, self.preview(self.ema))
                    self.model.train()
        if self.checkpoint_step != self.step:
            self.save()
        return self.finish(f"done: step {self.step}, checkpoint {self.result.checkpoint}")

    def optimizer_step(self, stream: Iterator, lr: float, signals: StopSignals) -> tuple[float, bool]:
        """One optimizer step over ``grad_accum`` micro-batches: (the loss averaged over all
        ranks, whether any rank received a stop signal)."""
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(config.grad_accum):
            images, texts, controls, *position = next(stream)
            loss_sum += self.micro_batch(images, texts, controls, micro)
            self.position = tuple(position)
        # One small all-reduce: the mean loss (NaN check on every rank) and the stop flag.
        stats = torch.stack([loss_sum, torch.tensor(1.0 if signals.received else 0.0, device=self.device)])
        stats = self.dist.all_reduce_sum(stats).tolist()
        loss = stats[0] / self.dist.world_size
        if not math.isfinite(loss):
            raise GlyphfuseError(f"training loss became {loss} at step {self.step + 1} in {self.run_dir}; stopped without saving this state; {self.last_checkpoint()}")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.parameters, config.grad_clip if config.grad_clip > 0 else math.inf))
        if self.guard.accepts(grad_norm, config.spike_skip):
            self.optimizer.step()
            update_ema(self.ema_parameters, self.parameters, config.ema_decay_at(self.step))
        elif self.dist.is_main and self.progress is not None:
            self.progress.bar.print(f"step {self.step + 1}: gradient norm {grad_norm:.3g} is {grad_norm / self.guard.average:.1f}x the running average; update skipped ({self.guard.skipped} so far)")
        return loss, stats[1] > 0

    def micro_batch(self, images: torch.Tensor, texts: list[str], controls: list, micro: int) -> torch.Tensor:
        """Forward and backward of one micro-batch; returns its detached loss / grad_accum. Draws, in
        order: text dropout, ``model_inputs``, (colour models) control dropout, from a CPU generator; the
        timesteps and noise from one on the device; dropout layers from the global seed."""
        config, text_config, seeds = self.config, self.model_config.text, (self.config.seed, self.step, self.dist.rank, micro)
        generator = torch.Generator().manual_seed(derived_seed(*seeds, 1))
        noise_generator = torch.Generator(device=self.device).manual_seed(derived_seed(*seeds, 2))
        torch.manual_seed(derived_seed(*seeds, 3))  # dropout layers
        images = images.to(self.device, non_blocking=True)  # (B, C, H, W) in [-1, 1]
        dropped = torch.rand(len(texts), generator=generator) < config.text_dropout
        kept: list[str | None] = [None if drop else text for drop, text in zip(dropped.tolist(), texts)]  # None = guidance null input
        extra = self.model_inputs(images, kept, generator) if self.model_inputs is not None else {}
        weight = extra.pop(LOSS_WEIGHT, None)  # (B, 1, H, W): a hook's per-pixel loss weights, not a model input
        if self.model_config.scene_kinds:  # a colour model: its scene controls, some dropped
            extra["controls"] = training_controls(controls, dropped.tolist(), generator, config.control_dropout, self.model_config.scene_kinds).to(self.device)
        text = tokenize(kept, text_config.max_length, max_lines=text_config.max_lines).to(self.device)

        def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x_t, t, text, **extra)

        sync = contextlib.nullcontext()
        if self.dist.enabled and micro < config.grad_accum - 1 and hasattr(self.net, "no_sync"):
            sync = self.net.no_sync()  # gradients are all-reduced once, after the last micro-batch
        with sync:
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                loss = self.diffusion.training_loss(model_fn, images, generator=noise_generator, up_to=self.diffusion.timesteps_up_to(config.t_max),
                                                    weight=weight).mean()
            (loss / config.grad_accum).backward()
        return loss.detach().float() / config.grad_accum

    def record(self, loss: float, lr: float, seconds: float) -> None:
        """After a step: the result, and on rank 0 the progress, metrics.jsonl every log_every
        steps and a first note when loading finds unusable images."""
        self.result.step, self.result.last_loss = self.step, loss
        images_per_s = self.progress.step_done(self.step, loss, seconds)
        if not self.dist.is_main:
            return
        self.result.losses.append((self.step, loss))
        found = self.dataset.problems
        if self.problems_shown == self.problems_at_start and len(found) > self.problems_at_start:
            self.problems_shown = len(found)
            self.progress.bar.print(f"skipping unusable images found while loading (first: {found[self.problems_at_start]}); the count follows at the end")
        if self.step % self.config.log_every == 0 or self.step == self.config.max_steps:
            row = {"step": self.step, "loss": self.progress.end_window(), "lr": lr, "images_per_s": images_per_s, "time": time.time(),
                   "grad_norm": self.guard.last, "skipped_steps": self.guard.skipped}
            run_folder.append_metrics(self.run_dir, row)

    def save(self) -> None:
        """A checkpoint of this step (rank 0 writes; all ranks wait for it)."""
        self.dist.barrier()
        if self.dist.is_main:
            try:
                self.result.checkpoint = run_folder.write_checkpoint(
                    self.run_dir, self.step, self.position, self.ema, self.model, self.optimizer, self.model_config, self.config, self.device,
                    loop_state=self.guard.to_dict(),
                )
                run_folder.write_problems(self.run_dir, self.dataset.problems)
            except GlyphfuseError as exc:  # disk full, read-only ...: the previous checkpoint is intact
                raise GlyphfuseError(f"{exc}; training stopped at step {self.step}; {self.last_checkpoint()}") from None
        self.checkpoint_step = self.step
        self.dist.barrier()

    def last_checkpoint(self) -> str:
        """Where a failed run can be resumed from, for its error message."""
        good = find_latest_checkpoint(self.run_dir, repair=False)
        return f"the last good checkpoint is {good}" if good else "no checkpoint was written yet"

    def finish(self, message: str) -> TrainResult:
        """Rank 0 counts the images that loading skipped, then says ``message``; returns the result."""
        if self.dist.is_main:
            found = self.dataset.problems[self.problems_at_start :]
            if found:
                self.progress.bar.print(f"skipped {len(found)} unusable image(s) while training ({problem_summary(found)}; listed in {self.run_dir / run_folder.PROBLEMS})")
            self.progress.bar.print(message)
        return self.result


# -- EMA ----------------------------------------------------------------------------------------


@torch.no_grad()
def update_ema(ema_params: list[torch.Tensor], model_params: list[torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * param, for all parameters at once."""
    torch._foreach_lerp_(ema_params, model_params, 1.0 - decay)
