"""``glyphfuse sample`` and ``info``: draw images, describe models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from glyphfuse.cli import options
from glyphfuse.cli.app import app, console
from glyphfuse.core.errors import GlyphfuseError


# --- sample --------------------------------------------------------------------------------------
@app.command("sample")
def sample(
    prompt: str = typer.Argument(..., help="The text to write into the image; a literal \\n is a line break."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (e.g. out.png). With -n N: out.png, out_1.png, ... (or one grid with --grid). Existing files of these names are replaced."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Checkpoint folder (model.safetensors + config.json). Default: the packaged model, if installed."),
    steps: int = options.STEPS,
    sampler: str = options.SAMPLER,
    guidance: float = options.GUIDANCE,
    seed: int = options.SEED,
    num: int = typer.Option(1, "--num", "-n", min=1, max=10_000, help="Number of images to write for the prompt (each the best of --candidates)."),
    grid: bool = typer.Option(False, "--grid", help="Write the N images as one grid picture instead of N files."),
    eta: float = options.ETA,
    dynamic_threshold: Optional[float] = options.DYNAMIC_THRESHOLD,
    batch_size: int = options.BATCH_SIZE,
    device: str = options.DEVICE,
    candidates: int = options.CANDIDATES,
    keep_only_if_above: float = options.KEEP_ONLY_IF_ABOVE,
    delete_under: float = options.DELETE_UNDER,
    keep_all: Optional[Path] = typer.Option(None, "--keep-all", help="Also save every candidate (base and SR) into this folder, named by candidate, stage and score, plus candidates.json."),
    sr_checkpoint: Optional[Path] = typer.Option(None, "--sr-checkpoint", help="Super-resolution checkpoint: upsample the surviving candidates with it (checked against the base model before sampling). Default: the packaged SR model when the default model is a cascade."),
    no_sr: bool = typer.Option(False, "--no-sr", help="Skip the super-resolution stage: write the base model's images."),
    sr_steps: Optional[int] = options.SR_STEPS,
    sr_guidance: float = options.SR_GUIDANCE,
    sr_start: float = options.SR_START,
    style: Optional[str] = options.STYLE,
    text_color: Optional[str] = options.TEXT_COLOR,
    background_color: Optional[str] = options.BACKGROUND_COLOR,
    colour: bool = options.COLOUR,
    glyphs: str = options.GLYPHS,
    no_anchor_ink: bool = options.NO_ANCHOR_INK,
    glyph_checkpoint: Optional[Path] = options.GLYPH_CHECKPOINT,
    ocr: bool = typer.Option(False, "--ocr", help="Read the chosen image with OCR and print its text and score even with one candidate and no SR."),
    ocr_processes: Optional[int] = options.OCR_PROCESSES,
    no_progress: bool = options.NO_PROGRESS,
) -> None:
    """Draw images that show PROMPT, optionally best-of-N by OCR and super-resolved.

    Pipeline (docs/design.md §3): the base model draws --candidates images per output, OCR reads and scores them (trigram similarity to the prompt), the weak ones are dropped, the survivors are upsampled with --sr-checkpoint, read again, and the best is written. With -n M and --candidates N it writes M images, each chosen from its own N candidates (M*N drawn; candidate i of output m uses seed + m*N + i).

    [bold]Examples[/]

      glyphfuse sample "hello world" -o hello.png --checkpoint runs/base64/checkpoint

      glyphfuse sample "the\\nwhat string" -o what.png -n 4 --grid --seed 7

      glyphfuse sample "OPEN 24h" -o open.png --sampler ddpm --steps 250 --guidance 4

      glyphfuse sample "quartz fjord" -o q.png -c ckpt/base64 --sr-checkpoint ckpt/sr128 --candidates 8 --keep-all q_candidates

      glyphfuse sample "SALE\\n50% OFF" -o sale.png --style sign --text-color white --background-color red

      glyphfuse sample "the\\nwhat string" -o cap.png --colour -n 4 --grid

      glyphfuse sample "OPEN 24h" -o open.png -c exports/paint128 --glyphs typeset --style screen
    """
    import torch

    from glyphfuse.sampling import generation, pipeline

    settings = options.sampling_settings(
        steps=steps, sampler=sampler, guidance=guidance, eta=eta, dynamic_threshold=dynamic_threshold, seed=seed,
        candidates=candidates, keep_only_if_above=keep_only_if_above, delete_under=delete_under,
        sr_steps=sr_steps, sr_guidance=sr_guidance, sr_start=sr_start, batch_size=batch_size,
        style=style, text_color=text_color, background_color=background_color, anchor_ink=not no_anchor_ink,
    )
    generation.check_output(out)  # a bad -o fails now, not after the sampling
    colour = options.wants_colour(colour, checkpoint, style, text_color, background_color)
    models = pipeline.load_models(checkpoint, sr_checkpoint, device, use_sr=not no_sr, glyph_source=glyphs, glyph_checkpoint=glyph_checkpoint,
                                  colour=colour)
    text = generation.parse_prompt(prompt)
    warning = generation.domain_warning(text, checkpoint if not colour else None)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    results = pipeline.sample_many(
        [text] * num, settings, **models, ocr=True if ocr else None, ocr_processes=ocr_processes, show_progress=not no_progress,
        keep_all_dir=keep_all,
    )
    paths = generation.save_images(torch.stack([result.tensor for result in results]), out, grid=grid)
    _print_written(results, paths, settings, (models["sr_config"] or models["base_config"]).image_size, grid, models["sr_model"] is not None)
    if keep_all is not None:
        print(f"saved all {sum(len(r.candidates) for r in results)} candidates to {keep_all} (listing: {keep_all / pipeline.KEEP_ALL_LISTING})")


def _print_written(results: list, paths: list[Path], settings, size: int, grid: bool, with_sr: bool) -> None:
    """What ``sample`` wrote: file(s), size, seeds and settings; the OCR read of each image."""
    n, seed = settings.candidates, settings.seed
    described = f"{settings.sampler} {settings.steps} steps, guidance {settings.guidance}"
    if with_sr:
        described += f", SR {settings.sr_steps or settings.steps} steps from {settings.sr_start:g} of the noise"
    if grid:
        print(f"wrote {paths[0]} (grid of {len(results)} images {size}x{size}, seeds {seed}..{seed + len(results) * n - 1}, {described})")
    for index, result in enumerate(results):
        first = seed + index * n
        seeds = f"seed {first + result.chosen_index}" + (f", best of {n} (seeds {first}..{first + n - 1})" if n > 1 else "")
        if not grid:
            print(f"wrote {paths[index]} ({size}x{size}, {seeds}, {described})")
        if result.similarity is not None:
            print(f"  OCR read {result.ocr_text!r}, similarity {result.similarity:.3f}")


# --- info ----------------------------------------------------------------------------------------
@app.command("info")
def info(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Describe this checkpoint folder."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Describe this preset in full (tiny, words32, lines64, lines128, lines256, scenes128, scenes256, inpaint128, paint128, base64, base128, sr256)."),
) -> None:
    """Describe the packaged default model (its recipe and measured scores) and the presets, or one checkpoint or preset: configuration and parameter counts.

    [bold]Examples[/]

      glyphfuse info

      glyphfuse info --preset base64

      glyphfuse info --checkpoint runs/base64/checkpoints/step_20000
    """
    from glyphfuse.core import checkpoint as ckpt
    from glyphfuse.core.config import PRESETS, get_preset
    from glyphfuse.sampling.generation import DEFAULT_MODEL_DIR, default_checkpoint_dir, packaged_painter_dir, packaged_sr_dir

    def describe(configs: dict) -> dict:
        return {name: (dict(ckpt.config_rows(cfg)), ckpt.parameter_counts(cfg)) for name, cfg in configs.items()}

    if checkpoint is not None and preset is not None:
        raise GlyphfuseError("give either --checkpoint or --preset, not both")
    out = Console()
    show_presets = checkpoint is None  # no option: default model (if any) and every preset
    if checkpoint is None and preset is None:
        try:
            checkpoint = default_checkpoint_dir()
            out.print(f"[bold]default model[/] (used when --checkpoint is not given): {escape(str(checkpoint))}")
            sr_dir = packaged_sr_dir()
            if sr_dir is not None:
                sr_config = ckpt.load_checkpoint_config(sr_dir)
                out.print(f"[bold]its SR stage[/] ({sr_config.name}, {sr_config.low_res_size} -> {sr_config.image_size} px; "
                          f"sample, eval and serve run it, --no-sr skips it): {escape(str(sr_dir))}")
            painter_dir = packaged_painter_dir()
            if painter_dir is not None:
                out.print(f"[bold]its colour painter[/] (--colour, --style, --text-color, --background-color; edit; "
                          f"glyphfuse info -c {escape(str(painter_dir))} for its card): {escape(str(painter_dir))}")
        except GlyphfuseError:
            out.print(f"no default model installed ({DEFAULT_MODEL_DIR} is empty)")
    if checkpoint is not None:
        _print_model_table(out, describe({str(checkpoint): ckpt.load_checkpoint_config(checkpoint)}), ckpt.read_checkpoint_info(checkpoint))
        card = ckpt.read_model_card(checkpoint)
        if card is not None:
            _print_model_card(out, card)
    if preset is not None:
        _print_model_table(out, describe({preset: get_preset(preset)}), {})
    elif show_presets:
        _print_preset_summary(out, {name: get_preset(name) for name in PRESETS})


def _print_preset_summary(out: Console, configs: dict) -> None:
    """Every preset on one row (``info --preset NAME`` shows one in full)."""
    from glyphfuse.core.checkpoint import parameter_counts

    table = Table(title="presets (glyphfuse info --preset NAME for one in full)")
    for column in ("preset", "image", "SR from", "patch", "U-Net channels", "text (width x depth, tokens, lines)", "parameters"):
        table.add_column(column, justify="left" if column in ("preset", "text (width x depth, tokens, lines)") else "right")
    for name, config in configs.items():
        unet, text = config.unet, config.text
        table.add_row(
            name, f"{config.image_size} px", f"{config.low_res_size} px" if config.low_res_size else "-", f"{unet.patch_size}x{unet.patch_size}",
            "-".join(str(unet.base_channels * mult) for mult in unet.channel_mult),
            f"{text.width} x {text.depth}, {text.max_length}, {text.max_lines}", f"{parameter_counts(config)['total'] / 1e6:.2f}M",
        )
    out.print(table)


def _print_model_table(out: Console, models: dict, about: dict) -> None:
    """One column per model: ``models`` maps a name to (config rows, parameter counts)."""
    names = list(models)
    rows = {name: models[name][0] for name in names}
    counts = {name: models[name][1] for name in names}
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
