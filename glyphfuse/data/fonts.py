"""Font discovery, loading and character coverage for synthetic data.

Fonts live in the repository's ``fonts/`` folder (each with its licence). ``synth-fonts`` may be
pointed at another folder with ``--fonts DIR``. Every font's character map (cmap) is read once
with fontTools, so that a text is only ever drawn with a font that has all of its characters:
PIL would otherwise silently draw a "tofu" box and the transcript would lie.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont, TTLibError
from PIL import ImageFont

from glyphfuse.core.errors import GlyphfuseError

FONT_EXTENSIONS = (".ttf", ".otf")

# Characters that are layout, not ink: a font need not have glyphs for them.
LAYOUT_CHARACTERS = frozenset(" \n\r\t")


def default_fonts_dir() -> Path:
    """The ``fonts/`` folder next to the ``glyphfuse`` package (the repository checkout)."""
    return Path(__file__).resolve().parents[2] / "fonts"


def discover_fonts(fonts_dir: str | Path | None = None) -> list[Path]:
    """All .ttf/.otf files in ``fonts_dir`` (default: the repository's fonts/), sorted by name so
    that a seed always picks the same font."""
    explicit = fonts_dir is not None
    directory = Path(fonts_dir) if explicit else default_fonts_dir()
    hint = "" if explicit else " (the package is not in a source checkout?); pass --fonts DIR with .ttf/.otf files"
    if not directory.is_dir():
        raise GlyphfuseError(f"fonts folder {directory} does not exist{hint}")
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in FONT_EXTENSIONS and p.is_file())
    if not paths:
        raise GlyphfuseError(f"fonts folder {directory} has no .ttf or .otf files{hint}")
    return paths


@lru_cache(maxsize=None)
def font_charset(path: str | Path) -> frozenset[str]:
    """The characters that ``path``'s best Unicode cmap maps to a glyph (read once per font)."""
    try:
        with TTFont(str(path), lazy=True, fontNumber=0) as font:
            cmap = font.getBestCmap() or {}
    except (OSError, TTLibError, AssertionError, KeyError) as exc:
        raise GlyphfuseError(f"{path}: cannot read the font's character map ({exc})") from None
    return frozenset(chr(codepoint) for codepoint in cmap)


@lru_cache(maxsize=1024)
def load_font(path: str | Path, size: int) -> ImageFont.FreeTypeFont:
    """A PIL font for ``path`` at ``size`` px (cached per (path, size))."""
    try:
        return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)
    except OSError as exc:
        raise GlyphfuseError(f"{path}: cannot load font ({exc})") from None


def _font_path(font: str | Path | ImageFont.FreeTypeFont) -> str:
    if isinstance(font, ImageFont.FreeTypeFont):
        return str(font.path)
    return str(font)


def missing_characters(font: str | Path | ImageFont.FreeTypeFont, text: str) -> list[str]:
    """Characters of ``text`` (in order of first use, layout whitespace excluded) that the font
    has no glyph for."""
    charset = font_charset(_font_path(font))
    missing: dict[str, None] = {}
    for char in text:
        if char not in charset and char not in LAYOUT_CHARACTERS:
            missing[char] = None
    return list(missing)


def font_supports(font: str | Path | ImageFont.FreeTypeFont, text: str) -> bool:
    """True when the font has a glyph for every (non-whitespace) character of ``text``."""
    return font_charset(_font_path(font)).issuperset(set(text) - LAYOUT_CHARACTERS)
