"""Synthetic training data: text rendered with real fonts on flat backgrounds.

Every image ``i`` is drawn from its own random generator seeded by ``(seed, i)``, so a dataset
is byte-identical whatever the number of worker processes. One image:

1. a transcript of 1-6 lines: common English words with realistic capitalisation, digits and
   punctuation (from the word list shipped in ``glyphfuse/data/words.txt``), or one line of a
   ``--text-file`` (a literal ``\\n`` in it is a line break);
2. a random font among those that have every character of the text (cmap check);
3. a random font size, shrunk and the lines word-wrapped until the ink box fits inside the
   canvas margin (the transcript records the wrapped line breaks); the rendered ink box is
   checked, so a glyph is never clipped;
4. a flat background of random lightness (random colour with ``color``) and a text colour whose
   luminance differs from it by at least :data:`MIN_CONTRAST`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data import METADATA_FILE, MetadataWriter, write_example
from glyphfuse.fonts import discover_fonts, font_supports, load_font

MAX_LINES = 6  # most lines in one image
MIN_CONTRAST = 100  # least |luminance(text) - luminance(background)|, 0..255
MIN_FONT_PX = 10  # smallest font size (px) at 128 px; tesseract reads ~9-10 px text upscaled 2x
CHUNK_SIZE = 64  # images per worker task

# The most frequent English words; mixed with the larger word list so that lines read naturally.
COMMON_WORDS = (
    "the of and to a in is it you that he was for on are with as I his they be at one have this "
    "from or had by not word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form great think say help low line before "
    "turn cause same mean move right boy old too does tell set three want air well also play "
    "small end put home read hand port large spell add even land here must big high such follow "
    "act why ask men change went light kind off need house picture try us again animal point "
    "mother world near build self earth father head stand own page should country found answer "
    "school grow study still learn plant cover food sun four thought let keep eye never last door"
).split()

PUNCTUATION_AFTER = (",", ",", ".", ".", "!", "?", ":", ";", "...")
ENCLOSING = (('"', '"'), ("(", ")"), ("'", "'"), ("[", "]"))
SYMBOL_TOKENS = ("&", "-", "+", "=", "/", "#1", "@", "*")


@lru_cache(maxsize=1)
def load_words() -> tuple[str, ...]:
    """The shipped word list (glyphfuse/data/words.txt), one lowercase word a line."""
    text = resources.files("glyphfuse").joinpath("data/words.txt").read_text(encoding="utf-8")
    return tuple(word for word in text.split() if word)


def load_text_file(path: str | Path) -> list[str]:
    """Transcripts from a text file: one per non-blank line; a literal ``\\n`` is a line break."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GlyphfuseError(f"text file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GlyphfuseError(f"text file {path} is not readable UTF-8 text ({exc})") from None
    texts = [line.strip().replace("\\n", "\n") for line in raw.splitlines() if line.strip()]
    if not texts:
        raise GlyphfuseError(f"text file {path} has no non-blank lines")
    return texts


# ------------------------------------------------------------------------------------------------
# Random transcripts
# ------------------------------------------------------------------------------------------------


def _random_number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        return str(rng.randint(0, 99))
    if kind < 0.55:
        return str(rng.randint(1900, 2030))
    if kind < 0.65:
        return f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
    if kind < 0.75:
        return f"{rng.randint(1, 100)}%"
    if kind < 0.85:
        return f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}"
    return str(rng.randint(100, 99999))


def _random_word(rng: random.Random, words: Sequence[str]) -> str:
    if rng.random() < 0.45:
        return rng.choice(COMMON_WORDS)
    return rng.choice(words)


def _random_line(rng: random.Random, words: Sequence[str], n_tokens: int) -> str:
    style = rng.choices(("sentence", "lower", "title", "upper"), weights=(45, 25, 18, 12))[0]
    tokens: list[str] = []
    for position in range(n_tokens):
        roll = rng.random()
        if roll < 0.10:
            token = _random_number(rng)
        elif roll < 0.13 and 0 < position < n_tokens - 1:
            token = rng.choice(SYMBOL_TOKENS)
        else:
            token = _random_word(rng, words)
            if rng.random() < 0.03:
                token = f"{token}-{_random_word(rng, words)}"
            if style == "upper":
                token = token.upper()
            elif style == "title" or (style == "sentence" and position == 0):
                token = token[:1].upper() + token[1:]
            if rng.random() < 0.04:
                left, right = rng.choice(ENCLOSING)
                token = f"{left}{token}{right}"
            if position < n_tokens - 1 and rng.random() < 0.08:
                token += rng.choice(PUNCTUATION_AFTER)
        tokens.append(token)
    line = " ".join(tokens)
    if style == "sentence" and rng.random() < 0.4:
        line += rng.choice((".", ".", "!", "?"))
    return line


