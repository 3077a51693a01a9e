"""Synthetic training data (``glyphfuse synth-fonts``): text rendered with real fonts on flat
backgrounds, written as an image folder.

One image, drawn by :func:`glyphfuse.data.render.render_example`:

1. a transcript of 1-6 lines: common English words with realistic capitalisation, digits and
   punctuation (from the word list shipped in ``glyphfuse/resources/words.txt``), or one line of a
   ``--text-file`` (a literal ``\\n`` in it is a line break) (:mod:`glyphfuse.data.transcripts`);
2. a random font among those that have every character of the text (cmap check,
   :mod:`glyphfuse.data.fonts`);
3. a random font size, shrunk and the lines word-wrapped until the ink box fits inside the
   canvas margin (the transcript records the wrapped line breaks); the rendered ink box is
   checked, so a glyph is never clipped (:mod:`glyphfuse.data.layout`);
4. a flat background of random lightness (random colour with ``color``) and a text colour whose
   luminance differs from it by at least ``MIN_CONTRAST``.

A :class:`SynthStyle` narrows that variety, and named data recipes (:data:`DATA_RECIPES`, e.g.
``lines64``) are the styles the shipped models were trained on; see ``docs/data.md``. Two rules
hold for every style: a word is never split across lines, and no token of the packaged held-out
prompt sets is ever rendered.

This module writes a dataset (:func:`synthesize`): image ``i`` is drawn from its own random
generator seeded by ``(seed, i)``, so the files are byte-identical whatever the number of worker
processes; PNGs are written with zlib level 1. It also re-exports the names callers of the
synthetic-data API use (styles, recipes, held-out tokens, one-image rendering), so that
``from glyphfuse.data.synth import synthesize, SynthStyle, get_data_recipe`` is the one import.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from glyphfuse.core.controls import SceneControls
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.scenes import BackgroundBank
from glyphfuse.data.imagefolder import METADATA_FILE, MetadataWriter, write_example
from glyphfuse.data.fonts import discover_fonts, font_supports
from glyphfuse.core.progress import ProgressBar
from glyphfuse.data.render import Rendered, SynthSource, fixed_text_coverage, fixed_text_frame, render_example
from glyphfuse.data.transcripts import (
    COMMON_WORDS, DATA_RECIPES, SynthStyle, get_data_recipe, held_out_tokens, load_text_file, load_words, parse_range,
)

__all__ = [  # defined here, then re-exported from their homes
    "FRAME_RECIPE", "SynthSummary", "image_name", "prepare_out_dir", "recipe_glyphs", "recipe_text_frame", "style_fonts", "synthesize",
    "COMMON_WORDS", "DATA_RECIPES", "SynthStyle", "get_data_recipe", "held_out_tokens", "load_words", "parse_range",
    "Rendered", "SynthSource", "render_example",
]

CHUNK_SIZE = 64  # images per worker task

ChunkRows = list[tuple[str, str, SceneControls | None]]  # (file_name, text, controls) of each image of a chunk, in order


@dataclass
class SynthSummary:
    """What :func:`synthesize` wrote."""

    out_dir: Path
    count: int
    seconds: float
    fonts: int
    skipped_texts: int = 0  # --text-file lines no font could draw
    skipped_backgrounds: list[str] = field(default_factory=list)  # "<file>: <why>; skipped" of --backgrounds

    @property
    def images_per_second(self) -> float:
        return self.count / max(self.seconds, 1e-9)


def image_name(index: int, count: int) -> str:
    """Zero-padded file stem: 000000, 000001, ..."""
    return f"{index:0{max(6, len(str(count - 1)))}d}"


def prepare_out_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Create ``out_dir``; refuse a non-empty one unless ``overwrite`` (then the old .png/.txt
    files and metadata.jsonl at its top level are removed; nothing else is touched)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GlyphfuseError(f"output {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise GlyphfuseError(f"output folder {out_dir} is not empty; pass --overwrite to replace its images")
        for path in out_dir.iterdir():
            if path.is_file() and (path.suffix.lower() in (".png", ".txt") or path.name == METADATA_FILE):
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


# ------------------------------------------------------------------------------------------------
# What the images are drawn from: checked before anything is written
# ------------------------------------------------------------------------------------------------


# Bounds checked before anything is allocated: a 100,000 px canvas is 10 gigapixels.
MAX_SIZE = 2048  # px: the largest image_size a model config allows
MAX_COUNT = 10_000_000
MAX_WORKERS = 256


def _check_arguments(count: int, size: int, workers: int, style: SynthStyle) -> None:
    for option, value, low, high in (("--count", count, 1, MAX_COUNT), ("--size", size, 16, MAX_SIZE), ("--workers", workers, 1, MAX_WORKERS)):
        if not low <= value <= high:
            raise GlyphfuseError(f"{option} must be between {low} and {high}, not {value}")
    font_px = style.font_px
    if font_px is not None and not (4 <= font_px[0] <= font_px[1] <= size):
        raise GlyphfuseError(f"--font-size must be MIN-MAX px with 4 <= MIN <= MAX <= {size}, not {font_px[0]}-{font_px[1]}")


def style_fonts(fonts_dir: str | Path | None, style: SynthStyle) -> list[str]:
    """The font files of the fonts folder, only ``style.fonts`` when it names some."""
    font_paths = [str(path) for path in discover_fonts(fonts_dir)]
    if not style.fonts:
        return font_paths
    missing = sorted(set(style.fonts) - {Path(path).name for path in font_paths})
    if missing:
        raise GlyphfuseError(f"font(s) {', '.join(missing)} not in the fonts folder {fonts_dir or 'fonts/'}")
    return [path for path in font_paths if Path(path).name in style.fonts]


# the data recipe whose text frame inpainting masks and glyphfuse edit use: the colour models' data
FRAME_RECIPE = "scenes128"


@functools.lru_cache(maxsize=8)
def recipe_text_frame(recipe: str = FRAME_RECIPE, size: int = 128) -> Callable[[str], tuple[int, int, int, int]]:
    """text -> (left, top, right, bottom): where data of the recipe ``recipe`` writes that text
    (:func:`glyphfuse.data.render.fixed_text_frame` at the recipe's own size, with its font from
    fonts/), scaled to a ``size`` px canvas (rounded outwards). GlyphfuseError (here, once) for a
    recipe without a fixed text frame."""
    style = get_data_recipe(recipe)
    font_path = style_fonts(None, style)[0]
    fixed_text_frame("a", style, font_path, style.size)
    factor = size / style.size

    def frame_of(text: str) -> tuple[int, int, int, int]:
        left, top, right, bottom = fixed_text_frame(text, style, font_path, style.size)
        return math.floor(left * factor), math.floor(top * factor), math.ceil(right * factor), math.ceil(bottom * factor)

    return functools.lru_cache(maxsize=4096)(frame_of)


@functools.lru_cache(maxsize=8)
def recipe_glyphs(recipe: str = FRAME_RECIPE, size: int = 128) -> Callable[[str], np.ndarray]:
    """text -> (size, size) float32 ink coverage 0..1: the glyphs that data of the recipe
    ``recipe`` draws for that text, at their places (:func:`glyphfuse.data.render.fixed_text_coverage`
    at the recipe's own size, resized to ``size`` px). What a glyph-guided model is shown in
    training, and the ``typeset`` glyphs of sampling. GlyphfuseError for a recipe without fixed lines,
    and for a text that does not fit."""
    style = get_data_recipe(recipe)
    font_path = style_fonts(None, style)[0]
    fixed_text_frame("a", style, font_path, style.size)  # a recipe without a text frame fails here, once

    def glyphs_of(text: str) -> np.ndarray:
        coverage = fixed_text_coverage(text, style, font_path, style.size)
        if size != style.size:
            coverage = np.asarray(Image.fromarray(coverage).resize((size, size), Image.Resampling.BILINEAR))
        return coverage.astype(np.float32) / 255.0

    return functools.lru_cache(maxsize=4096)(glyphs_of)


def _drawable_texts(text_file: str | Path, font_paths: list[str]) -> tuple[list[str], int]:
    """The lines of ``text_file`` that some font can draw, and how many were skipped."""
    texts = load_text_file(text_file)
    usable = [text for text in texts if any(font_supports(path, text) for path in font_paths)]
    if not usable:
        raise GlyphfuseError(f"text file {text_file}: no font in the fonts folder has all characters of any line (first line: {texts[0]!r})")
    return usable, len(texts) - len(usable)


# ------------------------------------------------------------------------------------------------
# Rendering chunks of images, here or in worker processes
# ------------------------------------------------------------------------------------------------

_WORKER_SOURCE: SynthSource | None = None
_WORKER_OUT: Path | None = None


def _init_worker(source: SynthSource, out_dir: Path) -> None:
    global _WORKER_SOURCE, _WORKER_OUT
    _WORKER_SOURCE, _WORKER_OUT = source, out_dir


def _render_chunk(task: tuple[int, int, int]) -> ChunkRows:
    """Render and write images [start, stop) of ``count``; returns their (file_name, text) in order."""
    start, stop, count = task
    assert _WORKER_SOURCE is not None and _WORKER_OUT is not None
    rows = []
    for index in range(start, stop):
        rendered = render_example(_WORKER_SOURCE, index)
        rows.append((write_example(_WORKER_OUT, image_name(index, count), rendered.image, rendered.text), rendered.text, rendered.controls))
    return rows


@contextmanager
def _rendered_chunks(source: SynthSource, out_dir: Path, tasks: list[tuple[int, int, int]], workers: int) -> Iterator[Iterable[ChunkRows]]:
    """The rows of each task's chunk in task order, whatever finished first: rendered in this
    process (``workers == 1``) or by a pool of worker processes, stopped on leaving."""
    if workers == 1:
        _init_worker(source, out_dir)
        yield map(_render_chunk, tasks)
        return
    pool = multiprocessing.Pool(workers, initializer=_init_worker, initargs=(source, out_dir))
    try:
        yield pool.imap(_render_chunk, tasks)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def synthesize(
    out_dir: str | Path,
    count: int,
    size: int = 128,
    seed: int = 0,
    workers: int = 1,
    color: bool = False,
    text_file: str | Path | None = None,
    fonts_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    font_px: tuple[int, int] | None = None,
    style: SynthStyle | None = None,
    backgrounds: str | Path | BackgroundBank | None = None,
) -> SynthSummary:
    """Write ``count`` synthetic images (``name.png`` + ``name.txt``) and ``metadata.jsonl`` into
    ``out_dir``. The output is byte-identical for any ``workers``. ``font_px`` (--font-size)
    overrides the style's font sizes. ``backgrounds``: the photos and textures of a scene style
    (a folder, or a scanned bank; default the repository's backgrounds/); unusable files in it are
    skipped and listed in ``SynthSummary.skipped_backgrounds``."""
    style = (style or SynthStyle()).replace(font_px=font_px)  # the style carries the font size from here
    _check_arguments(count, size, workers, style)
    font_paths = style_fonts(fonts_dir, style)
    texts, skipped = _drawable_texts(text_file, font_paths) if text_file is not None else (None, 0)
    bank = None
    if style.scene_kinds:
        bank = backgrounds if isinstance(backgrounds, BackgroundBank) else BackgroundBank.scan(backgrounds)
    elif backgrounds is not None:
        raise GlyphfuseError("--backgrounds is for colour scenes: give a scene recipe (--recipe scenes128) or --kinds")
    source = SynthSource(size=size, seed=seed, color=color or bool(style.scene_kinds), font_paths=font_paths, texts=texts, words=load_words(),
                         style=style, backgrounds=bank)
    out = prepare_out_dir(out_dir, overwrite)
    tasks = [(start, min(start + CHUNK_SIZE, count), count) for start in range(0, count, CHUNK_SIZE)]
    started = time.perf_counter()
    with ProgressBar("synth-fonts", total=count, unit="images", shown=progress) as bar, MetadataWriter(out) as metadata:
        with _rendered_chunks(source, out, tasks, workers) as chunks:
            for rows in chunks:
                for file_name, text, controls in rows:
                    metadata.write(file_name, text, controls)
                bar.advance(len(rows))
    return SynthSummary(out, count, time.perf_counter() - started, len(font_paths), skipped, bank.skipped if bank else [])
