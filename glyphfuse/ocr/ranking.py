"""OCR ranking and rejection: score images against their prompts, prune and pick candidates.

The pure functions (:func:`score_candidates`, :func:`prune_candidates`, :func:`pick_best`) are the
rejection-sampling rules of docs/design.md §3 and need no model; ``sample --candidates`` uses them.
:func:`rank_folder` is what ``glyphfuse ocr-rank DIR`` runs: read every image in a folder, score it
against its transcript, return rows sorted best first. Everything here returns data (rows,
JSON and CSV text); the ``ocr-rank`` and ``eval`` commands print it as tables.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from glyphfuse.ocr import reader, tesseract
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.images import load_image
from glyphfuse.data.imagefolder import scan_image_folder
from glyphfuse.ocr.metrics import cer, exact, summarize, trigram_similarity

RANK_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
CSV_COLUMNS = ("rank", "file", "prompt", "ocr", "similarity", "cer", "exact", "exact_ci", "error")


# ---------------------------------------------------------------------------------------------
# Rejection-sampling rules (pure)
# ---------------------------------------------------------------------------------------------


def score_candidates(texts_read: Sequence[str], prompt: str) -> list[float]:
    """Trigram similarity of each OCR transcript to the prompt (docs/design.md §4), in [0, 1]."""
    return [trigram_similarity(prompt, text) for text in texts_read]


def pick_best(scores: Sequence[float]) -> int:
    """Index of the highest score (the first one on ties)."""
    if not scores:
        raise ValueError("pick_best needs at least one score")
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def prune_candidates(scores: Sequence[float], keep_only_if_above: float = 0.8, delete_under: float = 0.3) -> list[int]:
    """Indices of the candidates to keep, in their original order (docs/design.md §3).

    If the best score reaches ``keep_only_if_above``, keep only the candidates at or above it;
    otherwise drop those under ``delete_under``. Never drops them all: the best one always stays.
    Whatever is dropped scores no higher than anything kept.
    """
    if not scores:
        return []
    if max(scores) >= keep_only_if_above:
        kept = [i for i, score in enumerate(scores) if score >= keep_only_if_above]
    else:
        kept = [i for i, score in enumerate(scores) if score >= delete_under]
    return kept or [pick_best(scores)]


# ---------------------------------------------------------------------------------------------
# ocr-rank: a folder of images
# ---------------------------------------------------------------------------------------------


def _transcripts(root: Path) -> tuple[dict[Path, str], dict[Path, str], dict[Path, str]]:
    """({image path: transcript}, {image path: why it has none}, {image path: scene kind}) from the
    shared folder reader."""
    examples, problems = scan_image_folder(root)
    texts = {example.image_path.resolve(): example.text for example in examples}
    kinds = {example.image_path.resolve(): example.controls.kind for example in examples if example.controls and example.controls.kind}
    reasons: dict[Path, str] = {}
    for problem in problems:
        # Problems read "<path>: <reason>"; keep the reason for the image it names.
        path, _, reason = problem.partition(": ")
        reasons.setdefault(Path(path).resolve(), reason.removesuffix("; skipped") or "no transcript")
    return texts, reasons, kinds


def list_images(root: Path) -> list[Path]:
    """Image files (png/jpg/jpeg/webp) under ``root``, recursively, sorted; hidden files skipped."""
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in RANK_IMAGE_EXTENSIONS and not p.name.startswith("."))


def rank_folder(root: str | Path, prompt: str | None = None, processes: int | None = None,
                case_insensitive: bool = False, show_progress: bool | None = None) -> list[dict]:
    """OCR every image in ``root`` and score it against its prompt; rows sorted best first.

    The prompt is ``prompt`` when given (the same for every image), else each image's transcript
    (``name.txt`` or its ``metadata.jsonl`` row). Each row: ``file`` (relative path), ``prompt``,
    ``ocr``, ``similarity`` (trigram), ``cer``, ``exact``, ``exact_ci`` and ``error`` (None when
    fine), and ``kind`` for a colour scene whose metadata row names one. Images that cannot be decoded or have no transcript become rows with an ``error`` and
    sort last. With ``case_insensitive`` the similarity and CER compare case-folded text.
    ``show_progress``: an OCR progress bar on stderr (see :func:`glyphfuse.ocr.reader.read_images`).
    """
    tesseract.check_tesseract()  # fail fast, before decoding any image
    root = Path(root)
    if not root.is_dir():
        raise GlyphfuseError(f"{root}: no such folder")
    paths = list_images(root)
    if not paths:
        raise GlyphfuseError(f"{root}: no images (png, jpg, webp) found")
    texts, reasons, kinds = ({}, {}, {}) if prompt is not None else _transcripts(root)

    rows: list[dict] = []
    readable: list[tuple[dict, object]] = []  # (row, decoded image) pairs still to OCR
    for path in paths:
        row = {"file": path.relative_to(root).as_posix(), "prompt": None, "ocr": None, "similarity": None,
               "cer": None, "exact": None, "exact_ci": None, "error": None}
        rows.append(row)
        row["prompt"] = prompt if prompt is not None else texts.get(path.resolve())
        if path.resolve() in kinds:  # a colour scene's kind (its metadata row): eval reports by kind
            row["kind"] = kinds[path.resolve()]
        if row["prompt"] is None:
            row["error"] = reasons.get(path.resolve(), "no transcript")
            continue
        try:
            readable.append((row, load_image(path)))
        except GlyphfuseError as exc:
            row["error"] = str(exc).removeprefix(f"{path}: ")

    transcripts = reader.read_images([image for _, image in readable], processes=processes, show_progress=show_progress)
    for (row, _), text in zip(readable, transcripts):
        target, read = row["prompt"], text
        if case_insensitive:
            target, read = target.casefold(), read.casefold()
        row["ocr"] = text
        row["similarity"] = trigram_similarity(target, read)
        row["cer"] = cer(text, row["prompt"], case_insensitive=case_insensitive)
        row["exact"] = exact(text, row["prompt"])
        row["exact_ci"] = exact(text, row["prompt"], case_insensitive=True)

    rows.sort(key=lambda r: (r["error"] is not None, -(r["similarity"] or 0.0), r["cer"] or 0.0, r["file"]))
    rank = 0
    for row in rows:
        if row["error"] is None:
            rank += 1
            row["rank"] = rank
        else:
            row["rank"] = None
    return rows


def top_rows(rows: list[dict], top: int | None) -> list[dict]:
    """The ``top`` best scored rows plus every error row (errors are always reported)."""
    if top is None:
        return rows
    return [row for row in rows if row["error"] is not None or row["rank"] <= top]


def summary(rows: list[dict]) -> dict:
    """Mean CER / exact / exact_ci over the scored rows (see :func:`glyphfuse.ocr.metrics.summarize`)."""
    return summarize(rows)


def report_json(rows: list[dict], prompt: str | None = None) -> str:
    """The JSON report: ``{"prompt", "summary", "rows"}`` (``prompt`` is the --prompt override or null)."""
    stats = summary(rows)
    stats = {k: (None if isinstance(v, float) and v != v else v) for k, v in stats.items()}  # NaN -> null
    return json.dumps({"prompt": prompt, "summary": stats, "rows": rows}, ensure_ascii=False, indent=2) + "\n"


def report_csv(rows: list[dict]) -> str:
    """The CSV report: one line per image, columns :data:`CSV_COLUMNS` (newlines kept, quoted)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if row.get(key) is None else row[key]) for key in CSV_COLUMNS})
    return buffer.getvalue()
