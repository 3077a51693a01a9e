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

A :class:`SynthStyle` narrows that variety, and named data recipes (:data:`DATA_RECIPES`, e.g.
``lines64``) are the styles the shipped models were trained on: alignment, line placement,
background, character set, share of uniformly random letter strings, lines per image, tokens per
line, font size and font list. A small model learns to spell from clean, regular layouts (left-
aligned lines at fixed heights, light background, half random strings) long before it learns from
the full variety; see ``docs/data.md``.

Two rules hold for every style: a word is never split across lines (a line that does not fit is
re-drawn or dropped), and no token of the packaged held-out prompt sets
(``glyphfuse/resources/prompts/``) is ever rendered (a transcript that contains one is re-drawn).

Speed: each process renders every (font, size, character) glyph once with FreeType and caches it
as a numpy bitmap; a line is then composed from cached glyphs at their rounded pen positions
(no kerning, as PIL's basic layout for most fonts). Font sizes come from a short log-spaced
ladder so that the cache stays small. PNGs are written with zlib level 1.
"""

from __future__ import annotations

import dataclasses
import random
import string
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
from glyphfuse.prompts import PROMPT_SETS, load_prompts, read_prompt_lines
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
    """Transcripts from a text file: one per non-blank line; a literal ``\\n`` is a line break
    (the prompt-file reader, with '#' kept: a transcript may start with it)."""
    return read_prompt_lines(path, comments=False, what="text file")


# ------------------------------------------------------------------------------------------------
# Styles and named data recipes
# ------------------------------------------------------------------------------------------------

ALIGNMENTS = ("left", "center", "right", "random")
PLACEMENTS = ("fixed", "center", "random")
BACKGROUNDS = ("light", "random")
CHARSETS = {
    "lower": string.ascii_lowercase,
    "letters": string.ascii_letters,
    "alnum": string.ascii_letters + string.digits,
    "printable": None,  # words with capitals, digits, punctuation and symbols (random_transcript)
}


@dataclass(frozen=True)
class SynthStyle:
    """What a dataset's images look like and say. The defaults are the full variety.

    * ``align``: each line's horizontal alignment (``random``: left, left, center or right);
    * ``placement``: ``fixed`` puts line k at the same height in every image (the block of the most
      lines is centred vertically) with a fixed left margin for left alignment, so a character's
      place depends only on its line and column; ``center`` centres the ink block; ``random``
      puts it anywhere;
    * ``background``: ``light`` (flat 200-255 with dark 0-60 text) or ``random`` lightness with
      either polarity (with --color: random colours);
    * ``charset`` and ``random_fraction``: the share of tokens that are uniformly random strings
      of ``string_length`` characters from the charset (spelling then is learned letter by
      letter); the other tokens are words. ``printable`` uses :func:`random_transcript`;
    * ``lines`` and ``tokens``: ranges (inclusive) of lines per image and tokens per line;
      ``None`` keeps the weighted defaults of :func:`random_transcript`;
    * ``font_px``: font size range (px), ``None`` scales with the canvas; ``fonts``: font file
      names in the fonts folder, empty = all of them.
    """

    align: str = "random"
    placement: str = "random"
    background: str = "random"
    charset: str = "printable"
    random_fraction: float = 0.0
    string_length: tuple[int, int] = (2, 8)
    lines: tuple[int, int] | None = None
    tokens: tuple[int, int] | None = None
    font_px: tuple[int, int] | None = None
    fonts: tuple[str, ...] = ()
    size: int = 128  # the canvas the style is meant for (synth-fonts --size overrides)

    def __post_init__(self) -> None:
        for name, value, allowed in (("align", self.align, ALIGNMENTS), ("placement", self.placement, PLACEMENTS),
                                     ("background", self.background, BACKGROUNDS), ("charset", self.charset, tuple(CHARSETS))):
            if value not in allowed:
                raise GlyphfuseError(f"--{name} must be one of {', '.join(allowed)}, not {value!r}")
        if not 0.0 <= self.random_fraction <= 1.0:
            raise GlyphfuseError(f"--random-fraction must be between 0 and 1, not {self.random_fraction}")
        if self.random_fraction > 0 and self.charset == "printable":
            raise GlyphfuseError("--random-fraction needs --charset lower, letters or alnum (random strings are drawn from it)")
        for name, value, most in (("lines", self.lines, MAX_LINES), ("tokens", self.tokens, 8), ("string-length", self.string_length, 32)):
            if value is not None and not (1 <= value[0] <= value[1] <= most):
                raise GlyphfuseError(f"--{name} must be MIN-MAX with 1 <= MIN <= MAX <= {most}, not {value[0]}-{value[1]}")

    def replace(self, **changes) -> "SynthStyle":
        """A copy with ``changes`` applied; ``None`` values are ignored (options not given)."""
        return dataclasses.replace(self, **{key: value for key, value in changes.items() if value is not None})


# The data the shipped models were trained on (docs/data.md has the measurements behind them).
DATA_RECIPES: dict[str, SynthStyle] = {
    # 64 px, one or two left-aligned lines at fixed heights, 1-2 lowercase tokens a line (half of
    # them random strings), one monospaced bold font at 10 px on a light background
    "lines64": SynthStyle(align="left", placement="fixed", background="light", charset="lower", random_fraction=0.5,
                          string_length=(2, 8), lines=(1, 2), tokens=(1, 2), font_px=(10, 10),
                          fonts=("DejaVuSansMono-Bold.ttf",), size=64),
    # 32 px, one centred lowercase token (half random strings) at 12 px on a light background
    "words32": SynthStyle(align="center", placement="center", background="light", charset="lower", random_fraction=0.5,
                          string_length=(3, 5), lines=(1, 1), tokens=(1, 1), font_px=(12, 12),
                          fonts=("OpenSans-CondBold.ttf",), size=32),
    # the full variety: random placement, lightness, fonts, sizes, capitals, digits, punctuation
    "full": SynthStyle(),
}


def get_data_recipe(name: str) -> SynthStyle:
    if name not in DATA_RECIPES:
        raise GlyphfuseError(f"unknown data recipe {name!r}; choose one of: {', '.join(DATA_RECIPES)}")
    return DATA_RECIPES[name]


def parse_range(text: str, option: str) -> tuple[int, int]:
    """"2-5" (or "3") -> (2, 5); a one-line error naming ``option`` otherwise."""
    low, _, high = str(text).partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise GlyphfuseError(f"{option} must look like 2-5 or 3, not {text!r}") from None


NOT_HELD_OUT = ("original.txt",)  # the original system's test prompt: ordinary training words


def token_key(token: str) -> str:
    """A token as the held-out check compares it: lowercase, surrounding punctuation removed."""
    return token.strip(string.punctuation).lower()


@lru_cache(maxsize=1)
def held_out_tokens() -> frozenset[str]:
    """Every token of the packaged eval prompt sets (glyphfuse/resources/prompts/*.txt): synth
    never renders them, so eval measures spelling of words the model has never seen."""
    tokens = set()
    for name in PROMPT_SETS:
        if f"{name}.txt" not in NOT_HELD_OUT:
            prompts, _ = load_prompts(name)
            tokens.update(token_key(token) for prompt in prompts for token in prompt.split())
    tokens.discard("")
    return frozenset(tokens)


def is_held_out(lines: Sequence[str]) -> bool:
    held_out = held_out_tokens()
    return any(token_key(token) in held_out for line in lines for token in line.split())


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


def _styled_token(rng: random.Random, style: SynthStyle, words: Sequence[str], case: str) -> str:
    alphabet = CHARSETS[style.charset]
    if rng.random() < style.random_fraction:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(*style.string_length)))
    if style.charset == "alnum" and rng.random() < 0.1:
        return str(rng.randint(0, 9999))
    word = _random_word(rng, words).lower()
    if case == "upper":
        return word.upper()
    return word[:1].upper() + word[1:] if case == "title" else word


def styled_line(rng: random.Random, style: SynthStyle, words: Sequence[str], fits) -> str | None:
    """One line of ``style.tokens`` tokens that ``fits(line)``; re-drawn up to 20 times, else
    None (the line is dropped: never hard-wrapped)."""
    case = "lower" if style.charset == "lower" else rng.choices(("lower", "title", "upper"), weights=(50, 30, 20))[0]
    low, high = style.tokens or (1, 2)
    for _ in range(20):
        line = " ".join(_styled_token(rng, style, words, case) for _ in range(rng.randint(low, high)))
        if fits(line):
            return line
    return None


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
    box. Words are never split: at ladder[0] trailing lines are dropped until the block fits;
    raises _DoesNotFit when a word is wider than the room or nothing is left."""
    for step in range(start, -1, -1):
        px, final = ladder[step], step == 0
        font = load_font(font_path, px)
        ascent, descent = font.getmetrics()
        pitch = max(1, round((ascent + descent) * spacing))
        wrapped = wrap_lines(font, lines, room)
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


def random_colors(rng: random.Random, color: bool, background: str = "random") -> tuple:
    """(background, text colour) with |luminance difference| >= MIN_CONTRAST; ``light``: a light
    background (200-255) with dark text (0-60), grey or (with ``color``) tinted."""
    if background == "light":
        if not color:
            return rng.randint(200, 255), rng.randint(0, 60)
        return tuple(rng.randint(200, 255) for _ in range(3)), tuple(rng.randint(0, 60) for _ in range(3))
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
    style: SynthStyle = field(default_factory=SynthStyle)


def image_rng(seed: int, index: int) -> random.Random:
    """The generator for image ``index``: depends only on (seed, index)."""
    return random.Random(f"glyphfuse-synth:{seed}:{index}")


def _choose_text(source: SynthSource, rng: random.Random, ladder: Sequence[int], room: int, size: int):
    """(font_path, font_px, Layout) of one image, or None to try again."""
    style = source.style
    words = source.words or load_words()
    if source.texts is not None or style.charset == "printable":
        if source.texts is not None:
            lines = rng.choice(source.texts).split("\n")
        elif style.lines is not None:
            lines = [_random_line(rng, words, rng.randint(*(style.tokens or (1, 4)))) for _ in range(rng.randint(*style.lines))]
        else:
            lines = random_transcript(rng, words, max_lines_for(size))
        needed = set("".join(lines)) - LAYOUT_CHARACTERS
        candidates = [path for path in source.font_paths if font_charset(path).issuperset(needed)]
        if not candidates:
            return None
        font_path = rng.choice(candidates)
        align = rng.choice(("left", "left", "center", "right")) if style.align == "random" else style.align
        try:
            font_px, layout = _fit(font_path, lines, ladder, rng.randrange(len(ladder)), room, rng.uniform(1.0, 1.25), align)
        except _DoesNotFit:
            return None
        return font_path, font_px, layout
    # a charset style: pick the font and size first, then draw lines that fit the room
    candidates = [path for path in source.font_paths if font_charset(path).issuperset(CHARSETS[style.charset])]
    if not candidates:
        raise GlyphfuseError(f"no font in the fonts folder has every character of --charset {style.charset}")
    font_path = rng.choice(candidates)
    font_px = rng.choice(ladder)
    font = load_font(font_path, font_px)
    n_lines = rng.randint(*(style.lines or (1, max_lines_for(size))))
    lines = [line for line in (styled_line(rng, style, words, lambda text: _ink_width(font, text) <= room) for _ in range(n_lines)) if line]
    if not lines:
        return None
    ascent, descent = font.getmetrics()
    align = rng.choice(("left", "left", "center", "right")) if style.align == "random" else style.align
    layout = layout_block(font, lines, pitch=ascent + descent, align=align)
    if layout.width > room or layout.height > room:
        return None
    return font_path, font_px, layout


def _fixed_rows(source: SynthSource, font_path: str, font_px: int, layout: Layout, size: int, margin: int):
    """Placement ``fixed``: glyph placements with line k's ascender line at the same height in
    every image (the block of the most lines is centred) and a fixed left pen position."""
    font = load_font(font_path, font_px)
    ascent, descent = font.getmetrics()
    pitch = ascent + descent
    most = (source.style.lines or (1, max_lines_for(size)))[1]
    top = (size - most * pitch) // 2
    placements = []
    for k, line in enumerate(layout.lines):
        glyphs, box = measure_line(font, line)
        if box is None:
            continue
        if source.style.align == "center":
            dx = (size - (box[2] - box[0])) // 2 - box[0]
        elif source.style.align == "right":
            dx = size - margin - box[2]
        else:
            dx = margin
        placements.extend((x + dx, y + top + k * pitch, bitmap) for x, y, bitmap in glyphs)
    return placements


def render_example(source: SynthSource, index: int) -> Rendered:
    """Draw image ``index`` of a dataset (deterministic in source.seed and index)."""
    rng = image_rng(source.seed, index)
    size = source.size
    margin = canvas_margin(size)
    room = size - 2 * margin
    font_px_range = source.font_px or source.style.font_px
    ladder = font_size_ladder(size) if font_px_range is None else list(range(font_px_range[0], font_px_range[1] + 1))
    placement = source.style.placement
    for _attempt in range(20):
        chosen = _choose_text(source, rng, ladder, room, size)
        if chosen is None:
            continue
        font_path, font_px, layout = chosen
        if source.texts is None and is_held_out(layout.lines):
            continue  # never render a word of the eval prompt sets
        if placement == "fixed":
            placements = _fixed_rows(source, font_path, font_px, layout, size, margin)
        else:
            if placement == "center":
                left, top = (size - layout.width) // 2, (size - layout.height) // 2
            else:
                left, top = margin + rng.randint(0, room - layout.width), margin + rng.randint(0, room - layout.height)
            placements = [(x + left, y + top, bitmap) for x, y, bitmap in layout.placements]
        coverage = np.zeros((size, size), dtype=np.uint8)  # (H, W) text ink, 0..255
        clipped = False
        for x, y, bitmap in placements:
            height, width = bitmap.shape
            if x < 0 or y < 0 or x + width > size or y + height > size:
                clipped = True
                break
            region = coverage[y : y + height, x : x + width]
            np.maximum(region, bitmap, out=region)  # overlapping glyphs: keep the stronger ink
        if clipped:
            continue
        rows, cols = np.flatnonzero(coverage.any(axis=1)), np.flatnonzero(coverage.any(axis=0))
        if len(rows) == 0:
            continue
        bbox = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        if bbox[0] < margin or bbox[1] < margin or bbox[2] > size - margin or bbox[3] > size - margin:
            continue  # ink outside the margin: try another text (never write a clipped glyph)
        mask = Image.fromarray(coverage)
        background, foreground = random_colors(rng, source.color, source.style.background)
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
    style: SynthStyle | None = None,
) -> SynthSummary:
    """Write ``count`` synthetic images (``name.png`` + ``name.txt``) and ``metadata.jsonl`` into
    ``out_dir``. The output is byte-identical for any ``workers``."""
    style = style or SynthStyle()
    if count < 1:
        raise GlyphfuseError(f"--count must be at least 1, not {count}")
    if size < 16:
        raise GlyphfuseError(f"--size must be at least 16 px, not {size}")
    if workers < 1:
        raise GlyphfuseError(f"--workers must be at least 1, not {workers}")
    style = style.replace(font_px=font_px)  # --font-size overrides the recipe's; the style carries it from here
    font_px = style.font_px
    if font_px is not None and not (4 <= font_px[0] <= font_px[1] <= size):
        raise GlyphfuseError(f"--font-size must be MIN-MAX px with 4 <= MIN <= MAX <= {size}, not {font_px[0]}-{font_px[1]}")
    font_paths = [str(path) for path in discover_fonts(fonts_dir)]
    if style.fonts:
        missing = sorted(set(style.fonts) - {Path(path).name for path in font_paths})
        if missing:
            raise GlyphfuseError(f"font(s) {', '.join(missing)} not in the fonts folder {fonts_dir or 'fonts/'}")
        font_paths = [path for path in font_paths if Path(path).name in style.fonts]
    texts, skipped = None, 0
    if text_file is not None:
        texts = load_text_file(text_file)
        usable = [text for text in texts if any(font_supports(path, text) for path in font_paths)]
        if not usable:
            raise GlyphfuseError(f"text file {text_file}: no font in the fonts folder has all characters of any line (first line: {texts[0]!r})")
        texts, skipped = usable, len(texts) - len(usable)
    source = SynthSource(size=size, seed=seed, color=color, font_paths=font_paths, texts=texts, words=load_words(), style=style)
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

