"""``glyphfuse sample`` and ``info``: draw images, describe models."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from glyphfuse.cli.app import app, console
from glyphfuse.cli.options import finite, seed_range
from glyphfuse.core.errors import GlyphfuseError


# --- sample + info -------------------------------------------------------------------------------
@app.command("sample")
def sample(
    prompt: str = typer.Argument(..., help="The text to write into the image; a literal \\n is a line break."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (e.g. out.png). With -n N: out.png, out_1.png, ... (or one grid with --grid). Existing files of these names are replaced."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Checkpoint folder (model.safetensors + config.json). Default: the packaged model, if installed."),
    steps: int = typer.Option(50, "--steps", min=1, help="Denoising steps (any number up to the model's num_timesteps)."),
    sampler: str = typer.Option("ddim", "--sampler", help="ddim (deterministic with --eta 0), ddpm (ancestral) or dpmpp-2m (DPM-Solver++(2M): deterministic, second order, for fewer --steps)."),
    guidance: float = typer.Option(3.0, "--guidance", "-g", callback=finite, help="Classifier-free guidance scale (1 = no guidance)."),
    seed: int = typer.Option(0, "--seed", callback=seed_range, help="Random seed; image i uses seed + i. Same seed -> same images."),
    num: int = typer.Option(1, "--num", "-n", min=1, help="Number of images to write for the prompt (each the best of --candidates)."),
    grid: bool = typer.Option(False, "--grid", help="Write the N images as one grid picture instead of N files."),
    eta: float = typer.Option(0.0, "--eta", min=0.0, callback=finite, help="DDIM noise (0 = deterministic, 1 = DDPM-like)."),
    dynamic_threshold: Optional[float] = typer.Option(None, "--dynamic-threshold", min=0.0, max=1.0, callback=finite, help="Imagen dynamic thresholding percentile of |x0| (e.g. 0.995) instead of clipping x0 to [-1, 1]."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
    candidates: int = typer.Option(1, "--candidates", min=1, help="OCR rejection sampling: draw this many candidates per output image and keep the one OCR reads best (needs tesseract when > 1)."),
    keep_only_if_above: float = typer.Option(0.8, "--keep-only-if-above", min=0.0, max=1.0, callback=finite, help="If the best candidate's OCR similarity reaches this, keep only candidates at or above it for SR."),
    delete_under: float = typer.Option(0.3, "--delete-under", min=0.0, max=1.0, callback=finite, help="Otherwise drop candidates under this similarity before SR (never all)."),
    keep_all: Optional[Path] = typer.Option(None, "--keep-all", help="Also save every candidate (base and SR) into this folder, named by candidate, stage and score, plus candidates.json."),
    sr_checkpoint: Optional[Path] = typer.Option(None, "--sr-checkpoint", help="Super-resolution checkpoint: upsample the surviving candidates with it (checked against the base model before sampling)."),
    sr_steps: Optional[int] = typer.Option(None, "--sr-steps", min=1, help="Denoising steps of the SR model (default: --steps)."),
    sr_guidance: float = typer.Option(1.0, "--sr-guidance", callback=finite, help="Classifier-free guidance scale of the SR model."),
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
