"""``glyphfuse train-base``, ``warm-start`` and ``train-sr``: train models."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from glyphfuse.cli.app import app, console
from glyphfuse.cli.options import finite, seed_range
from glyphfuse.core.errors import GlyphfuseError


# --- train-base ----------------------------------------------------------------------------------
@app.command("train-base")
def train_base(
    data: Path = typer.Argument(..., help="Image folder: name.png + name.txt pairs and/or metadata.jsonl (e.g. from synth-fonts)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints/, samples/, metrics.jsonl, run.json."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model preset (tiny, words32, base64, base128) or a ModelConfig JSON file. Default base64."),
    config: Optional[Path] = typer.Option(None, "--config", help="TrainConfig JSON file (any subset of its fields); flags override it."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Train until this many optimizer steps in total (default 100000)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Images per process per micro-batch (default 32)."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", min=1, help="Micro-batches per optimizer step (default 1)."),
    lr: Optional[float] = typer.Option(None, "--lr", callback=finite, help="Peak AdamW learning rate (default 1e-4; tiny runs like 1e-3)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Linear warm-up steps, then constant LR (default 1000)."),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", callback=finite, help="EMA decay of the sampled weights (default 0.9999)."),
    text_dropout: Optional[float] = typer.Option(None, "--text-dropout", callback=finite, help="Fraction of transcripts replaced by the guidance null input (default 0.1)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps (under torchrun: one GPU per process)."),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Default: resume automatically when OUT has a checkpoint. --resume requires one; --no-resume refuses a used OUT."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=0, help="Steps between checkpoints (default 1000; also written at the end and on Ctrl-C)."),
    keep_last: Optional[int] = typer.Option(None, "--keep-last", min=0, help="Step checkpoints to keep (default 3; 0 keeps all)."),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", min=0, help="Steps between sample grids samples/step_N.png (default 1000; 0 = never)."),
    sample_prompts: Optional[Path] = typer.Option(None, "--sample-prompts", help="Prompt file for the sample grids (one per line, \\n = line break). Default: examples/sample_prompts.txt's list."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1, help="Steps between metrics.jsonl rows (default 50)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="DataLoader worker processes (default 2)."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (default off)."),
    seed: Optional[int] = typer.Option(None, "--seed", callback=seed_range, help="Seed of the initial weights, data order and noise (default 0)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (a line every --log-every steps instead)."),
) -> None:
    """Train a base model on an image folder; resumable, multi-GPU with torchrun.

    Running the same command again continues from OUT/checkpoints/latest exactly (same data
    order, LR and randomness); a resumed run keeps its saved settings (run.json) except the
    options given again, e.g. a larger --steps. Ctrl-C / SIGTERM finish the step, write a
    checkpoint and exit (130 / 143).

    [bold]Examples[/]

      glyphfuse synth-fonts data/synth --count 2000 --size 32

      glyphfuse train-base data/synth --out runs/tiny --model tiny --steps 500 --batch-size 16 --lr 1e-3 --device cpu

      glyphfuse train-base data/synth --out runs/base64 --model base64 --config train.json

      torchrun --nproc_per_node 4 -m glyphfuse train-base data/synth --out runs/base64 --batch-size 32

    Then sample from the EMA weights: glyphfuse sample "hello" -o hello.png --checkpoint runs/tiny/checkpoints/step_500
    """
    from glyphfuse import train as trainer
    from glyphfuse.prompts import load_prompt_file

    overrides = {
        "max_steps": steps, "batch_size": batch_size, "grad_accum": grad_accum, "lr": lr, "warmup_steps": warmup,
        "ema_decay": ema_decay, "text_dropout": text_dropout, "device": device, "checkpoint_every": checkpoint_every,
        "keep_last": keep_last, "sample_every": sample_every, "log_every": log_every, "num_workers": workers,
        "compile": compile_model, "seed": seed,
        "sample_prompts": load_prompt_file(sample_prompts) if sample_prompts is not None else None,
        "progress": False if no_progress else None,
    }
    train_config = trainer.config_for_run(data, out, config_file=config, model=model, overrides=overrides, resume=resume)
    if train_config.model_config().is_super_resolution:
        raise GlyphfuseError(f"model {train_config.model_config().name!r} is a super-resolution model; train-base needs a base model (use train-sr)")
    result = trainer.train(train_config, out, resume=resume)
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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a checkpoint already in OUT (never the input, never a training checkpoint)."),
) -> None:
    """Build a super-resolution model from a trained base model: copy every base tensor that has a place in it.

    The SR U-Net is the base U-Net plus new outermost level(s). The deeper levels, the middle, the up-path at base resolution and below, the timestep embedding, the text encoder and the position tables are copied bit for bit; the input conv, the new level(s) and the output layers start fresh. Prints what was copied, left new or skipped, and why.

    [bold]Examples[/]

      glyphfuse warm-start runs/base128/checkpoints/step_100000 --out ckpt/sr256-init

      glyphfuse warm-start runs/tiny --out ckpt/tiny-sr128 --sr-size 128
    """
    from glyphfuse.warm_start import report_table, warm_start_checkpoint

    path, report = warm_start_checkpoint(base_checkpoint, out, sr_size=sr_size, seed=seed, low_res_noise_max=low_res_noise_max, name=name, overwrite=overwrite)
    Console().print(report_table(report, title=escape(f"warm start {base_checkpoint} -> {path}")))
    print(
        f"wrote {path}: copied {report.parameters('copied'):,} parameters ({report.tensors('copied')} tensors), "
        f"new {report.parameters('new'):,}, skipped {report.parameters('skipped'):,}"
    )


@app.command("train-sr")
def train_sr(
    data: Path = typer.Argument(..., help="Image folder at the SR size or larger: name.png + name.txt pairs and/or metadata.jsonl."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints/, samples/, metrics.jsonl, run.json."),
    init: Optional[Path] = typer.Option(None, "--init", help="Warm-started SR checkpoint to start from (glyphfuse warm-start). Not needed to resume."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Instead of --init: an SR ModelConfig JSON file or preset (sr256), trained from random init."),
    config: Optional[Path] = typer.Option(None, "--config", help="TrainConfig JSON file (any subset of its fields); flags override it."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Train until this many optimizer steps in total (default 100000)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Images per process per micro-batch (default 32)."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", min=1, help="Micro-batches per optimizer step (default 1)."),
    lr: Optional[float] = typer.Option(None, "--lr", callback=finite, help="Peak AdamW learning rate (default 1e-4)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Linear warm-up steps, then constant LR (default 1000)."),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", callback=finite, help="EMA decay of the sampled weights (default 0.9999)."),
    text_dropout: Optional[float] = typer.Option(None, "--text-dropout", callback=finite, help="Fraction of transcripts replaced by the guidance null input (default 0.1)."),
    blur: Optional[bool] = typer.Option(None, "--blur/--no-blur", help="Lightly blur the low-res input (Gaussian sigma 0.4-0.6), as the original did (default off)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps (under torchrun: one GPU per process)."),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Default: resume automatically when OUT has a checkpoint. --resume requires one; --no-resume refuses a used OUT."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=0, help="Steps between checkpoints (default 1000; also written at the end and on Ctrl-C)."),
    keep_last: Optional[int] = typer.Option(None, "--keep-last", min=0, help="Step checkpoints to keep (default 3; 0 keeps all)."),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", min=0, help="Steps between sample grids samples/step_N.png: low-res | SR | ground truth (default 1000; 0 = never)."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1, help="Steps between metrics.jsonl rows (default 50)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="DataLoader worker processes (default 2)."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (default off)."),
    seed: Optional[int] = typer.Option(None, "--seed", callback=seed_range, help="Seed of the data order and noise (default 0)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (a line every --log-every steps instead)."),
) -> None:
    """Train a super-resolution model on an image folder, on the same trainer as train-base.

    Training pairs: each image is the target; its low-res input is the image area-downsampled to the base size (optionally blurred) plus noise augmentation. Resumable, multi-GPU with torchrun; running the same command again continues from OUT/checkpoints/latest.

    [bold]Examples[/]

      glyphfuse warm-start runs/base128/checkpoints/step_100000 --out ckpt/sr256-init

      glyphfuse train-sr data/synth256 --init ckpt/sr256-init --out runs/sr256

      torchrun --nproc_per_node 4 -m glyphfuse train-sr data/synth256 --init ckpt/sr256-init --out runs/sr256
    """
    from glyphfuse import sr_train

    overrides = {
        "max_steps": steps, "batch_size": batch_size, "grad_accum": grad_accum, "lr": lr, "warmup_steps": warmup,
        "ema_decay": ema_decay, "text_dropout": text_dropout, "sr_blur": blur, "device": device,
        "checkpoint_every": checkpoint_every, "keep_last": keep_last, "sample_every": sample_every, "log_every": log_every,
        "num_workers": workers, "compile": compile_model, "seed": seed, "progress": False if no_progress else None,
    }
    result = sr_train.train_sr(data, out, init=init, model=model, config_file=config, overrides=overrides, resume=resume)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
