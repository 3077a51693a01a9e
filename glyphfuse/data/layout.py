"""Where a synthetic image's text goes: font sizes, cached glyphs, word wrap, line blocks, fitting.

Speed: each process renders every (font, size, character) glyph once with FreeType and caches it
as a numpy bitmap (:func:`get_glyph`); a line is then composed from cached glyphs at their
rounded pen positions (:func:`measure_line`; no kerning, as PIL's basic layout for most fonts).
Font sizes come from a short log-spaced ladder (:func:`font_size_ladder`) so that the cache stays
small.

Words are never split: :func:`wrap_lines` breaks lines between words only, and :func:`fit_lines`
shrinks the font, then drops trailing lines, until the block fits; a word wider than the room
makes the text unusable (:class:`DoesNotFit`), and the renderer draws another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from glyphfuse.data.fonts import load_font
from glyphfuse.data.transcripts import MAX_LINES

MIN_FONT_PX = 10  # smallest font size (px) at 128 px; tesseract reads ~9-10 px text upscaled 2x

Placement = tuple[int, int, np.ndarray]  # (x, y, (h, w) uint8 bitmap): one glyph's ink at its place


# ------------------------------------------------------------------------------------------------
# Canvas geometry
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


# ------------------------------------------------------------------------------------------------
# Glyph cache (per process)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Glyph:
    """One character of one font at one size, rendered once and reused (per process)."""

    advance: float  # pen advance (px)
    left: int  # ink box offset from the pen position (px)
    top: int  # ink box offset from the line's ascender (px), PIL anchor "la"
    bitmap: np.ndarray | None  # (h, w) uint8 coverage; None for blank glyphs such as space


_GLYPHS: dict[tuple[str, int], dict[str, Glyph]] = {}  # (font path, px) -> character -> glyph
_SCRATCH: dict[int, tuple[Image.Image, ImageDraw.ImageDraw]] = {}  # per font size: canvas to draw one glyph on
_ADVANCES: dict[tuple[str, int], dict[str, float]] = {}  # (font path, px) -> character -> pen advance


def _advances(font: ImageFont.FreeTypeFont) -> dict[str, float]:
    return _ADVANCES.setdefault((str(font.path), font.size), {})


def _has_box(font: ImageFont.FreeTypeFont, char: str) -> bool:
    left, top, right, bottom = font.getbbox(char)
    return right > left and bottom > top


def _scratch_canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """The blank 5 x size square canvas on which glyphs of this font size are drawn."""
    if size not in _SCRATCH:
        canvas = Image.new("L", (5 * size, 5 * size), 0)
        _SCRATCH[size] = (canvas, ImageDraw.Draw(canvas))
    canvas, draw = _SCRATCH[size]
    canvas.paste(0, (0, 0, canvas.width, canvas.height))
    return canvas, draw


def _exact_glyph(font: ImageFont.FreeTypeFont, char: str) -> Glyph:
    """``char`` drawn on a canvas of exactly its (PIL) ink box: slower, never cut off."""
    left, top, right, bottom = font.getbbox(char)
    canvas = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(canvas).text((-left, -top), char, font=font, fill=255)
    return Glyph(font.getlength(char), left, top, np.asarray(canvas).copy())


def get_glyph(font: ImageFont.FreeTypeFont, char: str) -> Glyph:
    """The cached rendering of ``char`` in ``font``: drawn once at a known origin on a scratch
    canvas, then cut to its exact ink box (an unusually large glyph that the canvas may have cut
    off is measured exactly instead)."""
    glyphs = _GLYPHS.setdefault((str(font.path), font.size), {})
    glyph = glyphs.get(char)
    if glyph is not None:
        return glyph
    pad = 2 * font.size  # room for overhangs on every side of the origin
    canvas, draw = _scratch_canvas(font.size)
    draw.text((pad, pad), char, font=font, fill=255)
    pixels = np.asarray(canvas)  # (H, W) coverage
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    cut = len(rows) and (rows[0] == 0 or cols[0] == 0 or rows[-1] == canvas.height - 1 or cols[-1] == canvas.width - 1)
    if cut or (not len(rows) and _has_box(font, char)):
        _SCRATCH.pop(font.size)
        glyph = glyphs[char] = _exact_glyph(font, char)
        return glyph
    if len(rows):
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        bitmap = pixels[top:bottom, left:right].copy()
        offset = (int(left) - pad, int(top) - pad)
    else:
        bitmap, offset = None, (0, 0)
    glyph = glyphs[char] = Glyph(_advances(font).get(char) or font.getlength(char), offset[0], offset[1], bitmap)
    return glyph


# ------------------------------------------------------------------------------------------------
# Lines and blocks
# ------------------------------------------------------------------------------------------------


def advance_width(font: ImageFont.FreeTypeFont, text: str) -> float:
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


def measure_line(font: ImageFont.FreeTypeFont, text: str) -> tuple[list[Placement], tuple[int, int, int, int] | None]:
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


def _split_long_word(font: ImageFont.FreeTypeFont, word: str, width: int) -> list[str]:
    """Hard-break a word wider than ``width`` into pieces that fit (last resort)."""
    pieces, current = [], ""
    for char in word:
        if current and advance_width(font, current + char) > width:
            pieces.append(current)
            current = char
        else:
            current += char
    pieces.append(current)
    return pieces


def wrap_lines(font: ImageFont.FreeTypeFont, lines: Sequence[str], width: int, hard: bool = False) -> list[str] | None:
    """Greedy word wrap of each line to ``width`` px (advance estimate). A single word wider
    than ``width`` gives None, unless ``hard`` (then it is broken between characters)."""
    space = advance_width(font, " ")
    wrapped: list[str] = []
    for line in lines:
        words = line.split()
        if not words:
            wrapped.append("")
            continue
        current, current_width = "", 0.0
        for word in words:
            word_width = advance_width(font, word)
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
                current_width = advance_width(font, current)
            else:
                return None
        wrapped.append(current)
    return wrapped


@dataclass
class Layout:
    """A block of lines: glyph placements relative to the block's ink box top-left."""

    lines: list[str]
    placements: list[Placement]
    width: int  # ink box width (px)
    height: int  # ink box height (px)


def layout_block(font: ImageFont.FreeTypeFont, lines: Sequence[str], pitch: int, align: str) -> Layout:
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


# ------------------------------------------------------------------------------------------------
# Fitting a text into the canvas
# ------------------------------------------------------------------------------------------------


class DoesNotFit(Exception):
    """The text cannot be laid out in the room without splitting a word (draw another)."""


def fit_lines(font_path: str, lines: Sequence[str], ladder: Sequence[int], start: int, room: int, spacing: float,
              align: str) -> tuple[int, Layout]:
    """Largest font size ladder[k], k <= start, whose word-wrapped block fits in a room x room
    box, as (font px, layout). Words are never split: at ladder[0] trailing lines are dropped
    until the block fits; raises DoesNotFit when a word is wider than the room or nothing is left."""
    for step in range(start, -1, -1):
        px, final = ladder[step], step == 0
        font = load_font(font_path, px)
        ascent, descent = font.getmetrics()
        pitch = max(1, round((ascent + descent) * spacing))
        wrapped = wrap_lines(font, lines, room)
        if wrapped is None or not (final or len(wrapped) <= MAX_LINES):
            continue
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
    raise DoesNotFit


def ink_box(coverage: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the inked pixels; None for a blank canvas."""
    rows, cols = np.flatnonzero(coverage.any(axis=1)), np.flatnonzero(coverage.any(axis=0))
    if len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
