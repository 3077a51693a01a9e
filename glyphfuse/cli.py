"""The ``glyphfuse`` command line: one thin function per subcommand.

Each function only parses its arguments and calls the core package; all logic lives there.
A :class:`~glyphfuse.core.errors.GlyphfuseError` becomes a one-line message and exit status 1.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from glyphfuse import __version__
from glyphfuse.core.config import MAX_SEED
from glyphfuse.core.errors import GlyphfuseError

app = typer.Typer(
    name="glyphfuse",
    help="Train and sample diffusion models that write a given text legibly into images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        print(f"glyphfuse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
) -> None:
    """Train and sample diffusion models that write a given text legibly into images."""


def _finite(param: typer.CallbackParam, value: Optional[float]) -> Optional[float]:
    """Option callback: NaN and infinity are refused while the command line is parsed."""
    if value is not None and not math.isfinite(value):
        raise GlyphfuseError(f"{param.opts[0]} must be a finite number, got {value}")
    return value


def _seed(param: typer.CallbackParam, value: Optional[int]) -> Optional[int]:
    """Option callback: a seed is 0 .. 2^63 - 1 (torch generators take 64-bit seeds)."""
    if value is not None and not 0 <= value <= MAX_SEED:
        raise GlyphfuseError(f"{param.opts[0]} must be between 0 and {MAX_SEED}, got {value}")
    return value


# ---------------------------------------------------------------------------------------------
# Subcommands. Each is a thin wrapper: parse, call the core, print. Keep logic out of here.
# ---------------------------------------------------------------------------------------------


# --- synth-fonts ---------------------------------------------------------------------------------


@app.command("synth-fonts")
def synth_fonts(
    out_dir: Path = typer.Argument(..., help="Folder to write NAME.png + NAME.txt + metadata.jsonl into (must be empty or new)."),
    count: int = typer.Option(1000, "--count", "-n", help="Number of images."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Named data recipe: lines64 (the default model's data), words32, full. The options below override its settings."),
    size: Optional[int] = typer.Option(None, "--size", help="Image width and height in px (default: the recipe's, else 128)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files for any --workers."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes."),
    color: bool = typer.Option(False, "--color", help="RGB images: random colours (or tinted light backgrounds with --background light)."),
    text_file: Optional[Path] = typer.Option(None, "--text-file", help="Draw transcripts from this UTF-8 file (one per line; a literal \\n is a line break) instead of random words."),
    fonts: Optional[Path] = typer.Option(None, "--fonts", help="Folder of .ttf/.otf fonts (default: the repository's fonts/)."),
    font: Optional[List[str]] = typer.Option(None, "--font", help="Use only this font file of the fonts folder (repeat for several)."),
    font_size: Optional[str] = typer.Option(None, "--font-size", help="Font size in px, MIN-MAX or one value (e.g. 12-14); default scales with --size (8-36 px at 128 px)."),
    align: Optional[str] = typer.Option(None, "--align", help="left | center | right | random (default random)."),
    placement: Optional[str] = typer.Option(None, "--placement", help="fixed (line k always at the same height) | center | random (default random)."),
    background: Optional[str] = typer.Option(None, "--background", help="light (light flat, dark text) | random (any lightness, either polarity; default)."),
    charset: Optional[str] = typer.Option(None, "--charset", help="lower | letters | alnum | printable (default: words with capitals, digits, punctuation)."),
    random_fraction: Optional[float] = typer.Option(None, "--random-fraction", help="Share of tokens that are uniformly random strings of --charset (default 0)."),
    lines: Optional[str] = typer.Option(None, "--lines", help="Lines per image, MIN-MAX (e.g. 1-2)."),
    tokens: Optional[str] = typer.Option(None, "--tokens", help="Tokens per line, MIN-MAX (e.g. 1-2)."),
    string_length: Optional[str] = typer.Option(None, "--string-length", help="Length of the random strings, MIN-MAX (default 2-8)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow a non-empty OUT_DIR; its old .png/.txt/metadata.jsonl are removed."),
) -> None:
    """Render synthetic training images: text in real fonts on flat backgrounds.

    A word is never split over lines, and no word of the packaged eval prompt sets is ever drawn.

    [bold]Examples[/]

      glyphfuse synth-fonts data/lines64 --recipe lines64 --count 100000 --workers 2

      glyphfuse synth-fonts data/synth128 --count 100000 --size 128 --workers 2

      glyphfuse synth-fonts data/mine --size 64 --align center --placement center --background light --charset letters --random-fraction 0.3 --lines 1-3 --tokens 1-2
    """
    from glyphfuse.synth import SynthStyle, get_data_recipe, parse_range, synthesize

    style = (get_data_recipe(recipe) if recipe else SynthStyle()).replace(
        align=align, placement=placement, background=background, charset=charset, random_fraction=random_fraction,
        lines=parse_range(lines, "--lines") if lines else None,
        tokens=parse_range(tokens, "--tokens") if tokens else None,
        string_length=parse_range(string_length, "--string-length") if string_length else None,
        font_px=parse_range(font_size, "--font-size") if font_size else None,
        fonts=tuple(font) if font else None,
    )
    size = size or style.size
    summary = synthesize(out_dir, count, size=size, seed=seed, workers=workers, color=color, text_file=text_file, fonts_dir=fonts, overwrite=overwrite, progress=True, style=style)
    if summary.skipped_texts:
        console.print(f"note: {summary.skipped_texts} line(s) of {text_file} skipped: no font in the fonts folder has all their characters")
    console.print(f"wrote {summary.count} images ({size} px, {summary.fonts} fonts) to {summary.out_dir} in {summary.seconds:.1f} s ({summary.images_per_second:.0f} images/s)")


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
    lr: Optional[float] = typer.Option(None, "--lr", callback=_finite, help="Peak AdamW learning rate (default 1e-4; tiny runs like 1e-3)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Linear warm-up steps, then constant LR (default 1000)."),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", callback=_finite, help="EMA decay of the sampled weights (default 0.9999)."),
    text_dropout: Optional[float] = typer.Option(None, "--text-dropout", callback=_finite, help="Fraction of transcripts replaced by the guidance null input (default 0.1)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps (under torchrun: one GPU per process)."),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Default: resume automatically when OUT has a checkpoint. --resume requires one; --no-resume refuses a used OUT."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=0, help="Steps between checkpoints (default 1000; also written at the end and on Ctrl-C)."),
    keep_last: Optional[int] = typer.Option(None, "--keep-last", min=0, help="Step checkpoints to keep (default 3; 0 keeps all)."),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", min=0, help="Steps between sample grids samples/step_N.png (default 1000; 0 = never)."),
    sample_prompts: Optional[Path] = typer.Option(None, "--sample-prompts", help="Prompt file for the sample grids (one per line, \\n = line break). Default: examples/sample_prompts.txt's list."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1, help="Steps between metrics.jsonl rows (default 50)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="DataLoader worker processes (default 2)."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (default off)."),
    seed: Optional[int] = typer.Option(None, "--seed", callback=_seed, help="Seed of the initial weights, data order and noise (default 0)."),
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

    overrides = {
        "max_steps": steps, "batch_size": batch_size, "grad_accum": grad_accum, "lr": lr, "warmup_steps": warmup,
        "ema_decay": ema_decay, "text_dropout": text_dropout, "device": device, "checkpoint_every": checkpoint_every,
        "keep_last": keep_last, "sample_every": sample_every, "log_every": log_every, "num_workers": workers,
        "compile": compile_model, "seed": seed,
        "sample_prompts": trainer.load_prompt_file(sample_prompts) if sample_prompts is not None else None,
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
    low_res_noise_max: float = typer.Option(0.2, "--low-res-noise-max", min=0.0, max=1.0, callback=_finite, help="Max noise-augmentation level of the low-res input during SR training (0 = none)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the SR model config (default BASE-srSIZE)."),
    seed: int = typer.Option(0, "--seed", callback=_seed, help="Seed of the freshly initialised SR layers."),
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
    lr: Optional[float] = typer.Option(None, "--lr", callback=_finite, help="Peak AdamW learning rate (default 1e-4)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Linear warm-up steps, then constant LR (default 1000)."),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", callback=_finite, help="EMA decay of the sampled weights (default 0.9999)."),
    text_dropout: Optional[float] = typer.Option(None, "--text-dropout", callback=_finite, help="Fraction of transcripts replaced by the guidance null input (default 0.1)."),
    blur: Optional[bool] = typer.Option(None, "--blur/--no-blur", help="Lightly blur the low-res input (Gaussian sigma 0.4-0.6), as the original did (default off)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps (under torchrun: one GPU per process)."),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Default: resume automatically when OUT has a checkpoint. --resume requires one; --no-resume refuses a used OUT."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=0, help="Steps between checkpoints (default 1000; also written at the end and on Ctrl-C)."),
    keep_last: Optional[int] = typer.Option(None, "--keep-last", min=0, help="Step checkpoints to keep (default 3; 0 keeps all)."),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", min=0, help="Steps between sample grids samples/step_N.png: low-res | SR | ground truth (default 1000; 0 = never)."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1, help="Steps between metrics.jsonl rows (default 50)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="DataLoader worker processes (default 2)."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (default off)."),
    seed: Optional[int] = typer.Option(None, "--seed", callback=_seed, help="Seed of the data order and noise (default 0)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (a line every --log-every steps instead)."),
) -> None:
    """Train a super-resolution model on an image folder, on the same trainer as train-base.

    Training pairs: each image is the target; its low-res input is the image area-downsampled to the base size (optionally blurred) plus noise augmentation. Resumable, multi-GPU with torchrun; running the same command again continues from OUT/checkpoints/latest.

    [bold]Examples[/]

      glyphfuse warm-start runs/base128/checkpoints/step_100000 --out ckpt/sr256-init

      glyphfuse train-sr data/synth256 --init ckpt/sr256-init --out runs/sr256

      torchrun --nproc_per_node 4 -m glyphfuse train-sr data/synth256 --init ckpt/sr256-init --out runs/sr256
    """
    from glyphfuse import sr

    overrides = {
        "max_steps": steps, "batch_size": batch_size, "grad_accum": grad_accum, "lr": lr, "warmup_steps": warmup,
        "ema_decay": ema_decay, "text_dropout": text_dropout, "sr_blur": blur, "device": device,
        "checkpoint_every": checkpoint_every, "keep_last": keep_last, "sample_every": sample_every, "log_every": log_every,
        "num_workers": workers, "compile": compile_model, "seed": seed, "progress": False if no_progress else None,
    }
    result = sr.train_sr(data, out, init=init, model=model, config_file=config, overrides=overrides, resume=resume)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# --- sample + info -------------------------------------------------------------------------------
@app.command("sample")
def sample(
    prompt: str = typer.Argument(..., help="The text to write into the image; a literal \\n is a line break."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (e.g. out.png). With -n N: out.png, out_1.png, ... (or one grid with --grid). Existing files of these names are replaced."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Checkpoint folder (model.safetensors + config.json). Default: the packaged model, if installed."),
    steps: int = typer.Option(50, "--steps", min=1, help="Denoising steps (any number up to the model's num_timesteps)."),
    sampler: str = typer.Option("ddim", "--sampler", help="ddim (deterministic with --eta 0), ddpm (ancestral) or dpmpp-2m (DPM-Solver++(2M): deterministic, second order, for fewer --steps)."),
    guidance: float = typer.Option(3.0, "--guidance", "-g", callback=_finite, help="Classifier-free guidance scale (1 = no guidance)."),
    seed: int = typer.Option(0, "--seed", callback=_seed, help="Random seed; image i uses seed + i. Same seed -> same images."),
    num: int = typer.Option(1, "--num", "-n", min=1, help="Number of images to write for the prompt (each the best of --candidates)."),
    grid: bool = typer.Option(False, "--grid", help="Write the N images as one grid picture instead of N files."),
    eta: float = typer.Option(0.0, "--eta", min=0.0, callback=_finite, help="DDIM noise (0 = deterministic, 1 = DDPM-like)."),
    dynamic_threshold: Optional[float] = typer.Option(None, "--dynamic-threshold", min=0.0, max=1.0, callback=_finite, help="Imagen dynamic thresholding percentile of |x0| (e.g. 0.995) instead of clipping x0 to [-1, 1]."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
    candidates: int = typer.Option(1, "--candidates", min=1, help="OCR rejection sampling: draw this many candidates per output image and keep the one OCR reads best (needs tesseract when > 1)."),
    keep_only_if_above: float = typer.Option(0.8, "--keep-only-if-above", min=0.0, max=1.0, callback=_finite, help="If the best candidate's OCR similarity reaches this, keep only candidates at or above it for SR."),
    delete_under: float = typer.Option(0.3, "--delete-under", min=0.0, max=1.0, callback=_finite, help="Otherwise drop candidates under this similarity before SR (never all)."),
    keep_all: Optional[Path] = typer.Option(None, "--keep-all", help="Also save every candidate (base and SR) into this folder, named by candidate, stage and score, plus candidates.json."),
    sr_checkpoint: Optional[Path] = typer.Option(None, "--sr-checkpoint", help="Super-resolution checkpoint: upsample the surviving candidates with it (checked against the base model before sampling)."),
    sr_steps: Optional[int] = typer.Option(None, "--sr-steps", min=1, help="Denoising steps of the SR model (default: --steps)."),
    sr_guidance: float = typer.Option(1.0, "--sr-guidance", callback=_finite, help="Classifier-free guidance scale of the SR model."),
    ocr: bool = typer.Option(False, "--ocr", help="Read the chosen image with OCR and print its text and score even with one candidate and no SR."),
    ocr_processes: Optional[int] = typer.Option(None, "--ocr-processes", min=1, help="Tesseract processes run in parallel (default: CPU count)."),
) -> None:
    """Draw images that show PROMPT, optionally best-of-N by OCR and super-resolved.

    Pipeline (DESIGN.md §3): the base model draws --candidates images per output, OCR reads and
    scores them (trigram similarity to the prompt), the weak ones are dropped, the survivors are
    upsampled with --sr-checkpoint, read again, and the best is written. With -n M and
    --candidates N it writes M images, each chosen from its own N candidates (M*N drawn;
    candidate i of output m uses seed + m*N + i).

    [bold]Examples[/]

      glyphfuse sample "hello world" -o hello.png --checkpoint runs/base64/checkpoint

      glyphfuse sample "the\\nwhat string" -o what.png -n 4 --grid --seed 7

      glyphfuse sample "OPEN 24h" -o open.png --sampler ddpm --steps 250 --guidance 4

      glyphfuse sample "quartz fjord" -o q.png -c ckpt/base64 --sr-checkpoint ckpt/sr128 --candidates 8 --keep-all q_candidates
    """
    from glyphfuse import pipeline, sampling
    from glyphfuse.core.diffusion import check_sampler

    check_sampler(sampler)
    sampling.check_output(out)  # a bad -o fails now, not after the sampling
    models = pipeline.load_models(checkpoint, sr_checkpoint, device)
    text = sampling.parse_prompt(prompt)
    warning = sampling.domain_warning(text, checkpoint)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    results = pipeline.sample_many(
        [text] * num, **models, candidates=candidates, keep_only_if_above=keep_only_if_above, delete_under=delete_under,
        steps=steps, sampler=sampler, guidance=guidance, seed=seed, eta=eta, dynamic_threshold=dynamic_threshold,
        sr_steps=sr_steps, sr_guidance=sr_guidance, ocr=True if ocr else None, ocr_processes=ocr_processes,
        batch_size=batch_size, show_progress=True, keep_all_dir=keep_all,
    )
    import torch

    size = (models["sr_config"] or models["base_config"]).image_size
    settings = f"{sampler} {steps} steps, guidance {guidance}" + (f", SR {sr_steps or steps} steps" if sr_checkpoint is not None else "")
    paths = sampling.save_images(torch.stack([result.tensor for result in results]), out, grid=grid)
    if grid:
        print(f"wrote {paths[0]} (grid of {num} images {size}x{size}, seeds {seed}..{seed + num * candidates - 1}, {settings})")
    for index, result in enumerate(results):
        first = seed + index * candidates
        seeds = f"seed {first + result.chosen_index}" + (f", best of {candidates} (seeds {first}..{first + candidates - 1})" if candidates > 1 else "")
        if not grid:
            print(f"wrote {paths[index]} ({size}x{size}, {seeds}, {settings})")
        if result.similarity is not None:
            print(f"  OCR read {result.ocr_text!r}, similarity {result.similarity:.3f}")
    if keep_all is not None:
        print(f"saved all {sum(len(r.candidates) for r in results)} candidates to {keep_all} (listing: {keep_all / pipeline.KEEP_ALL_LISTING})")


@app.command("info")
def info(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Describe this checkpoint folder."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Describe this preset (tiny, words32, base64, base128, sr256)."),
) -> None:
    """Describe the packaged default model (its recipe and measured scores) and the presets, or one
    checkpoint or preset: configuration and parameter counts.

    [bold]Examples[/]

      glyphfuse info

      glyphfuse info --preset base64

      glyphfuse info --checkpoint runs/base64/checkpoints/step_20000
    """
    from glyphfuse.core import checkpoint as ckpt
    from glyphfuse.core.config import PRESETS, get_preset
    from glyphfuse.sampling import DEFAULT_MODEL_DIR, default_checkpoint_dir

    if checkpoint is not None and preset is not None:
        raise GlyphfuseError("give either --checkpoint or --preset, not both")
    out = Console()
    show_presets = checkpoint is None  # no option: default model (if any) and every preset
    if checkpoint is None and preset is None:
        try:
            checkpoint = default_checkpoint_dir()
            out.print(f"[bold]default model[/] (used when --checkpoint is not given): {escape(str(checkpoint))}")
        except GlyphfuseError:
            out.print(f"no default model installed ({DEFAULT_MODEL_DIR} is empty)")
    if checkpoint is not None:
        _print_model_table(out, {str(checkpoint): ckpt.load_checkpoint_config(checkpoint)}, ckpt.read_checkpoint_info(checkpoint))
        card = ckpt.read_model_card(checkpoint)
        if card is not None:
            _print_model_card(out, card)
    if show_presets:
        _print_model_table(out, {name: get_preset(name) for name in ([preset] if preset is not None else PRESETS)}, {})


def _print_model_table(out: Console, configs: dict, about: dict) -> None:
    from rich.table import Table

    from glyphfuse.core import checkpoint as ckpt

    names = list(configs)
    counts = {name: ckpt.parameter_counts(cfg) for name, cfg in configs.items()}
    rows = {name: dict(ckpt.config_rows(cfg)) for name, cfg in configs.items()}
    table = Table(title="glyphfuse model" + ("s" if len(names) > 1 else ""))
    table.add_column("setting", no_wrap=True)
    for name in names:  # names, values and metadata come from files: never read as markup
        table.add_column(escape(name), justify="right", overflow="fold")
    for key in rows[names[0]]:
        table.add_row(key, *(escape(rows[name].get(key, "-")) for name in names))
    table.add_section()
    parts = list(dict.fromkeys(part for name in names for part in counts[name]))
    parts.append(parts.pop(parts.index("total")))
    for part in parts:
        table.add_row(f"params {part}", *(f"{counts[name][part]:,}" if part in counts[name] else "-" for name in names))
    for key in ("version", "created", "weights_dtype"):
        if key in about:
            table.add_row(f"checkpoint {key}", escape(str(about[key])))
    for key, value in (about.get("metadata") or {}).items():
        table.add_row(escape(f"metadata.{key}"), escape(str(value)))
    out.print(table)


def _print_model_card(out: Console, card: dict) -> None:
    """The card's plain fields as 'key: value' lines, then its eval scores as a table."""
    from rich.table import Table

    for key, value in card.items():
        if key != "scores":
            out.print(f"[bold]{escape(key)}[/]: {escape(str(value) if not isinstance(value, list) else '; '.join(map(str, value)))}", highlight=False)
    scores = card.get("scores") or []
    if scores:
        table = Table(title="measured scores (glyphfuse eval)")
        columns = list(dict.fromkeys(key for row in scores for key in row))
        for column in columns:
            table.add_column(escape(column), justify="left" if column in ("prompts", "model") else "right")
        for row in scores:
            table.add_row(*(f"{row[c]:.3f}" if isinstance(row.get(c), float) else escape(str(row.get(c, "-"))) for c in columns))
        out.print(table)


