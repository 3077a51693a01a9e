"""``glyphfuse train-base``, ``warm-start``, ``train-sr`` and ``train-inpaint``: train models.

The options that the training commands share are declared once, in :data:`TRAINING_OPTIONS`:
one row per flag, naming the TrainConfig field it sets. :func:`training_command` appends them to a
command's own parameters and hands the command ``overrides`` ({field: value, None = not given})
and ``resume``. A new training flag is a TrainConfig field plus one row.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from glyphfuse.cli.app import app
from glyphfuse.cli.options import finite, seed_range
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.prompts import load_prompt_file

BASE, SR, INPAINT = "train-base", "train-sr", "train-inpaint"


def _prompts_of(path: Optional[Path]) -> Optional[list[str]]:
    return load_prompt_file(path) if path is not None else None


def _progress_of(no_progress: bool) -> Optional[bool]:
    return False if no_progress else None


@dataclass(frozen=True)
class TrainingOption:
    """One flag of the training commands."""

    name: str  # the command's parameter
    config_field: Optional[str]  # the TrainConfig field it sets (None: a command argument of its own)
    annotation: Any
    flags: tuple[str, ...]
    help: str | dict[str, str]  # the same for every command, or one text per command
    checks: dict[str, Any] = field(default_factory=dict)  # typer.Option's min=, callback= ...
    default: Any = None
    commands: tuple[str, ...] = (BASE, SR, INPAINT)
    convert: Callable[[Any], Any] = lambda value: value  # flag value -> TrainConfig value

    def option(self, command: str) -> Any:
        text = self.help if isinstance(self.help, str) else self.help[command]
        return typer.Option(self.default, *self.flags, help=text, **self.checks)


# In the order `--help` lists them (after each command's own parameters).
TRAINING_OPTIONS = (
    TrainingOption("steps", "max_steps", Optional[int], ("--steps",), "Train until this many optimizer steps in total (default 100000).", {"min": 1}),
    TrainingOption("batch_size", "batch_size", Optional[int], ("--batch-size", "-b"), "Images per process per micro-batch (default 32).", {"min": 1}),
    TrainingOption("grad_accum", "grad_accum", Optional[int], ("--grad-accum",), "Micro-batches per optimizer step (default 1).", {"min": 1}),
    TrainingOption("lr", "lr", Optional[float], ("--lr",), {BASE: "Peak AdamW learning rate (default 1e-4; tiny runs like 1e-3).", SR: "Peak AdamW learning rate (default 1e-4).", INPAINT: "Peak AdamW learning rate (default 1e-4)."}, {"callback": finite}),
    TrainingOption("warmup", "warmup_steps", Optional[int], ("--warmup",), "Linear warm-up steps, then --lr-schedule (default 1000).", {"min": 0}),
    TrainingOption("lr_schedule", "lr_schedule", Optional[str], ("--lr-schedule",), "After warm-up: constant (default) | cosine (down to --min-lr-ratio x lr at --steps)."),
    TrainingOption("min_lr_ratio", "min_lr_ratio", Optional[float], ("--min-lr-ratio",), "Cosine schedule: the last step's LR as a fraction of --lr (default 0.1).", {"callback": finite}),
    TrainingOption("spike_skip", "spike_skip", Optional[float], ("--spike-skip",), "Skip a step whose gradient norm is more than this many times the running average (e.g. 4; default 0 = off).", {"callback": finite}),
    TrainingOption("ema_decay", "ema_decay", Optional[float], ("--ema-decay",), "EMA decay of the sampled weights (default 0.9999).", {"callback": finite}),
    TrainingOption("text_dropout", "text_dropout", Optional[float], ("--text-dropout",), "Fraction of transcripts replaced by the guidance null input (default 0.1).", {"callback": finite}),
    TrainingOption("control_dropout", "control_dropout", Optional[float], ("--control-dropout",), "Colour models: fraction of each scene control (kind, text colour, background colour) dropped (default 0.2).", {"callback": finite}),
    TrainingOption("t_max", "t_max", Optional[float], ("--t-max",), "Train on the least noisy fraction of the timesteps only, e.g. 0.3 for an SR model that refines the noised bicubic upsample (sampling --sr-start); default 1 = all.", {"callback": finite}, commands=(SR,)),
    TrainingOption("blur", "sr_blur", Optional[bool], ("--blur/--no-blur",), "Lightly blur the low-res input (Gaussian sigma 0.4-0.6), as the original did (default off).", commands=(SR,)),
    TrainingOption("device", "device", Optional[str], ("--device",), "auto | cpu | cuda | cuda:N | mps (under torchrun: one GPU per process)."),
    TrainingOption("resume", None, Optional[bool], ("--resume/--no-resume",), "Default: resume automatically when OUT has a checkpoint. --resume requires one; --no-resume refuses a used OUT."),
    TrainingOption("checkpoint_every", "checkpoint_every", Optional[int], ("--checkpoint-every",), "Steps between checkpoints (default 1000; also written at the end and on Ctrl-C).", {"min": 0}),
    TrainingOption("keep_last", "keep_last", Optional[int], ("--keep-last",), "Step checkpoints to keep (default 3; 0 keeps all).", {"min": 0}),
    TrainingOption("sample_every", "sample_every", Optional[int], ("--sample-every",), {
        BASE: "Steps between sample grids samples/step_N.png (default 1000; 0 = never).",
        SR: "Steps between sample grids samples/step_N.png: low-res | SR | ground truth (default 1000; 0 = never).",
        INPAINT: "Steps between sample grids samples/step_N.png (whole pictures, nothing known; default 1000; 0 = never).",
    }, {"min": 0}),
    TrainingOption("sample_prompts", "sample_prompts", Optional[Path], ("--sample-prompts",), "Prompt file for the sample grids (one per line, \\n = line break). Default: examples/sample_prompts.txt's list.", commands=(BASE, INPAINT), convert=_prompts_of),
    TrainingOption("log_every", "log_every", Optional[int], ("--log-every",), "Steps between metrics.jsonl rows (default 50).", {"min": 1}),
    TrainingOption("workers", "num_workers", Optional[int], ("--workers",), "DataLoader worker processes (default 2).", {"min": 0}),
    TrainingOption("compile_model", "compile", Optional[bool], ("--compile/--no-compile",), "torch.compile the model (default off)."),
    TrainingOption("seed", "seed", Optional[int], ("--seed",), {BASE: "Seed of the initial weights, data order and noise (default 0).", SR: "Seed of the data order and noise (default 0).", INPAINT: "Seed of the data order, masks and noise (default 0)."}, {"callback": seed_range}),
    TrainingOption("no_progress", "progress", bool, ("--no-progress",), "No progress bar (a line every --log-every steps instead).", default=False, convert=_progress_of),
)


def training_command(name: str) -> Callable[[Callable], Callable]:
    """``@app.command(name)`` for a training command: its own parameters come first, then the
    TRAINING_OPTIONS of this command; the function receives ``overrides`` (TrainConfig field ->
    value or None) and every option without a field (``resume``) as keyword arguments."""

    def register(command: Callable) -> Callable:
        rows = [row for row in TRAINING_OPTIONS if name in row.commands]
        separate = {row.name for row in rows if row.config_field is None}
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "overrides" and p.name not in separate]
        added = [inspect.Parameter(row.name, inspect.Parameter.KEYWORD_ONLY, default=row.option(name), annotation=row.annotation) for row in rows]

        @functools.wraps(command)
        def parsed(**values: Any) -> Any:
            overrides = {row.config_field: row.convert(values.pop(row.name)) for row in rows if row.config_field is not None}
            return command(**values, overrides=overrides)

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
        parsed.__signature__ = inspect.Signature(parameters)  # what typer reads
        parsed.__annotations__ = {p.name: p.annotation for p in parameters}
        return app.command(name)(parsed)

    return register


# --- train-base ----------------------------------------------------------------------------------
@training_command(BASE)
def train_base(
    data: Path = typer.Argument(..., help="Image folder: name.png + name.txt pairs and/or metadata.jsonl (e.g. from synth-fonts)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints/, samples/, metrics.jsonl, run.json."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model preset (tiny, words32, lines64, base64, base128) or a ModelConfig JSON file. Default base64."),
    config: Optional[Path] = typer.Option(None, "--config", help="TrainConfig JSON file (any subset of its fields); flags override it."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start a new run from this base checkpoint's weights (e.g. one brought back by glyphfuse export); its config is the model. Not loaded again when the run resumes."),
    *,
    resume: Optional[bool],
    overrides: dict[str, Any],
) -> None:
    """Train a base model on an image folder; resumable, multi-GPU with torchrun.

    Running the same command again continues from OUT/checkpoints/latest exactly (same data order, LR and randomness); a resumed run keeps its saved settings (run.json) except the options given again, e.g. a larger --steps. Ctrl-C / SIGTERM finish the step, write a checkpoint and exit (130 / 143).

    [bold]Examples[/]

      glyphfuse synth-fonts data/synth --count 2000 --size 32

      glyphfuse train-base data/synth --out runs/tiny --model tiny --steps 500 --batch-size 16 --lr 1e-3 --device cpu

      glyphfuse train-base data/synth --out runs/base64 --model base64 --config train.json

      torchrun --nproc_per_node 4 -m glyphfuse train-base data/synth --out runs/base64 --batch-size 32

      glyphfuse train-base data/synth2 --out runs/stage2 --init ckpt/base64-fp16

    Then sample from the EMA weights: glyphfuse sample "hello" -o hello.png --checkpoint runs/tiny/checkpoints/step_500
    """
    from glyphfuse.core.checkpoint import load_checkpoint_config, load_weights_into
    from glyphfuse.training.loop import config_for_run, train

    init_model = None
    if init is not None:
        if model is not None:
            raise GlyphfuseError("give either --init CKPT or --model, not both (the checkpoint's config is the model)")
        overrides = {**overrides, "model": load_checkpoint_config(init).to_dict()}
        init_model = functools.partial(load_weights_into, path=init)
    train_config = config_for_run(data, out, config_file=config, model=model, overrides=overrides, resume=resume)
    if train_config.model_config().is_super_resolution:
        raise GlyphfuseError(f"model {train_config.model_config().name!r} is a super-resolution model; train-base needs a base model (use train-sr)")
    if train_config.model_config().inpaint:
        raise GlyphfuseError(f"model {train_config.model_config().name!r} is an inpainting model; train it with train-inpaint")
    result = train(train_config, out, resume=resume, init_model=init_model)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# --- warm-start + train-sr -----------------------------------------------------------------------
@app.command("warm-start")
def warm_start(
    base_checkpoint: Path = typer.Argument(..., help="Base model checkpoint folder (or a train-base run folder: its latest checkpoint)."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint folder to write the warm-started SR model to."),
    sr_size: Optional[int] = typer.Option(None, "--sr-size", min=1, help="SR image size in px: the base size times a power of two (default 2x the base size)."),
    low_res_noise_max: float = typer.Option(0.2, "--low-res-noise-max", min=0.0, max=1.0, callback=finite, help="Max noise-augmentation level of the low-res input during SR training (0 = none)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the SR model config (default BASE-srSIZE)."),
    seed: int = typer.Option(0, "--seed", callback=seed_range, help="Seed of the freshly initialised SR layers."),
    inpaint: bool = typer.Option(False, "--inpaint", help="Build the base model's inpainting model instead (for glyphfuse edit): every tensor copied, the inputs for the masked picture and the mask start at zero."),
    glyphs: bool = typer.Option(False, "--glyphs", help="With --inpaint: a glyph-guided inpainting model (a painter, preset paint128) that also sees the text's glyphs; their input starts at zero too."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a checkpoint already in OUT (never the input, never a training checkpoint)."),
) -> None:
    """Build a super-resolution model from a trained base model: copy every base tensor that has a place in it.

    The SR U-Net is the base U-Net plus new outermost level(s). The deeper levels, the middle, the up-path at base resolution and below, the timestep embedding, the text encoder and the position tables are copied bit for bit; the input conv, the new level(s) and the output layers start fresh. Prints what was copied, left new or skipped, and why.

    [bold]Examples[/]

      glyphfuse warm-start runs/base128/checkpoints/step_100000 --out ckpt/sr256-init

      glyphfuse warm-start runs/tiny --out ckpt/tiny-sr128 --sr-size 128

      glyphfuse warm-start ckpt/scenes128-base --inpaint --out ckpt/inpaint128-init

      glyphfuse warm-start ckpt/scenes128-base --inpaint --glyphs --out ckpt/paint128-init
    """
    from glyphfuse.training.warm_start import report_rows, warm_start_checkpoint

    if inpaint:
        from glyphfuse.training.inpaint import warm_start_inpaint_checkpoint

        if sr_size is not None:
            raise GlyphfuseError("--sr-size is for super-resolution models; --inpaint keeps the base model's size")
        path = warm_start_inpaint_checkpoint(base_checkpoint, out, name=name, overwrite=overwrite, glyphs=glyphs)
        sees = "the masked picture, the mask and the glyphs" if glyphs else "the masked picture and the mask"
        print(f"wrote {path}: the {'glyph-guided ' if glyphs else ''}inpainting model of {base_checkpoint}, every tensor copied; it sees {sees} (their weights start at zero)")
        return
    if glyphs:
        raise GlyphfuseError("--glyphs builds a glyph-guided inpainting model; give it with --inpaint")

    path, report = warm_start_checkpoint(base_checkpoint, out, sr_size=sr_size, seed=seed, low_res_noise_max=low_res_noise_max, name=name, overwrite=overwrite)
    Console().print(report_table(report_rows(report), report.summary(), title=escape(f"warm start {base_checkpoint} -> {path}")))
    print(
        f"wrote {path}: copied {report.parameters('copied'):,} parameters ({report.tensors('copied')} tensors), "
        f"new {report.parameters('new'):,}, skipped {report.parameters('skipped'):,}"
    )


STATUS_COLOURS = {"copied": "green", "new": "yellow", "skipped": "red"}


def report_table(rows: list[tuple[str, str, str, int, int, str]], summary: dict[str, int], title: str = "warm start") -> Table:
    """The warm-start report as a rich Table: one row per block and fate
    (:func:`glyphfuse.training.warm_start.report_rows`), then the totals of ``WarmStartReport.summary()``."""
    table = Table(title=title)
    for column, justify in (("status", "left"), ("base", "left"), ("SR", "left"), ("tensors", "right"), ("parameters", "right"), ("reason", "left")):
        table.add_column(column, justify=justify)
    for status, base, sr, tensors, params, why in rows:
        table.add_row(f"[{STATUS_COLOURS[status]}]{status}[/]", escape(base), escape(sr), str(tensors), f"{params:,}", escape(why))
    table.add_section()
    for status in STATUS_COLOURS:
        table.add_row(f"[bold]{status}[/]", "", "", str(summary[f"{status}_tensors"]), f"{summary[f'{status}_parameters']:,}", "total")
    return table


@training_command(SR)
def train_sr(
    data: Path = typer.Argument(..., help="Image folder at the SR size or larger: name.png + name.txt pairs and/or metadata.jsonl."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints/, samples/, metrics.jsonl, run.json."),
    init: Optional[Path] = typer.Option(None, "--init", help="Warm-started SR checkpoint to start from (glyphfuse warm-start). Not needed to resume."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Instead of --init: an SR ModelConfig JSON file or preset (sr256), trained from random init."),
    config: Optional[Path] = typer.Option(None, "--config", help="TrainConfig JSON file (any subset of its fields); flags override it."),
    *,
    resume: Optional[bool],
    overrides: dict[str, Any],
) -> None:
    """Train a super-resolution model on an image folder, on the same trainer as train-base.

    Training pairs: each image is the target; its low-res input is the image area-downsampled to the base size (optionally blurred) plus noise augmentation. Resumable, multi-GPU with torchrun; running the same command again continues from OUT/checkpoints/latest.

    [bold]Examples[/]

      glyphfuse warm-start runs/base128/checkpoints/step_100000 --out ckpt/sr256-init

      glyphfuse train-sr data/synth256 --init ckpt/sr256-init --out runs/sr256

      torchrun --nproc_per_node 4 -m glyphfuse train-sr data/synth256 --init ckpt/sr256-init --out runs/sr256
    """
    from glyphfuse.training.sr import train_sr as train_super_resolution

    result = train_super_resolution(data, out, init=init, model=model, config_file=config, overrides=overrides, resume=resume)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@training_command(INPAINT)
def train_inpaint(
    data: Path = typer.Argument(..., help="Image folder of the data recipe scenes128 (synth-fonts --recipe scenes128): the text masks use its text frame."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints/, samples/, metrics.jsonl, run.json."),
    init: Optional[Path] = typer.Option(None, "--init", help="Inpainting checkpoint to start from (glyphfuse warm-start BASE --inpaint). Not needed to resume."),
    config: Optional[Path] = typer.Option(None, "--config", help="TrainConfig JSON file (any subset of its fields); flags override it."),
    *,
    resume: Optional[bool],
    overrides: dict[str, Any],
) -> None:
    """Train an inpainting model (for glyphfuse edit) on an image folder, on the same trainer as train-base.

    Each example gets a mask (1 = draw here): 60 % the place where the data writes its text, grown by 1-12 px a side; 30 % a random rectangle; 10 % everything. The model sees the picture with the mask's part blanked and learns to draw it back. Resumable; running the same command again continues from OUT/checkpoints/latest.

    [bold]Examples[/]

      glyphfuse warm-start ckpt/scenes128-base --inpaint --out ckpt/inpaint128-init

      glyphfuse train-inpaint work/scenes128/data --init ckpt/inpaint128-init --out runs/inpaint128 --lr 5e-4 --steps 2000
    """
    from glyphfuse.training.inpaint import train_inpaint as train_inpainting

    result = train_inpainting(data, out, init=init, config_file=config, overrides=overrides, resume=resume)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
