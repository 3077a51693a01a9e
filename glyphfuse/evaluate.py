"""``glyphfuse eval``: how legibly a model writes held-out prompts, and what OCR itself can read.

    from glyphfuse.evaluate import evaluate_model, load_prompts
    from glyphfuse.pipeline import load_models
    prompts, source = load_prompts("words")             # a packaged set, or a prompt file
    report = evaluate_model(prompts, **load_models("runs/base64/checkpoint"), n=4, seed=0, steps=50)
    report["summary"]  # {"n", "errors", "cer", "exact", "exact_ci", "similarity"}

Each prompt is sampled ``n`` times through the sampling pipeline (:mod:`glyphfuse.pipeline`; with
``candidates`` > 1 every sample is the OCR-best of that many), all images of a stage are read in
one batched OCR call, and the metrics of DESIGN.md §4 are averaged (:func:`glyphfuse.metrics.summarize`).
The report records the seed and every setting and holds no timings, so the same settings give
the same report.

:func:`evaluate_ground_truth` reads a folder of real renderings (e.g. ``synth-fonts`` output) with
the same OCR: the score a perfect generator would get at that size (the OCR ceiling).

Packaged prompt sets (``glyphfuse/resources/prompts/*.txt``, mirrored in ``examples/prompts/``):
``words`` (single lowercase words), ``phrases`` (short phrases), ``multiline`` (2-3 line prompts and
the original test prompt). Their words are held out: none is in the synth-fonts word lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.metrics import cer, exact, summarize
from glyphfuse.prompts import PROMPT_SETS, load_prompts, prompt_set_text  # noqa: F401 (the eval API)

def _nan_to_none(value):
    return None if isinstance(value, float) and value != value else value


def _score_row(prompt: str, text: str | None, similarity: float | None) -> dict:
    """Metrics of one image's OCR text against its prompt."""
    return {"ocr": text, "similarity": similarity, "cer": cer(text, prompt), "exact": exact(text, prompt),
            "exact_ci": exact(text, prompt, case_insensitive=True)}


def _summary(rows: Sequence[dict]) -> dict:
    stats = summarize(rows)
    scored = [row["similarity"] for row in rows if row.get("similarity") is not None]
    stats["similarity"] = sum(scored) / len(scored) if scored else float("nan")
    return {key: _nan_to_none(value) for key, value in stats.items()}


def evaluate_model(
    prompts: Sequence[str],
    *,
    base_model,
    base_config,
    sr_model=None,
    sr_config=None,
    n: int = 4,
    candidates: int = 1,
    seed: int = 0,
    steps: int = 50,
    sampler: str = "ddim",
    guidance: float = 3.0,
    sr_steps: int | None = None,
    sr_guidance: float = 1.0,
    keep_only_if_above: float = 0.8,
    delete_under: float = 0.3,
    device=None,
    ocr_processes: int | None = None,
    batch_size: int = 16,
    show_progress: bool = False,
    images_dir: str | Path | None = None,
) -> dict:
    """Sample every prompt ``n`` times and score the OCR reads: ``{"summary", "prompts"}``.

    Sample k of prompt p is pipeline job j = p * n + k (base seeds ``seed + j * candidates + i``).
    ``prompts`` rows: prompt, n, cer, exact, exact_ci, similarity (means) and its ``samples``
    (seed of its first candidate, chosen ``candidate`` (its seed: seed + candidate), stage, ocr,
    similarity, cer, exact, exact_ci). images_dir: also save every
    chosen image there as ``pPPP_sK.png``.
    """
    from glyphfuse.pipeline import sample_many

    prompts = list(prompts)
    if not prompts:
        raise GlyphfuseError("eval: no prompts given")
    if n < 1:
        raise GlyphfuseError(f"eval: -n must be at least 1, got {n}")
    jobs = [prompt for prompt in prompts for _ in range(n)]
    results = sample_many(
        jobs, base_model=base_model, base_config=base_config, sr_model=sr_model, sr_config=sr_config, candidates=candidates,
        keep_only_if_above=keep_only_if_above, delete_under=delete_under, steps=steps, sampler=sampler, guidance=guidance,
        seed=seed, device=device, sr_steps=sr_steps, sr_guidance=sr_guidance, ocr=True, ocr_processes=ocr_processes,
        batch_size=batch_size, show_progress=show_progress,
    )
    if images_dir is not None:
        from glyphfuse.core.files import write_bytes_atomic
        from glyphfuse.data import encode_png

        Path(images_dir).mkdir(parents=True, exist_ok=True)
        for j, result in enumerate(results):
            write_bytes_atomic(Path(images_dir) / f"p{j // n:03d}_s{j % n}.png", encode_png(result.image))
    prompt_rows, all_samples = [], []
    for p, prompt in enumerate(prompts):
        samples = []
        for k in range(n):
            j = p * n + k
            result = results[j]
            sample = {"prompt": prompt, "sample": k, "seed": seed + j * candidates, "candidate": result.chosen_index,
                      "stage": result.stage, **_score_row(prompt, result.ocr_text, result.similarity)}
            samples.append(sample)
        all_samples += samples
        prompt_rows.append({"prompt": prompt, **_summary(samples), "samples": [
            {key: value for key, value in sample.items() if key != "prompt"} for sample in samples]})
    return {"summary": _summary(all_samples), "prompts": prompt_rows}


