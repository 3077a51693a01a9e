"""Synthetic training data: text rendered with real fonts on flat backgrounds.

Every image ``i`` is drawn from its own random generator seeded by ``(seed, i)``, so a dataset
is byte-identical whatever the number of worker processes. One image:

1. a transcript of 1-6 lines: common English words with realistic capitalisation, digits and
   punctuation (from the word list shipped in ``glyphfuse/resources/words.txt``), or one line of a
   ``--text-file`` (a literal ``\\n`` in it is a line break);
2. a random font among those that have every character of the text (cmap check);
3. a random font size, shrunk and the lines word-wrapped until the ink box fits inside the
   canvas margin (the transcript records the wrapped line breaks); the rendered ink box is
   checked, so a glyph is never clipped;
4. a flat background of random lightness (random colour with ``color``) and a text colour whose
   luminance differs from it by at least :data:`MIN_CONTRAST`.

Speed: each process renders every (font, size, character) glyph once with FreeType and caches it
as a numpy bitmap; a line is then composed from cached glyphs at their rounded pen positions
(no kerning, as PIL's basic layout for most fonts). Font sizes come from a short log-spaced
ladder so that the cache stays small. PNGs are written with zlib level 1.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data import METADATA_FILE, MetadataWriter, write_example
from glyphfuse.fonts import LAYOUT_CHARACTERS, discover_fonts, font_charset, font_supports, load_font

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
    """The shipped word list (glyphfuse/resources/words.txt), one lowercase word a line."""
    text = resources.files("glyphfuse").joinpath("resources/words.txt").read_text(encoding="utf-8")
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


def font_size_ladder(size: int, steps: int = 10) -> list[int]:
    """The font sizes (px) used on a size x size canvas: ``steps`` log-spaced values from
    font_size_range. A short ladder keeps the per-process glyph cache small and warm."""
    low, high = font_size_range(size)
    return sorted({round(low * (high / low) ** (k / (steps - 1))) for k in range(steps)})


def parse_font_size(text: str) -> tuple[int, int]:
    """--font-size "12-14" (or "12") -> (12, 14) px."""
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise GlyphfuseError(f"--font-size must look like 12-14 (px) or 12, not {text!r}") from None


def canvas_margin(size: int) -> int:
    """Blank border (px) that no ink may enter."""
    return max(1, round(size * 0.05))


def max_lines_for(size: int) -> int:
    """How many lines a generated transcript may start with on this canvas (wrapping may add)."""
    return max(1, min(MAX_LINES, size // 20))


@dataclass(frozen=True)
class Glyph:
    """One character of one font at one size, rendered once and reused (per process)."""

    advance: float  # pen advance (px)
    left: int  # ink box offset from the pen position (px)
    top: int  # ink box offset from the line's ascender (px), PIL anchor "la"
    bitmap: np.ndarray | None  # (h, w) uint8 coverage; None for blank glyphs such as space


_GLYPHS: dict[tuple[str, int], dict[str, Glyph]] = {}
_SCRATCH: dict[int, tuple[Image.Image, ImageDraw.ImageDraw]] = {}  # per font size: canvas to draw one glyph on


def _has_box(font, char: str) -> bool:
    left, top, right, bottom = font.getbbox(char)
    return right > left and bottom > top


def get_glyph(font, char: str) -> Glyph:
    """The cached rendering of ``char`` in ``font`` (a PIL FreeTypeFont): drawn once at a known
    origin on a scratch canvas, then cut to its exact ink box."""
    glyphs = _GLYPHS.setdefault((str(font.path), font.size), {})
    glyph = glyphs.get(char)
    if glyph is None:
        pad = 2 * font.size  # room for overhangs on every side of the origin
        if font.size not in _SCRATCH:
            canvas = Image.new("L", (5 * font.size, 5 * font.size), 0)
            _SCRATCH[font.size] = (canvas, ImageDraw.Draw(canvas))
        canvas, draw = _SCRATCH[font.size]
        canvas.paste(0, (0, 0, canvas.width, canvas.height))
        draw.text((pad, pad), char, font=font, fill=255)
        pixels = np.asarray(canvas)
        rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
        cut = len(rows) and (rows[0] == 0 or cols[0] == 0 or rows[-1] == canvas.height - 1 or cols[-1] == canvas.width - 1)
        if cut or (not len(rows) and _has_box(font, char)):
            _SCRATCH.pop(font.size)  # an unusually large glyph may be cut off: measure it exactly
            left, top, right, bottom = font.getbbox(char)
            canvas = Image.new("L", (right - left, bottom - top), 0)
            ImageDraw.Draw(canvas).text((-left, -top), char, font=font, fill=255)
            glyph = glyphs[char] = Glyph(font.getlength(char), left, top, np.asarray(canvas).copy())
            return glyph
        if len(rows):
            top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            bitmap = pixels[top:bottom, left:right].copy()
            offset = (int(left) - pad, int(top) - pad)
        else:
            bitmap, offset = None, (0, 0)
        glyph = glyphs[char] = Glyph(_advances(font).get(char) or font.getlength(char), offset[0], offset[1], bitmap)
    return glyph


_ADVANCES: dict[tuple[str, int], dict[str, float]] = {}


def _advances(font) -> dict[str, float]:
    return _ADVANCES.setdefault((str(font.path), font.size), {})


def _ink_width(font, text: str) -> float:
    """Width estimate of ``text`` from its characters' advances, cached per font and size (the
    exact ink box of the chosen lines is measured by :func:`measure_line`)."""
    advances = _advances(font)
    try:
        return sum(map(advances.__getitem__, text))
    except KeyError:
        for char in text:
            if char not in advances:
                advances[char] = font.getlength(char)
        return sum(map(advances.__getitem__, text))


def measure_line(font, text: str) -> tuple[list[tuple[int, int, np.ndarray]], tuple[int, int, int, int] | None]:
    """Glyph placements [(x, y, bitmap)] relative to the line origin (anchor "la") and their
    exact ink box (left, top, right, bottom), None for a blank line. Characters are placed at
    their rounded pen positions with no kerning, as PIL's basic layout does for most fonts."""
    placements = []
    pen = 0.0
    left = top = 1 << 30
    right = bottom = -(1 << 30)
    for char in text:
        glyph = get_glyph(font, char)
        if glyph.bitmap is not None:
            x, y = round(pen) + glyph.left, glyph.top
            height, width = glyph.bitmap.shape
            placements.append((x, y, glyph.bitmap))
            left, top = min(left, x), min(top, y)
            right, bottom = max(right, x + width), max(bottom, y + height)
        pen += glyph.advance
    return placements, ((left, top, right, bottom) if placements else None)


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
    """Greedy word wrap of each line to ``width`` px (advance estimate). A single word wider
    than ``width`` gives None, unless ``hard`` (then it is broken between characters)."""
    space = _ink_width(font, " ")
    wrapped: list[str] = []
    for line in lines:
        words = line.split()
        if not words:
            wrapped.append("")
            continue
        current, current_width = "", 0.0
        for word in words:
            word_width = _ink_width(font, word)
            if current and current_width + space + word_width <= width:
                current, current_width = f"{current} {word}", current_width + space + word_width
                continue
            if current:
                wrapped.append(current)
            if word_width <= width:
                current, current_width = word, word_width
            elif hard:
                *full, current = _split_long_word(font, word, width)
                wrapped.extend(full)
                current_width = _ink_width(font, current)
            else:
                return None
        wrapped.append(current)
    return wrapped


