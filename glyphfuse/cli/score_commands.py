"""``glyphfuse ocr-rank`` and ``eval``: read images with OCR and score models.

The library returns data (rows, reports); the tables that show them live here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from glyphfuse.cli import options
from glyphfuse.cli.app import app
from glyphfuse.core.files import check_writable, write_text_atomic
from glyphfuse.ocr.metrics import normalize_text


def display_text(text: str | None) -> str:
    """One-line rendering of a transcript for tables: newlines shown as ' / '."""
    return "" if text is None else normalize_text(text.replace("\n", " / "))


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


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
    no_progress: bool = options.NO_PROGRESS,
) -> None:
    """Read every image in FOLDER with OCR, score it against its prompt and rank best first.

    [bold]Examples[/]

      glyphfuse ocr-rank samples/ --prompt "the\\nwhat string" --top 5 --json rank.json

      glyphfuse ocr-rank data/synth128 --csv ranking.csv
    """
    from glyphfuse.ocr import ranking
    from glyphfuse.data.prompts import parse_prompt

    if prompt is not None:
        prompt = parse_prompt(prompt)
    for report_path in (json_out, csv_out):
        if report_path is not None:
            check_writable(report_path)  # before the OCR work, not after
    rows = ranking.top_rows(ranking.rank_folder(folder, prompt=prompt, processes=processes, case_insensitive=case_insensitive, show_progress=not no_progress), top)
    Console().print(ranking_table(f"ocr-rank {folder}", rows))
    stats = ranking.summary(rows)
    if stats["n"]:
        print(f"{stats['n']} images scored, {stats['errors']} errors: mean CER {stats['cer']:.3f}, exact {stats['exact']:.3f}, exact_ci {stats['exact_ci']:.3f}")
    else:
        print(f"no image could be scored ({stats['errors']} errors)")
    if json_out is not None:
        write_text_atomic(json_out, ranking.report_json(rows, prompt))
    if csv_out is not None:
        write_text_atomic(csv_out, ranking.report_csv(rows))


def ranking_table(title: str, rows: list[dict]) -> Table:
    """The ocr-rank rows (glyphfuse.ocr.ranking.rank_folder) as a table, best first, errors in red."""
    table = Table(title=escape(title))
    for column, justify in (("#", "right"), ("file", "left"), ("OCR text", "left"), ("similarity", "right"), ("CER", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        if row["error"] is None:
            table.add_row(str(row["rank"]), escape(row["file"]), escape(display_text(row["ocr"])), f"{row['similarity']:.3f}", f"{row['cer']:.3f}")
        else:
            table.add_row("-", escape(row["file"]), f"[red]error: {escape(row['error'])}[/]", "-", "-")
    return table


# --- eval ----------------------------------------------------------------------------------------
@app.command("eval")
def eval_command(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Base model checkpoint to evaluate. Default: the packaged model (skipped when only --ground-truth is given)."),
    sr_checkpoint: Optional[Path] = typer.Option(None, "--sr-checkpoint", help="Super-resolution checkpoint: evaluate the two-stage pipeline (default: the packaged SR model when the default model is a cascade)."),
    no_sr: bool = typer.Option(False, "--no-sr", help="Evaluate the base model alone (skip the packaged SR stage)."),
    prompts: Optional[str] = typer.Option(None, "--prompts", "-p", help="Prompt file (one per line, \\n = line break, # comments) or a packaged set: words (default), lines2, strings, short, phrases, multiline, original, cased, signs, alnum, readme."),
    num: int = typer.Option(4, "--num", "-n", min=1, max=10_000, help="Samples per prompt."),
    candidates: int = options.CANDIDATES,
    seed: int = options.SEED,
    steps: int = options.STEPS,
    sampler: str = options.SAMPLER,
    guidance: float = options.GUIDANCE,
    eta: float = options.ETA,
    dynamic_threshold: Optional[float] = options.DYNAMIC_THRESHOLD,
    sr_steps: Optional[int] = options.SR_STEPS,
    sr_guidance: float = options.SR_GUIDANCE,
    sr_start: float = options.SR_START,
    keep_only_if_above: float = options.KEEP_ONLY_IF_ABOVE,
    delete_under: float = options.DELETE_UNDER,
    style: Optional[str] = options.STYLE,
    text_color: Optional[str] = options.TEXT_COLOR,
    background_color: Optional[str] = options.BACKGROUND_COLOR,
    colour: bool = options.COLOUR,
    glyphs: str = options.GLYPHS,
    no_anchor_ink: bool = options.NO_ANCHOR_INK,
    glyph_checkpoint: Optional[Path] = options.GLYPH_CHECKPOINT,
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Folder of real images with transcripts (e.g. synth-fonts output): report the OCR ceiling on it too (or alone)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report (settings, summary, per-prompt rows) as JSON here (an existing file is replaced)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Also save every evaluated image into this folder (pPPP_sK.png)."),
    batch_size: int = options.BATCH_SIZE,
    ocr_processes: Optional[int] = options.OCR_PROCESSES,
    device: str = options.DEVICE,
    no_progress: bool = options.NO_PROGRESS,
) -> None:
    """Score how legibly a model writes held-out prompts: mean CER, exact and exact_ci by OCR.

    Each prompt is sampled -n times (with --candidates N: each the OCR-best of N; a colour model draws the scene kinds in turn, or --style, and the summary has a row per kind); all images are read with tesseract and compared with their prompts (docs/design.md §4). --ground-truth reads real renderings the same way: what a perfect generator would score at that size.

    [bold]Examples[/]

      glyphfuse eval --checkpoint runs/base64/checkpoint --prompts examples/prompts/words.txt -n 4 --json eval.json

      glyphfuse eval -c ckpt/base64 --sr-checkpoint ckpt/sr128 --prompts multiline --candidates 4

      glyphfuse eval -c exports/paint128 --prompts cased -n 1 --glyphs typeset

      glyphfuse synth-fonts /tmp/gt64 --count 200 --size 64 --seed 1 && glyphfuse eval --ground-truth /tmp/gt64
    """
    from glyphfuse import evaluate
    from glyphfuse.ocr import tesseract
    from glyphfuse.ocr import ranking

    settings = options.sampling_settings(
        steps=steps, sampler=sampler, guidance=guidance, eta=eta, dynamic_threshold=dynamic_threshold, seed=seed,
        candidates=candidates, keep_only_if_above=keep_only_if_above, delete_under=delete_under,
        sr_steps=sr_steps, sr_guidance=sr_guidance, sr_start=sr_start, batch_size=batch_size,
        style=style, text_color=text_color, background_color=background_color, anchor_ink=not no_anchor_ink,
    )
    if json_out is not None:
        check_writable(json_out)  # before the sampling and OCR work, not after
    if images is not None:
        check_writable(images / "p000_s0.png")
    with tesseract.progress_shown() if not no_progress else contextlib.nullcontext():  # also for the OCR of --ground-truth
        report = evaluate.run_eval(
            checkpoint, settings, sr_checkpoint=sr_checkpoint, prompts=prompts, ground_truth=ground_truth, n=num, use_sr=not no_sr,
            device=device, ocr_processes=ocr_processes, show_progress=not no_progress, images_dir=images,
            glyph_source=glyphs, glyph_checkpoint=glyph_checkpoint, colour=options.wants_colour(colour, checkpoint, style, text_color, background_color),
        )
    for table in report_tables(report):
        Console().print(table)
    if json_out is not None:
        write_text_atomic(json_out, evaluate.report_json(report))
        print(f"wrote {json_out}")


def report_tables(report: dict) -> list[Table]:
    """The eval report (glyphfuse.evaluate.run_eval) as tables: per-prompt rows (when a model was
    evaluated) and the summary (model and/or OCR ceiling)."""
    tables = []
    model = report.get("model")
    if model is not None:
        settings = report["settings"]
        per_prompt = Table(title=escape(f"eval {settings.get('checkpoint') or 'default model'} on {settings.get('prompts')}"))
        for column, justify in (("prompt", "left"), ("n", "right"), ("CER", "right"), ("exact", "right"), ("exact_ci", "right"),
                                ("similarity", "right"), ("OCR of sample 0", "left")):
            per_prompt.add_column(column, justify=justify)
        for row in model["prompts"]:
            first = row["samples"][0]["ocr"] if row["samples"] else None
            per_prompt.add_row(escape(display_text(row["prompt"])), str(row["n"]), _fmt(row["cer"]), _fmt(row["exact"]),
                               _fmt(row["exact_ci"]), _fmt(row["similarity"]), escape(display_text(first)))
        tables.append(per_prompt)
    summary = Table(title="eval summary")
    for column in ("", "images", "CER", "exact", "exact_ci", "similarity"):
        summary.add_column(column, justify="left" if not column else "right")
    truth = report.get("ground_truth")
    parts = [("model", model)] + ([(f"ground truth (OCR ceiling): {truth['folder']}", truth)] if truth is not None else [])
    for label, part in parts:
        if part is not None:
            for name, s in [(label, part["summary"])] + [(f"  {kind}", s) for kind, s in (part.get("by_kind") or {}).items()]:
                summary.add_row(escape(name), str(s["n"]), _fmt(s["cer"]), _fmt(s["exact"]), _fmt(s["exact_ci"]), _fmt(s["similarity"]))
    tables.append(summary)
    return tables