def evaluate_ground_truth(folder: str | Path, processes: int | None = None) -> dict:
    """Read a folder of ground-truth images (``name.png`` + transcript, e.g. synth-fonts output)
    with the same OCR: ``{"folder", "summary", "rows"}``, the OCR ceiling at that image size."""
    from glyphfuse.ranking import rank_folder

    rows = rank_folder(folder, processes=processes)
    rows.sort(key=lambda row: row["file"])
    return {"folder": str(folder), "summary": _summary(rows), "rows": rows}


def report_json(report: dict) -> str:
    """The eval report as JSON text (NaN written as null)."""
    return json.dumps(report, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report_tables(report: dict) -> list:
    """Rich tables: per-prompt rows (when a model was evaluated) and the summary."""
    from rich.markup import escape
    from rich.table import Table

    from glyphfuse.ranking import display_text

    tables = []
    model = report.get("model")
    if model is not None:
        per_prompt = Table(title=f"eval {report['settings'].get('checkpoint') or 'default model'} on {report['settings'].get('prompts')}")
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
    if model is not None:
        s = model["summary"]
        summary.add_row("model", str(s["n"]), _fmt(s["cer"]), _fmt(s["exact"]), _fmt(s["exact_ci"]), _fmt(s["similarity"]))
    truth = report.get("ground_truth")
    if truth is not None:
        s = truth["summary"]
        summary.add_row(f"ground truth (OCR ceiling): {escape(truth['folder'])}", str(s["n"]), _fmt(s["cer"]), _fmt(s["exact"]),
                        _fmt(s["exact_ci"]), _fmt(s["similarity"]))
    tables.append(summary)
    return tables


def run_eval(
    checkpoint: str | Path | None = None,
    *,
    sr_checkpoint: str | Path | None = None,
    prompts: str | Path | None = None,
    ground_truth: str | Path | None = None,
    n: int = 4,
    candidates: int = 1,
    seed: int = 0,
    steps: int = 50,
    sampler: str = "ddim",
    guidance: float = 3.0,
    sr_steps: int | None = None,
    sr_guidance: float = 1.0,
    keep_only_if_above: float = 0.8,
    delete_under: float = 0.3,
    device: str = "auto",
    ocr_processes: int | None = None,
    batch_size: int = 16,
    show_progress: bool = False,
    images_dir: str | Path | None = None,
) -> dict:
    """What ``glyphfuse eval`` runs: the model's scores on a prompt set (unless only
    ``ground_truth`` is given) and/or the OCR ceiling on a ground-truth folder. Returns the report
    ``{"glyphfuse", "settings", "model", "ground_truth"}`` (model / ground_truth null when not run)."""
    from glyphfuse import __version__
    from glyphfuse.ocr import check_tesseract

    check_tesseract()
    evaluate_the_model = checkpoint is not None or sr_checkpoint is not None or ground_truth is None
    settings: dict = {"checkpoint": None if checkpoint is None else str(checkpoint),
                      "sr_checkpoint": None if sr_checkpoint is None else str(sr_checkpoint)}
    report: dict = {"glyphfuse": __version__, "settings": settings, "model": None, "ground_truth": None}
    if evaluate_the_model:
        from glyphfuse.pipeline import load_models

        prompt_list, source = load_prompts(prompts)
        models = load_models(checkpoint, sr_checkpoint, device)
        if checkpoint is None:
            settings["checkpoint"] = "default model"
        settings.update({
            "prompts": source, "num_prompts": len(prompt_list), "n": n, "candidates": candidates, "seed": seed,
            "steps": steps, "sampler": sampler, "guidance": guidance,
            "sr_steps": (sr_steps or steps) if sr_checkpoint is not None else None,
            "sr_guidance": sr_guidance if sr_checkpoint is not None else None,
            "keep_only_if_above": keep_only_if_above, "delete_under": delete_under,
            "base_model": models["base_config"].name, "image_size": (models["sr_config"] or models["base_config"]).image_size,
        })
        report["model"] = evaluate_model(
            prompt_list, **models, n=n, candidates=candidates, seed=seed, steps=steps, sampler=sampler, guidance=guidance,
            sr_steps=sr_steps, sr_guidance=sr_guidance, keep_only_if_above=keep_only_if_above, delete_under=delete_under,
            ocr_processes=ocr_processes, batch_size=batch_size, show_progress=show_progress, images_dir=images_dir,
        )
    if ground_truth is not None:
        settings["ground_truth"] = str(ground_truth)
        report["ground_truth"] = evaluate_ground_truth(ground_truth, processes=ocr_processes)
    return report