@dataclass
class Layout:
    """A block of lines: glyph placements relative to the block's ink box top-left."""

    lines: list[str]
    placements: list[tuple[int, int, np.ndarray]]  # (x, y, (h, w) bitmap)
    width: int  # ink box width (px)
    height: int  # ink box height (px)


def layout_block(font, lines: Sequence[str], pitch: int, align: str) -> Layout:
    """Place ``lines`` one ``pitch`` apart, aligned left/center/right by their ink boxes."""
    measured = [measure_line(font, line) for line in lines]
    boxes = [box for _, box in measured]
    widths = [(box[2] - box[0]) if box else 0 for box in boxes]
    block_width = max(widths)
    top = min(k * pitch + box[1] for k, box in enumerate(boxes) if box)
    bottom = max(k * pitch + box[3] for k, box in enumerate(boxes) if box)
    placements = []
    for k, ((glyphs, box), width) in enumerate(zip(measured, widths)):
        if box is None:
            continue
        if align == "center":
            dx = (block_width - width) // 2 - box[0]
        elif align == "right":
            dx = block_width - width - box[0]
        else:
            dx = -box[0]
        dy = k * pitch - top
        placements.extend((x + dx, y + dy, bitmap) for x, y, bitmap in glyphs)
    return Layout(list(lines), placements, block_width, bottom - top)


