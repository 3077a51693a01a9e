"""``glyphfuse eval``: how legibly a model writes held-out prompts, and what OCR itself can read.

    from glyphfuse.evaluate import evaluate_model, load_prompts
    from glyphfuse.sampling.pipeline import load_models
    prompts, source = load_prompts("words")             # a packaged set, or a prompt file
    report = evaluate_model(prompts, **load_models("runs/base64/checkpoint"), n=4, seed=0, steps=50)
    report["summary"]  # {"n", "errors", "cer", "exact", "exact_ci", "similarity"}

Each prompt is sampled ``n`` times through the sampling pipeline (:mod:`glyphfuse.sampling.pipeline`; with
``candidates`` > 1 every sample is the OCR-best of that many), all images of a stage are read in
one batched OCR call, and the metrics of docs/design.md §4 are averaged
(:func:`glyphfuse.ocr.metrics.summarize`). How it samples is one
:class:`~glyphfuse.sampling.settings.SamplingSettings` (``settings=``, or its fields as keyword arguments,
as above). The report records the seed and every setting and holds no timings, so the same
settings give the same report. It is data: the ``eval`` command prints it as tables.

:func:`evaluate_ground_truth` reads a folder of real renderings (e.g. ``synth-fonts`` output) with
the same OCR: the score a perfect generator would get at that size (the OCR ceiling).

Packaged prompt sets (``glyphfuse/resources/prompts/*.txt``, mirrored in ``examples/prompts/``):
``words`` (single lowercase words), ``phrases`` (short phrases), ``multiline`` (2-3 line prompts and
the original test prompt) and others (:data:`PROMPT_SETS`). Their words are held out: none is in
the synth-fonts word lists.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

from glyphfuse import __version__
from glyphfuse.ocr import tesseract
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import write_bytes_atomic
from glyphfuse.data.imagefolder import encode_png
from glyphfuse.ocr.metrics import cer, exact, summarize
from glyphfuse.sampling.pipeline import PipelineResult, load_models, sample_many
from glyphfuse.data.prompts import PROMPT_SETS, load_prompts, prompt_set_text  # noqa: F401 (the eval API)
from glyphfuse.ocr.ranking import rank_folder
from glyphfuse.sampling.settings import SamplingSettings, resolve_settings


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
    settings: SamplingSettings | None = None,
    *,
    base_model,
    base_config,
    sr_model=None,
    sr_config=None,
    n: int = 4,
    device=None,
    ocr_processes: int | None = None,
    show_progress: bool = False,
    images_dir: str | Path | None = None,
    glyph_source: str = "model",
    glyph_model=None,
    glyph_config=None,
    **overrides,
) -> dict:
    """Sample every prompt ``n`` times and score the OCR reads: ``{"summary", "prompts"}``.

    settings: the :class:`~glyphfuse.sampling.settings.SamplingSettings`; keyword arguments named like its
    fields override it. Sample k of prompt p is pipeline job j = p * n + k (base seeds
    ``seed + j * candidates + i``). ``prompts`` rows: prompt, n, cer, exact, exact_ci, similarity
    (means) and its ``samples`` (seed of its first candidate, chosen ``candidate`` (its seed:
    seed + candidate), stage, ocr, similarity, cer, exact, exact_ci). images_dir: also save
    every chosen image there as ``pPPP_sK.png``. glyph_source, glyph_model, glyph_config: a painter's
    glyphs (:func:`glyphfuse.sampling.pipeline.sample_many`).
    """
    settings = resolve_settings(settings, **overrides)
    prompts = list(prompts)
    if not prompts:
        raise GlyphfuseError("eval: no prompts given")
    if n < 1:
        raise GlyphfuseError(f"eval: -n must be at least 1, got {n}")
    jobs = [prompt for prompt in prompts for _ in range(n)]
    kinds = balanced_kinds(base_config, settings, len(jobs))
    results = sample_many(
        jobs, settings, base_model=base_model, base_config=base_config, sr_model=sr_model, sr_config=sr_config,
        device=device, ocr=True, ocr_processes=ocr_processes, show_progress=show_progress,
        controls=None if kinds is None else [dataclasses.replace(settings.controls(), kind=kind) for kind in kinds],
        glyph_source=glyph_source, glyph_model=glyph_model, glyph_config=glyph_config,
    )
    if images_dir is not None:
        for j, result in enumerate(results):
            write_bytes_atomic(Path(images_dir) / f"p{j // n:03d}_s{j % n}.png", encode_png(result.image))
    return _model_report(prompts, results, n, settings, kinds)


def balanced_kinds(config, settings: SamplingSettings, jobs: int) -> list[str] | None:
    """A colour model's scene kind of each eval job: the asked ``--style``, else the model's kinds
    in turn (job j gets kinds[j % K]), so that every kind is scored on the same number of
    samples; None for a grey model."""
    if not config.scene_kinds:
        return None
    if settings.style is not None:
        return [settings.style] * jobs
    return [config.scene_kinds[j % len(config.scene_kinds)] for j in range(jobs)]


def _by_kind(rows: Sequence[dict]) -> dict:
    """{kind: summary} of the rows that carry a "kind" (colour scenes); {} when none does."""
    kinds = list(dict.fromkeys(row["kind"] for row in rows if row.get("kind")))
    return {kind: _summary([row for row in rows if row.get("kind") == kind]) for kind in kinds}


def _model_report(prompts: list[str], results: list[PipelineResult], n: int, settings: SamplingSettings,
                  kinds: list[str] | None = None) -> dict:
    """The ``{"summary", "prompts"}`` report of :func:`evaluate_model` from its pipeline results
    (colour models: each sample's ``kind`` and a ``by_kind`` summary too)."""
    prompt_rows, all_samples = [], []
    for p, prompt in enumerate(prompts):
        samples = []
        for k in range(n):
            j = p * n + k
            result = results[j]
            samples.append({"prompt": prompt, "sample": k, "seed": settings.seed + j * settings.candidates,
                            "candidate": result.chosen_index, "stage": result.stage,
                            **_score_row(prompt, result.ocr_text, result.similarity)})
            if kinds is not None:
                samples[-1]["kind"] = kinds[j]
        all_samples += samples
        prompt_rows.append({"prompt": prompt, **_summary(samples), "samples": [
            {key: value for key, value in sample.items() if key != "prompt"} for sample in samples]})
    report = {"summary": _summary(all_samples), "prompts": prompt_rows}
    if kinds is not None:
        report["by_kind"] = _by_kind(all_samples)
    return report


def evaluate_ground_truth(folder: str | Path, processes: int | None = None) -> dict:
    """Read a folder of ground-truth images (``name.png`` + transcript, e.g. synth-fonts output)
    with the same OCR: ``{"folder", "summary", "rows"}``, the OCR ceiling at that image size."""
    rows = rank_folder(folder, processes=processes)
    rows.sort(key=lambda row: row["file"])
    report = {"folder": str(folder), "summary": _summary(rows), "rows": rows}
    if any(row.get("kind") for row in rows):  # colour scenes: rank_folder gave each row its kind
        report["by_kind"] = _by_kind(rows)
    return report


def report_json(report: dict) -> str:
    """The eval report as JSON text (NaN written as null)."""
    return json.dumps(report, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def run_eval(
    checkpoint: str | Path | None = None,
    settings: SamplingSettings | None = None,
    *,
    sr_checkpoint: str | Path | None = None,
    prompts: str | Path | None = None,
    ground_truth: str | Path | None = None,
    n: int = 4,
    device: str = "auto",
    ocr_processes: int | None = None,
    show_progress: bool = False,
    images_dir: str | Path | None = None,
    use_sr: bool = True,
    glyph_source: str = "model",
    glyph_checkpoint: str | Path | None = None,
    colour: bool = False,
    **overrides,
) -> dict:
    """What ``glyphfuse eval`` runs: the model's scores on a prompt set (unless only
    ``ground_truth`` is given) and/or the OCR ceiling on a ground-truth folder. Returns the report
    ``{"glyphfuse", "settings", "model", "ground_truth"}`` (model / ground_truth null when not run).
    Its "settings" hold the checkpoints, the prompts, ``n``, the model's name and image size, and
    every field of the :class:`~glyphfuse.sampling.settings.SamplingSettings` as given (``settings``,
    keyword arguments named like its fields override it). Without ``checkpoint`` the packaged
    model is evaluated, with its packaged SR stage unless ``use_sr`` is False. A painter's glyphs come
    from ``glyph_source`` (the grey model ``glyph_checkpoint``, default the packaged one, or typeset);
    ``colour`` evaluates the packaged painter."""
    settings = resolve_settings(settings, **overrides)
    tesseract.check_tesseract()
    evaluate_the_model = checkpoint is not None or sr_checkpoint is not None or colour or ground_truth is None
    record: dict = {"checkpoint": None if checkpoint is None else str(checkpoint),
                    "sr_checkpoint": None if sr_checkpoint is None else str(sr_checkpoint)}
    report: dict = {"glyphfuse": __version__, "settings": record, "model": None, "ground_truth": None}
    if evaluate_the_model:
        prompt_list, source = load_prompts(prompts)
        models = load_models(checkpoint, sr_checkpoint, device, use_sr=use_sr, glyph_source=glyph_source, glyph_checkpoint=glyph_checkpoint,
                             colour=colour)
        if colour:
            record["checkpoint"] = "packaged painter"
        elif checkpoint is None:
            record["checkpoint"] = "default model"
            record["sr_checkpoint"] = "default model's SR" if models["sr_model"] is not None else None
        record.update({"prompts": source, "num_prompts": len(prompt_list), "n": n, **settings.to_dict(),
                       "base_model": models["base_config"].name,
                       "image_size": (models["sr_config"] or models["base_config"]).image_size})
        if models["base_config"].glyphs:
            record.update({"glyphs": glyph_source, "glyph_checkpoint": str(glyph_checkpoint or "default model") if glyph_source == "model" else None})
        report["model"] = evaluate_model(prompt_list, settings, **models, n=n, ocr_processes=ocr_processes,
                                         show_progress=show_progress, images_dir=images_dir)
    if ground_truth is not None:
        record["ground_truth"] = str(ground_truth)
        report["ground_truth"] = evaluate_ground_truth(ground_truth, processes=ocr_processes)
    return report
