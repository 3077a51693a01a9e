"""Drawing one synthetic image: text, font, layout, placement, colours, and the checks on them.

Image ``index`` of a dataset is drawn from its own random generator seeded by ``(seed, index)``
(:func:`image_rng`), so it is the same image whichever process draws it. :func:`render_example`:

1. draws a transcript (:mod:`glyphfuse.data.transcripts`) and a font that has every one of its
   characters (cmap check, :mod:`glyphfuse.data.fonts`), and lays it out at a size that fits
   (:mod:`glyphfuse.data.layout`); a text with a held-out token is drawn again;
2. places the block (``fixed`` rows, ``center`` or ``random``) and composes the ink from cached
   glyph bitmaps; a glyph cut by the canvas or ink outside the margin makes it draw again;
3. paints a flat background and a text colour whose luminance differs from it by at least
   :data:`MIN_CONTRAST`, or (a style with ``scene_kinds``) a colour scene of a random kind
   (:mod:`glyphfuse.data.scenes`), whose controls the image records.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from glyphfuse.core.controls import SceneControls
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.fonts import LAYOUT_CHARACTERS, font_charset, load_font
from glyphfuse.data.layout import (
    DoesNotFit, Layout, Placement, advance_width, canvas_margin, fit_lines, font_size_ladder, ink_box, layout_block,
    max_lines_for, measure_line,
)
from glyphfuse.data.scenes import BackgroundBank, paint_scene
from glyphfuse.data.transcripts import CHARSETS, SynthStyle, is_held_out, load_words, random_line, random_transcript, styled_line

MIN_CONTRAST = 100  # least |luminance(text) - luminance(background)|, 0..255
ATTEMPTS = 20  # texts tried for one image before giving up

Color = int | tuple[int, int, int]  # grey level or RGB


@dataclass
class Rendered:
    """One synthetic example and how it was made."""

    image: Image.Image
    text: str  # transcript, lines joined with "\n"
    ink_bbox: tuple[int, int, int, int]  # (left, top, right, bottom) of non-background pixels
    margin: int
    font_path: str
    font_size: int
    background: Color
    foreground: Color
    controls: SceneControls | None = None  # a colour scene's kind and colours (metadata.jsonl)


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
    backgrounds: BackgroundBank | None = None  # photos and textures for the scene kinds


def image_rng(seed: int, index: int) -> random.Random:
    """The generator for image ``index``: depends only on (seed, index)."""
    return random.Random(f"glyphfuse-synth:{seed}:{index}")


# ------------------------------------------------------------------------------------------------
# Colours
# ------------------------------------------------------------------------------------------------


def _luminance(color: Color) -> float:
    if isinstance(color, int):
        return float(color)
    red, green, blue = color
    return 0.299 * red + 0.587 * green + 0.114 * blue


def random_colors(rng: random.Random, color: bool, background: str = "random") -> tuple[Color, Color]:
    """(background, text colour) with |luminance difference| >= MIN_CONTRAST; ``light``: a light
    background (200-255) with dark text (0-60), grey or (with ``color``) tinted."""
    if background == "light":
        if not color:
            return rng.randint(200, 255), rng.randint(0, 60)
        return tuple(rng.randint(200, 255) for _ in range(3)), tuple(rng.randint(0, 60) for _ in range(3))
    if not color:
        background = rng.randint(0, 255)
        darker, lighter = rng.randint(0, max(0, background - MIN_CONTRAST)), rng.randint(min(255, background + MIN_CONTRAST), 255)
        return background, rng.choice([v for v in (darker, lighter) if abs(v - background) >= MIN_CONTRAST])
    background = tuple(rng.randint(0, 255) for _ in range(3))
    for _ in range(20):
        foreground = tuple(rng.randint(0, 255) for _ in range(3))
        if abs(_luminance(foreground) - _luminance(background)) >= MIN_CONTRAST:
            return background, foreground
    return background, (0, 0, 0) if _luminance(background) >= 128 else (255, 255, 255)


# ------------------------------------------------------------------------------------------------
# Text, font and layout of one image
# ------------------------------------------------------------------------------------------------


def _line_alignment(rng: random.Random, style: SynthStyle) -> str:
    return rng.choice(("left", "left", "center", "right")) if style.align == "random" else style.align


def _fitted_transcript(source: SynthSource, rng: random.Random, ladder: Sequence[int], room: int, size: int):
    """Full variety or --text-file: draw the lines, then a font that has their characters, then
    the largest ladder size at which the word-wrapped block fits. (font_path, font_px, Layout),
    or None to try again."""
    style = source.style
    words = source.words or load_words()
    if source.texts is not None:
        lines = rng.choice(source.texts).split("\n")
    elif style.lines is not None:
        lines = [random_line(rng, words, rng.randint(*(style.tokens or (1, 4)))) for _ in range(rng.randint(*style.lines))]
    else:
        lines = random_transcript(rng, words, max_lines_for(size))
    needed = set("".join(lines)) - LAYOUT_CHARACTERS
    candidates = [path for path in source.font_paths if font_charset(path).issuperset(needed)]
    if not candidates:
        return None
    font_path = rng.choice(candidates)
    align = _line_alignment(rng, style)
    try:
        font_px, layout = fit_lines(font_path, lines, ladder, rng.randrange(len(ladder)), room, rng.uniform(1.0, 1.25), align)
    except DoesNotFit:
        return None
    return font_path, font_px, layout


def _styled_block(source: SynthSource, rng: random.Random, ladder: Sequence[int], room: int, size: int):
    """A charset style: pick the font and size first, then draw lines that fit the room (a line
    that does not is re-drawn or dropped). (font_path, font_px, Layout), or None to try again."""
    style = source.style
    words = source.words or load_words()
    candidates = [path for path in source.font_paths if font_charset(path).issuperset(CHARSETS[style.charset])]
    if not candidates:
        raise GlyphfuseError(f"no font in the fonts folder has every character of --charset {style.charset}")
    font_path = rng.choice(candidates)
    font_px = rng.choice(ladder)
    font = load_font(font_path, font_px)
    n_lines = rng.randint(*(style.lines or (1, max_lines_for(size))))
    drawn = (styled_line(rng, style, words, lambda text: advance_width(font, text) <= room) for _ in range(n_lines))
    lines = [line for line in drawn if line]
    if not lines:
        return None
    ascent, descent = font.getmetrics()
    layout = layout_block(font, lines, pitch=ascent + descent, align=_line_alignment(rng, style))
    if layout.width > room or layout.height > room:
        return None
    return font_path, font_px, layout


def _choose_text(source: SynthSource, rng: random.Random, ladder: Sequence[int], room: int, size: int):
    """(font_path, font_px, Layout) of one image, or None to try again."""
    if source.texts is not None or source.style.charset == "printable":
        return _fitted_transcript(source, rng, ladder, room, size)
    return _styled_block(source, rng, ladder, room, size)


# ------------------------------------------------------------------------------------------------
# Placement and composition
# ------------------------------------------------------------------------------------------------


def fixed_rows(style: SynthStyle, font_px: int, font_path: str, size: int) -> tuple[int, int]:
    """Placement ``fixed``: (top, pitch) in px: line k's ascender line is at top + k * pitch in every
    image (the block of the most lines is centred vertically)."""
    ascent, descent = load_font(font_path, font_px).getmetrics()
    pitch = ascent + descent
    most = (style.lines or (1, max_lines_for(size)))[1]
    return (size - most * pitch) // 2, pitch


def fixed_text_frame(text: str, style: SynthStyle, font_path: str, size: int) -> tuple[int, int, int, int]:
    """Where a ``fixed``-placement, left-aligned style with one font size writes ``text`` on a
    size x size canvas: (left, top, right, bottom) in px of its lines' pen boxes (the left margin
    to the widest line's advance, the first line's ascender to the last line's descender). A model
    trained on such data writes there; ``glyphfuse edit`` maps a user's box onto it."""
    if style.placement != "fixed" or style.align != "left" or style.font_px is None or style.font_px[0] != style.font_px[1]:
        raise GlyphfuseError("a text frame needs a data recipe with fixed, left-aligned lines in one font size (e.g. scenes128)")
    font_px = style.font_px[0]
    lines = text.split("\n")
    top, pitch = fixed_rows(style, font_px, font_path, size)
    font = load_font(font_path, font_px)
    margin = canvas_margin(size)
    width = max(advance_width(font, line) for line in lines)
    return margin, top, margin + int(np.ceil(width)), top + len(lines) * pitch