def _fit(font_path: str, lines: Sequence[str], ladder: Sequence[int], start: int, room: int, spacing: float, align: str) -> tuple[int, Layout]:
    """Largest font size ladder[k], k <= start, whose word-wrapped block fits in a room x room
    box. At ladder[0] the text is hard-wrapped and trailing lines are dropped until it fits;
    raises _DoesNotFit when nothing is left."""
    for step in range(start, -1, -1):
        px, final = ladder[step], step == 0
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
    raise _DoesNotFit


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
    font_px: tuple[int, int] | None = None  # --font-size (smallest, largest); None = font_size_range(size)


def image_rng(seed: int, index: int) -> random.Random:
    """The generator for image ``index``: depends only on (seed, index)."""
    return random.Random(f"glyphfuse-synth:{seed}:{index}")


def render_example(source: SynthSource, index: int) -> Rendered:
    """Draw image ``index`` of a dataset (deterministic in source.seed and index)."""
    rng = image_rng(source.seed, index)
    size = source.size
    margin = canvas_margin(size)
    room = size - 2 * margin
    ladder = font_size_ladder(size) if source.font_px is None else list(range(source.font_px[0], source.font_px[1] + 1))
    for _attempt in range(20):
        if source.texts is not None:
            lines = rng.choice(source.texts).split("\n")
        else:
            lines = random_transcript(rng, source.words or load_words(), max_lines_for(size))
        needed = set("".join(lines)) - LAYOUT_CHARACTERS
        candidates = [path for path in source.font_paths if font_charset(path).issuperset(needed)]
        if not candidates:
            continue
        font_path = rng.choice(candidates)
        start = rng.randrange(len(ladder))  # log-uniform size: small text as common as large
        align = rng.choice(("left", "left", "center", "right"))
        try:
            font_px, layout = _fit(font_path, lines, ladder, start, room, rng.uniform(1.0, 1.25), align)
        except _DoesNotFit:
            continue
        left = margin + rng.randint(0, room - layout.width)
        top = margin + rng.randint(0, room - layout.height)
        coverage = np.zeros((size, size), dtype=np.uint8)  # (H, W) text ink, 0..255
        for x, y, bitmap in layout.placements:
            height, width = bitmap.shape
            region = coverage[top + y : top + y + height, left + x : left + x + width]
            np.maximum(region, bitmap, out=region)  # overlapping glyphs: keep the stronger ink
        rows, cols = np.flatnonzero(coverage.any(axis=1)), np.flatnonzero(coverage.any(axis=0))
        if len(rows) == 0:
            continue
        bbox = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        if bbox[0] < margin or bbox[1] < margin or bbox[2] > size - margin or bbox[3] > size - margin:
            continue  # ink outside the planned box (cannot happen; never write a clipped glyph)
        mask = Image.fromarray(coverage)
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
    skipped_texts: int = 0  # --text-file lines no font could draw

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
    font_px: tuple[int, int] | None = None,
) -> SynthSummary:
    """Write ``count`` synthetic images (``name.png`` + ``name.txt``) and ``metadata.jsonl`` into
    ``out_dir``. The output is byte-identical for any ``workers``."""
    if count < 1:
        raise GlyphfuseError(f"--count must be at least 1, not {count}")
    if size < 16:
        raise GlyphfuseError(f"--size must be at least 16 px, not {size}")
    if workers < 1:
        raise GlyphfuseError(f"--workers must be at least 1, not {workers}")
    if font_px is not None and not (4 <= font_px[0] <= font_px[1] <= size):
        raise GlyphfuseError(f"--font-size must be MIN-MAX px with 4 <= MIN <= MAX <= {size}, not {font_px[0]}-{font_px[1]}")
    font_paths = [str(path) for path in discover_fonts(fonts_dir)]
    texts, skipped = None, 0
    if text_file is not None:
        texts = load_text_file(text_file)
        usable = [text for text in texts if any(font_supports(path, text) for path in font_paths)]
        if not usable:
            raise GlyphfuseError(f"text file {text_file}: no font in the fonts folder has all characters of any line (first line: {texts[0]!r})")
        texts, skipped = usable, len(texts) - len(usable)
    source = SynthSource(size=size, seed=seed, color=color, font_paths=font_paths, texts=texts, words=load_words(), font_px=font_px)
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
    return SynthSummary(out, count, time.perf_counter() - started, len(font_paths), skipped)