# --- ocr-rank ------------------------------------------------------------------------------------
@app.command("ocr-rank")
def ocr_rank(
    folder: Path = typer.Argument(..., help="Folder of images (png/jpg/webp), searched recursively."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Score every image against this text (a literal \\n is a newline) instead of each image's name.txt / metadata.jsonl transcript."),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Show and report only the K best images (error rows are always listed)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the ranking as JSON here (an existing file is replaced)."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write the ranking as CSV here (an existing file is replaced)."),
    processes: Optional[int] = typer.Option(None, "--processes", min=1, help="Tesseract processes run in parallel (default: CPU count)."),
    case_insensitive: bool = typer.Option(False, "--case-insensitive", help="Compare case-folded text (similarity and CER)."),
) -> None:
    """Read every image in FOLDER with OCR, score it against its prompt and rank best first.

    [bold]Examples[/]

      glyphfuse ocr-rank samples/ --prompt "the\\nwhat string" --top 5 --json rank.json

      glyphfuse ocr-rank data/synth128 --csv ranking.csv
    """
    from rich.markup import escape
    from rich.table import Table

    from glyphfuse import ranking, sampling
    from glyphfuse.core.checkpoint import check_writable

    if prompt is not None:
        prompt = sampling.parse_prompt(prompt)
    for report_path in (json_out, csv_out):
        if report_path is not None:
            check_writable(report_path)  # before the OCR work, not after
    rows = ranking.top_rows(ranking.rank_folder(folder, prompt=prompt, processes=processes, case_insensitive=case_insensitive, show_progress=True), top)
    table = Table(title=f"ocr-rank {folder}")
    for column, justify in (("#", "right"), ("file", "left"), ("OCR text", "left"), ("similarity", "right"), ("CER", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        if row["error"] is None:
            table.add_row(str(row["rank"]), escape(row["file"]), escape(ranking.display_text(row["ocr"])), f"{row['similarity']:.3f}", f"{row['cer']:.3f}")
        else:
            table.add_row("-", escape(row["file"]), f"[red]error: {escape(row['error'])}[/]", "-", "-")
    Console().print(table)
    stats = ranking.summary(rows)
    if stats["n"]:
        print(f"{stats['n']} images scored, {stats['errors']} errors: mean CER {stats['cer']:.3f}, exact {stats['exact']:.3f}, exact_ci {stats['exact_ci']:.3f}")
    else:
        print(f"no image could be scored ({stats['errors']} errors)")
    if json_out is not None:
        ranking.write_report(json_out, ranking.report_json(rows, prompt))
    if csv_out is not None:
        ranking.write_report(csv_out, ranking.report_csv(rows))


# --- eval ----------------------------------------------------------------------------------------
@app.command("eval")
def eval_command(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Base model checkpoint to evaluate. Default: the packaged model (skipped when only --ground-truth is given)."),
    sr_checkpoint: Optional[Path] = typer.Option(None, "--sr-checkpoint", help="Super-resolution checkpoint: evaluate the two-stage pipeline."),
    prompts: Optional[str] = typer.Option(None, "--prompts", "-p", help="Prompt file (one per line, \\n = line break, # comments) or a packaged set: words (default), short, phrases, multiline."),
    num: int = typer.Option(4, "--num", "-n", min=1, help="Samples per prompt."),
    candidates: int = typer.Option(1, "--candidates", min=1, help="OCR rejection sampling: each sample is the best of this many candidates."),
    seed: int = typer.Option(0, "--seed", callback=_seed, help="Random seed (recorded in the report). Same seed and settings -> same report."),
    steps: int = typer.Option(50, "--steps", min=1, help="Denoising steps of the base model."),
    sampler: str = typer.Option("ddim", "--sampler", help="ddim, ddpm or dpmpp-2m (DPM-Solver++(2M))."),
    guidance: float = typer.Option(3.0, "--guidance", "-g", callback=_finite, help="Classifier-free guidance scale."),
    sr_steps: Optional[int] = typer.Option(None, "--sr-steps", min=1, help="Denoising steps of the SR model (default: --steps)."),
    sr_guidance: float = typer.Option(1.0, "--sr-guidance", callback=_finite, help="Guidance scale of the SR model."),
    keep_only_if_above: float = typer.Option(0.8, "--keep-only-if-above", min=0.0, max=1.0, callback=_finite, help="Rejection sampling: keep only candidates at or above this if the best reaches it."),
    delete_under: float = typer.Option(0.3, "--delete-under", min=0.0, max=1.0, callback=_finite, help="Rejection sampling: otherwise drop candidates under this."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Folder of real images with transcripts (e.g. synth-fonts output): report the OCR ceiling on it too (or alone)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report (settings, summary, per-prompt rows) as JSON here (an existing file is replaced)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Also save every evaluated image into this folder (pPPP_sK.png)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Images per forward pass."),
    ocr_processes: Optional[int] = typer.Option(None, "--ocr-processes", min=1, help="Tesseract processes run in parallel (default: CPU count)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
) -> None:
    """Score how legibly a model writes held-out prompts: mean CER, exact and exact_ci by OCR.

    Each prompt is sampled -n times (with --candidates N: each the OCR-best of N); all images are
    read with tesseract and compared with their prompts (DESIGN.md §4). --ground-truth reads real
    renderings the same way: what a perfect generator would score at that size.

    [bold]Examples[/]

      glyphfuse eval --checkpoint runs/base64/checkpoint --prompts examples/prompts/words.txt -n 4 --json eval.json

      glyphfuse eval -c ckpt/base64 --sr-checkpoint ckpt/sr128 --prompts multiline --candidates 4

      glyphfuse synth-fonts /tmp/gt64 --count 200 --size 64 --seed 1 && glyphfuse eval --ground-truth /tmp/gt64
    """
    from rich.console import Console as StdoutConsole

    from glyphfuse import evaluate, ocr, ranking
    from glyphfuse.core.checkpoint import check_writable
    from glyphfuse.core.diffusion import check_sampler

    check_sampler(sampler)
    if json_out is not None:
        check_writable(json_out)  # before the sampling and OCR work, not after
    if images is not None:
        check_writable(images / "p000_s0.png")
    with ocr.progress_shown():  # also for the OCR of --ground-truth
        report = evaluate.run_eval(
            checkpoint, sr_checkpoint=sr_checkpoint, prompts=prompts, ground_truth=ground_truth, n=num, candidates=candidates,
            seed=seed, steps=steps, sampler=sampler, guidance=guidance, sr_steps=sr_steps, sr_guidance=sr_guidance,
            keep_only_if_above=keep_only_if_above, delete_under=delete_under, device=device, ocr_processes=ocr_processes,
            batch_size=batch_size, show_progress=True, images_dir=images,
        )
    for table in evaluate.report_tables(report):
        StdoutConsole().print(table)
    if json_out is not None:
        ranking.write_report(json_out, evaluate.report_json(report))
        print(f"wrote {json_out}")


def _print_error(message: str) -> None:
    """``error: <message>`` on one line of stderr (line breaks inside the message are flattened)."""
    console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point: user-facing errors (and file-system errors: disk full,
    read-only ...) become one line and exit status 1."""
    try:
        app()
    except GlyphfuseError as exc:
        _print_error(str(exc))
        sys.exit(1)
    except BrokenPipeError:  # e.g. `glyphfuse info | head -1`: the reader is gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(1)
    except OSError as exc:  # a file or disk problem that no code path turned into a GlyphfuseError
        where = f"{exc.filename}: " if exc.filename else ""
        _print_error(f"{where}{exc.strerror or exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