def fixed_line_placements(lines: Sequence[str], style: SynthStyle, font_path: str, font_px: int, size: int) -> list[Placement]:
    """Placement ``fixed``: glyph placements of ``lines`` with line k's ascender line at the same
    height in every image (:func:`fixed_rows`) and a fixed left pen position (or the line centred
    or right-aligned, as ``style.align`` says)."""
    font = load_font(font_path, font_px)
    top, pitch = fixed_rows(style, font_px, font_path, size)
    margin = canvas_margin(size)
    placements = []
    for k, line in enumerate(lines):
        glyphs, box = measure_line(font, line)
        if box is None:
            continue
        if style.align == "center":
            dx = (size - (box[2] - box[0])) // 2 - box[0]
        elif style.align == "right":
            dx = size - margin - box[2]
        else:
            dx = margin
        placements.extend((x + dx, y + top + k * pitch, bitmap) for x, y, bitmap in glyphs)
    return placements


def fixed_text_coverage(text: str, style: SynthStyle, font_path: str, size: int) -> np.ndarray:
    """The (size, size) uint8 ink coverage (0..255) of ``text`` exactly as data of a ``fixed``-
    placement style with one font size draws it: the glyphs that a glyph-guided model is shown
    (:func:`glyphfuse.data.synth.recipe_glyphs`). GlyphfuseError when a glyph would leave the canvas."""
    if style.placement != "fixed" or style.font_px is None or style.font_px[0] != style.font_px[1]:
        raise GlyphfuseError("typeset glyphs need a data recipe with fixed lines in one font size (e.g. scenes128)")
    coverage = _compose(fixed_line_placements(text.split("\n"), style, font_path, style.font_px[0], size), size)
    if coverage is None:
        raise GlyphfuseError(f"the text {text!r} does not fit the {size} px canvas in the data recipe's layout")
    return coverage


