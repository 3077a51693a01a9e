"""``glyphfuse ocr-rank`` and ``eval``: read images with OCR and score models."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from glyphfuse.cli.app import app, console
from glyphfuse.cli.options import finite, seed_range
from glyphfuse.core.errors import GlyphfuseError


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
    from glyphfuse.core.files import check_writable

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
    seed: int = typer.Option(0, "--seed", callback=seed_range, help="Random seed (recorded in the report). Same seed and settings -> same report."),
    steps: int = typer.Option(50, "--steps", min=1, help="Denoising steps of the base model."),
    sampler: str = typer.Option("ddim", "--sampler", help="ddim, ddpm or dpmpp-2m (DPM-Solver++(2M))."),
    guidance: float = typer.Option(3.0, "--guidance", "-g", callback=finite, help="Classifier-free guidance scale."),
    sr_steps: Optional[int] = typer.Option(None, "--sr-steps", min=1, help="Denoising steps of the SR model (default: --steps)."),
    sr_guidance: float = typer.Option(1.0, "--sr-guidance", callback=finite, help="Guidance scale of the SR model."),
    keep_only_if_above: float = typer.Option(0.8, "--keep-only-if-above", min=0.0, max=1.0, callback=finite, help="Rejection sampling: keep only candidates at or above this if the best reaches it."),
    delete_under: float = typer.Option(0.3, "--delete-under", min=0.0, max=1.0, callback=finite, help="Rejection sampling: otherwise drop candidates under this."),
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
    from glyphfuse.core.files import check_writable
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