def random_transcript(rng: random.Random, words: Sequence[str], max_lines: int = MAX_LINES) -> list[str]:
    """1..max_lines lines of 1-4 tokens each (fewer lines are more likely)."""
    weights = (30, 25, 18, 12, 8, 7)[:max(1, max_lines)]
    n_lines = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
    return [_random_line(rng, words, rng.choices((1, 2, 3, 4), weights=(30, 35, 25, 10))[0]) for _ in range(n_lines)]


# ------------------------------------------------------------------------------------------------
# Layout and rendering
# ------------------------------------------------------------------------------------------------


def font_size_range(size: int) -> tuple[int, int]:
    """(smallest, largest) font size in px for a size x size canvas."""
    low = max(8, round(size * MIN_FONT_PX / 128))
    high = max(low + 1, round(size * 0.28))
    return low, high


def canvas_margin(size: int) -> int:
    """Blank border (px) that no ink may enter."""
    return max(1, round(size * 0.05))


def max_lines_for(size: int) -> int:
    """How many lines a generated transcript may start with on this canvas (wrapping may add)."""
    return max(1, min(MAX_LINES, size // 20))


_ADVANCES: dict[tuple[str, float], dict[str, float]] = {}


def _ink_width(font, text: str) -> float:
    """Width estimate of ``text`` from cached per-character advances (no kerning, no overhang).
    Exact ink boxes are measured once the lines are chosen (see :func:`layout_block`); measuring
    every wrap candidate exactly would cost most of the render time."""
    advances = _ADVANCES.setdefault((str(font.path), font.size), {})
    width = 0.0
    for char in text:
        advance = advances.get(char)
        if advance is None:
            advance = advances[char] = font.getlength(char)
        width += advance
    return width


def _split_long_word(font, word: str, width: int) -> list[str]:
    """Hard-break a word wider than ``width`` into pieces that fit (last resort)."""
    pieces, current = [], ""
    for char in word:
        if current and _ink_width(font, current + char) > width:
            pieces.append(current)
            current = char
        else:
            current += char
    pieces.append(current)
    return pieces


def wrap_lines(font, lines: Sequence[str], width: int, hard: bool = False) -> list[str] | None:
    """Greedy word wrap of each line to ``width`` px of ink. A single word wider than ``width``
    gives None, unless ``hard`` (then it is broken between characters)."""
    wrapped: list[str] = []
    for line in lines:
        words = line.split()
        if not words:
            wrapped.append("")
            continue
        current = ""
        for word in words:
            candidate = f"{current} {word}" if current else word
            if _ink_width(font, candidate) <= width:
                current = candidate
                continue
            if current:
                wrapped.append(current)
            if _ink_width(font, word) <= width:
                current = word
            elif hard:
                *full, current = _split_long_word(font, word, width)
                wrapped.extend(full)
            else:
                return None
        wrapped.append(current)
    return wrapped


@dataclass
class Layout:
    """Where each line's drawing origin goes, relative to the block's ink box top-left."""

    lines: list[str]
    origins: list[tuple[int, int]]  # (x, y) per line, PIL anchor "la"
    width: int  # ink box width (px)
    height: int  # ink box height (px)


def layout_block(font, lines: Sequence[str], pitch: int, align: str) -> Layout:
    """Place ``lines`` one ``pitch`` apart, aligned left/center/right by their ink boxes."""
    boxes = [font.getbbox(line) if line else None for line in lines]
    widths = [(box[2] - box[0]) if box else 0 for box in boxes]
    block_width = max(widths)
    tops = [k * pitch + box[1] for k, box in enumerate(boxes) if box]
    bottoms = [k * pitch + box[3] for k, box in enumerate(boxes) if box]
    top, bottom = min(tops), max(bottoms)
    origins = []
    for k, (box, width) in enumerate(zip(boxes, widths)):
        left = box[0] if box else 0
        if align == "center":
            x = (block_width - width) // 2 - left
        elif align == "right":
            x = block_width - width - left
        else:
            x = -left
        origins.append((x, k * pitch - top))
    return Layout(list(lines), origins, block_width, bottom - top)


def _fit(font_path: str, lines: Sequence[str], start_px: int, low_px: int, room: int, spacing: float, align: str) -> tuple[int, Layout]:
    """Largest font size <= start_px (down to low_px) whose word-wrapped block fits in a
    room x room box. At low_px the text is hard-wrapped and trailing lines are dropped until it
    fits; raises _DoesNotFit when nothing is left."""
    px = start_px
    while True:
        final = px <= low_px
        font = load_font(font_path, px)
        ascent, descent = font.getmetrics()
        pitch = max(1, round((ascent + descent) * spacing))
        wrapped = wrap_lines(font, lines, room, hard=final)
        if wrapped is not None and (final or len(wrapped) <= MAX_LINES):
            wrapped = wrapped[:MAX_LINES]
            while wrapped and not wrapped[-1].strip():
                wrapped.pop()
            while wrapped:
                layout = layout_block(font, wrapped, pitch, align)
                if layout.width <= room and layout.height <= room:
                    return px, layout
                if not final:
                    break
                wrapped.pop()
        if final:
            raise _DoesNotFit
        px = max(low_px, int(px * 0.9))


class _DoesNotFit(Exception):
    pass


def _luminance(color: int | tuple[int, int, int]) -> float:
    if isinstance(color, int):
        return float(color)
    red, green, blue = color
    return 0.299 * red + 0.587 * green + 0.114 * blue


def random_colors(rng: random.Random, color: bool) -> tuple:
    """(background, text colour) with |luminance difference| >= MIN_CONTRAST."""
    if not color:
        background = rng.randint(0, 255)
        choices = [v for v in (rng.randint(0, max(0, background - MIN_CONTRAST)), rng.randint(min(255, background + MIN_CONTRAST), 255)) if abs(v - background) >= MIN_CONTRAST]
        return background, rng.choice(choices)
    background = tuple(rng.randint(0, 255) for _ in range(3))
    for _ in range(20):
        foreground = tuple(rng.randint(0, 255) for _ in range(3))
        if abs(_luminance(foreground) - _luminance(background)) >= MIN_CONTRAST:
            return background, foreground
    return background, (0, 0, 0) if _luminance(background) >= 128 else (255, 255, 255)


@dataclass
class Rendered:
    """One synthetic example and how it was made."""

    image: Image.Image
    text: str  # transcript, lines joined with "\n"
    ink_bbox: tuple[int, int, int, int]  # (left, top, right, bottom) of non-background pixels
    margin: int
    font_path: str
    font_size: int
    background: int | tuple[int, int, int]
    foreground: int | tuple[int, int, int]


@dataclass
class SynthSource:
    """What every image is drawn from (shared by all workers)."""

    size: int
    seed: int
    color: bool
    font_paths: list[str]
    texts: list[str] | None = None  # --text-file transcripts; None = random words
    words: tuple[str, ...] = field(default_factory=tuple)


def image_rng(seed: int, index: int) -> random.Random:
    """The generator for image ``index``: depends only on (seed, index)."""
    return random.Random(f"glyphfuse-synth:{seed}:{index}")


def render_example(source: SynthSource, index: int) -> Rendered:
    """Draw image ``index`` of a dataset (deterministic in source.seed and index)."""
    rng = image_rng(source.seed, index)
    size = source.size
    margin = canvas_margin(size)
    room = size - 2 * margin
    low_px, high_px = font_size_range(size)
    for attempt in range(20):
        if source.texts is not None:
            lines = rng.choice(source.texts).split("\n")
        else:
            lines = random_transcript(rng, source.words or load_words(), max_lines_for(size))
        candidates = [path for path in source.font_paths if font_supports(path, "".join(lines))]
        if not candidates:
            continue
        font_path = rng.choice(candidates)
        # log-uniform size: small text (more words per image) is as common as large text
        start_px = round(low_px * (high_px / low_px) ** rng.random())
        align = rng.choice(("left", "left", "center", "right"))
        try:
            font_px, layout = _fit(font_path, lines, start_px, low_px, room, rng.uniform(1.0, 1.25), align)
        except _DoesNotFit:
            continue
        left = margin + rng.randint(0, room - layout.width)
        top = margin + rng.randint(0, room - layout.height)
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        font = load_font(font_path, font_px)
        for line, (x, y) in zip(layout.lines, layout.origins):
            if line:
                draw.text((left + x, top + y), line, font=font, fill=255)
        bbox = mask.getbbox()
        if bbox is None or bbox[0] < margin or bbox[1] < margin or bbox[2] > size - margin or bbox[3] > size - margin:
            continue  # nothing drawn, or ink outside the predicted box: try another sample
        background, foreground = random_colors(rng, source.color)
        image = Image.new("RGB" if source.color else "L", (size, size), background)
        image.paste(foreground, (0, 0, size, size), mask)
        return Rendered(image, "\n".join(layout.lines), bbox, margin, font_path, font_px, background, foreground)
    raise GlyphfuseError(f"could not render image {index}: no font has all characters of the sampled texts, or the text never fits a {size} px canvas")


# ------------------------------------------------------------------------------------------------
# Dataset writing (parallel, deterministic)
# ------------------------------------------------------------------------------------------------

_WORKER_SOURCE: SynthSource | None = None
_WORKER_OUT: Path | None = None


def _init_worker(source: SynthSource, out_dir: Path) -> None:
    global _WORKER_SOURCE, _WORKER_OUT
    _WORKER_SOURCE, _WORKER_OUT = source, out_dir


def image_name(index: int, count: int) -> str:
    """Zero-padded file stem: 000000, 000001, ..."""
    return f"{index:0{max(6, len(str(count - 1)))}d}"


def _render_chunk(task: tuple[int, int, int]) -> list[tuple[str, str]]:
    """Render and write images [start, stop); returns their (file_name, text) in order."""
    start, stop, count = task
    assert _WORKER_SOURCE is not None and _WORKER_OUT is not None
    rows = []
    for index in range(start, stop):
        rendered = render_example(_WORKER_SOURCE, index)
        rows.append((write_example(_WORKER_OUT, image_name(index, count), rendered.image, rendered.text), rendered.text))
    return rows


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


@dataclass
class SynthSummary:
    out_dir: Path
    count: int
    seconds: float
    fonts: int

    @property
    def images_per_second(self) -> float:
        return self.count / max(self.seconds, 1e-9)


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
) -> SynthSummary:
    """Write ``count`` synthetic images (``name.png`` + ``name.txt``) and ``metadata.jsonl`` into
    ``out_dir``. The output is byte-identical for any ``workers``."""
    if count < 1:
        raise GlyphfuseError(f"--count must be at least 1, not {count}")
    if size < 16:
        raise GlyphfuseError(f"--size must be at least 16 px, not {size}")
    if workers < 1:
        raise GlyphfuseError(f"--workers must be at least 1, not {workers}")
    font_paths = [str(path) for path in discover_fonts(fonts_dir)]
    texts = None
    if text_file is not None:
        texts = load_text_file(text_file)
        usable = [text for text in texts if any(font_supports(path, text) for path in font_paths)]
        if not usable:
            raise GlyphfuseError(f"text file {text_file}: no font in the fonts folder has all characters of any line (first line: {texts[0]!r})")
        texts = usable
    source = SynthSource(size=size, seed=seed, color=color, font_paths=font_paths, texts=texts, words=load_words())
    out = prepare_out_dir(out_dir, overwrite)
    tasks = [(start, min(start + CHUNK_SIZE, count), count) for start in range(0, count, CHUNK_SIZE)]

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    started = time.perf_counter()
    bar = Progress(TextColumn("synth-fonts"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress, transient=False)
    with bar, MetadataWriter(out) as metadata:
        job = bar.add_task("images", total=count)
        if workers == 1:
            _init_worker(source, out)
            results = map(_render_chunk, tasks)
            pool = None
        else:
            import multiprocessing

            pool = multiprocessing.Pool(workers, initializer=_init_worker, initargs=(source, out))
            results = pool.imap(_render_chunk, tasks)
        try:
            for rows in results:  # in order, whatever finished first
                for file_name, text in rows:
                    metadata.write(file_name, text)
                bar.advance(job, len(rows))
            if pool is not None:
                pool.close()
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    return SynthSummary(out, count, time.perf_counter() - started, len(font_paths))