def _place(source: SynthSource, rng: random.Random, chosen: tuple[str, int, Layout], size: int, margin: int) -> list[Placement]:
    """The glyph placements of the chosen text on the canvas, as ``style.placement`` says."""
    font_path, font_px, layout = chosen
    placement = source.style.placement
    if placement == "fixed":
        return fixed_line_placements(layout.lines, source.style, font_path, font_px, size)
    room = size - 2 * margin
    if placement == "center":
        left, top = (size - layout.width) // 2, (size - layout.height) // 2
    else:
        left, top = margin + rng.randint(0, room - layout.width), margin + rng.randint(0, room - layout.height)
    return [(x + left, y + top, bitmap) for x, y, bitmap in layout.placements]


def _compose(placements: list[Placement], size: int) -> np.ndarray | None:
    """The (size, size) uint8 ink coverage of the placed glyphs; None when a glyph would be cut
    by the canvas edge."""
    coverage = np.zeros((size, size), dtype=np.uint8)  # (H, W) text ink, 0..255
    for x, y, bitmap in placements:
        height, width = bitmap.shape
        if x < 0 or y < 0 or x + width > size or y + height > size:
            return None
        region = coverage[y : y + height, x : x + width]
        np.maximum(region, bitmap, out=region)  # overlapping glyphs: keep the stronger ink
    return coverage


def render_example(source: SynthSource, index: int) -> Rendered:
    """Draw image ``index`` of a dataset (deterministic in source.seed and index)."""
    rng = image_rng(source.seed, index)
    size = source.size
    margin = canvas_margin(size)
    room = size - 2 * margin
    font_px_range = source.font_px or source.style.font_px
    ladder = font_size_ladder(size) if font_px_range is None else list(range(font_px_range[0], font_px_range[1] + 1))
    for _attempt in range(ATTEMPTS):
        chosen = _choose_text(source, rng, ladder, room, size)
        if chosen is None:
            continue
        font_path, font_px, layout = chosen
        if source.texts is None and is_held_out(layout.lines):
            continue  # never render a word of the eval prompt sets
        coverage = _compose(_place(source, rng, chosen, size, margin), size)
        bbox = None if coverage is None else ink_box(coverage)
        if bbox is None:
            continue
        if bbox[0] < margin or bbox[1] < margin or bbox[2] > size - margin or bbox[3] > size - margin:
            continue  # ink outside the margin: try another text (never write a clipped glyph)
        if source.style.scene_kinds:
            painted = paint_scene(rng.choice(source.style.scene_kinds), coverage, rng, source.backgrounds)
            controls = painted.controls
            return Rendered(painted.image, "\n".join(layout.lines), bbox, margin, font_path, font_px, controls.background_color,
                            controls.text_color, controls)
        background, foreground = random_colors(rng, source.color, source.style.background)
        image = Image.new("RGB" if source.color else "L", (size, size), background)
        image.paste(foreground, (0, 0, size, size), Image.fromarray(coverage))
        return Rendered(image, "\n".join(layout.lines), bbox, margin, font_path, font_px, background, foreground)
    raise GlyphfuseError(f"could not render image {index}: no font has all characters of the sampled texts, "
                         f"or the text never fits a {size} px canvas")
