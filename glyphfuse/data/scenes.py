"""Colour scenes: a text's ink painted into a picture of one of six kinds.

:func:`paint_scene` takes the ink coverage that :mod:`glyphfuse.data.render` composed (the same
glyphs at the same places as the grey data, so that what a model knows about writing carries
over) and paints it into a colour picture of one kind (:data:`glyphfuse.core.controls.SCENE_KINDS`):

* ``plain``: a flat colour;
* ``gradient``: a linear blend of two colours at a random angle;
* ``sign``: a coloured panel (with or without a border) around the text, on a photo or texture;
* ``caption``: white or black text with an outline or a shadow, right over a photo;
* ``paper``: dark ink on a light paper, card or fabric texture;
* ``screen``: a UI window (title bar, light or dark theme) on a gradient or a blurred photo.

The text colour is chosen for legibility against what is actually behind the text: its WCAG
contrast ratio against the darkest and the lightest pixel colour under the ink (a little dilated)
is at least :data:`MIN_CONTRAST_RATIO` (the caption's outline or shadow carries it there). The
kind, the text colour and the median colour behind the text are returned as the image's
:class:`~glyphfuse.core.controls.SceneControls`, with the measured contrast.

Photos and textures come from a :class:`BackgroundBank`: the repository's curated
``backgrounds/`` (sources and licences in its README) or a user's ``--backgrounds DIR``. Each use
takes a random crop (a random scale of the photo) with a random horizontal flip.
"""

from __future__ import annotations

import colorsys
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from glyphfuse.core.controls import SCENE_KINDS, SceneControls
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.images import load_image
from glyphfuse.data.layout import ink_box

MIN_CONTRAST_RATIO = 4.5  # WCAG "AA" for body text, against every background colour under the ink
BACKGROUND_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
BACKGROUND_MAX_PIXELS = 64_000_000  # a larger "photo" is a mistake or a decompression bomb
BACKGROUND_SIDE = 512  # backgrounds are kept in memory with their short side at most this (px)
MIN_BACKGROUND_SIDE = 64  # a smaller picture cannot give a useful crop

Array = np.ndarray  # (H, W, 3) float32 RGB 0..255 unless stated


def default_backgrounds_dir() -> Path:
    """The ``backgrounds/`` folder next to the ``glyphfuse`` package (the repository checkout)."""
    return Path(__file__).resolve().parents[2] / "backgrounds"


# ------------------------------------------------------------------------------------------------
# Backgrounds
# ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=128)
def _background_pixels(path: str) -> np.ndarray:
    """The picture at ``path`` as (H, W, 3) uint8 RGB, its short side at most BACKGROUND_SIDE; the
    last 128 are kept per process (about 1 MB each)."""
    image = load_image(path, BACKGROUND_MAX_PIXELS)
    image = _upright_rgb(image)
    scale = BACKGROUND_SIDE / min(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)


def _upright_rgb(image: Image.Image) -> Image.Image:
    """RGB, turned as its EXIF orientation says; transparency flattened on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode == "I;16" or image.mode.startswith("I"):
        array = np.asarray(image, dtype=np.float64)
        return Image.fromarray((array / max(array.max(), 1.0) * 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


@dataclass
class BackgroundBank:
    """The usable photos and textures of a folder, and the files that were skipped (one line each)."""

    folder: Path
    photos: list[str]
    textures: list[str]  # files named texture-*: paper, card, fabric (the paper kind prefers them)
    skipped: list[str]

    @classmethod
    def scan(cls, folder: str | Path | None = None) -> "BackgroundBank":
        """Every picture under ``folder`` (default: the repository's backgrounds/), each decoded
        once to check it; an unreadable, corrupt, too large or too small file is skipped and named."""
        explicit = folder is not None
        root = Path(folder) if explicit else default_backgrounds_dir()
        if not root.is_dir():
            hint = "" if explicit else " (the package is not in a source checkout?); pass --backgrounds DIR with photos"
            raise GlyphfuseError(f"backgrounds folder {root} does not exist{hint}")
        photos, textures, skipped = [], [], []
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() not in BACKGROUND_EXTENSIONS:
                if path.suffix.lower() not in (".md", ".txt"):
                    skipped.append(f"{path}: not a picture ({path.suffix or 'no extension'}); skipped")
                continue
            try:
                pixels = _background_pixels(str(path))
            except GlyphfuseError as exc:
                skipped.append(f"{exc}; skipped")
                continue
            except Exception as exc:  # noqa: BLE001 - a hostile file may raise anything inside PIL
                skipped.append(f"{path}: unreadable picture ({type(exc).__name__}: {exc}); skipped")
                continue
            if min(pixels.shape[:2]) < MIN_BACKGROUND_SIDE:
                skipped.append(f"{path}: smaller than {MIN_BACKGROUND_SIDE} px on its short side; skipped")
                continue
            (textures if path.name.lower().startswith("texture") else photos).append(str(path))
        if not photos and not textures:
            first = f" (first problem: {skipped[0]})" if skipped else ""
            raise GlyphfuseError(f"backgrounds folder {root} has no usable pictures{first}")
        return cls(root, photos, textures, skipped)

    def crop(self, rng: random.Random, size: int, texture: bool = False) -> Array:
        """A random size x size crop: a random photo (a texture when asked and there are any), a
        random scale between a third of its short side and all of it, a random place, flipped
        half the time."""
        pool = (self.textures or self.photos) if texture else (self.photos or self.textures)
        pixels = _background_pixels(rng.choice(pool))
        height, width = pixels.shape[:2]
        side = max(8, round(min(height, width) * rng.uniform(0.33, 1.0)))
        top, left = rng.randint(0, height - side), rng.randint(0, width - side)
        patch = Image.fromarray(pixels[top : top + side, left : left + side])
        patch = patch.resize((size, size), Image.Resampling.BOX if side >= size else Image.Resampling.BICUBIC)
        array = np.asarray(patch, dtype=np.float32)
        return array[:, ::-1].copy() if rng.random() < 0.5 else array


# ------------------------------------------------------------------------------------------------
# Colour helpers
# ------------------------------------------------------------------------------------------------


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB colours (..., 3) 0..255 -> (...) 0..1."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def contrast_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """WCAG contrast ratio (1..21) between colours ``a`` and ``b`` (broadcast)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (np.maximum(la, lb) + 0.05) / (np.minimum(la, lb) + 0.05)


def _hsv(rng: random.Random, saturation: tuple[float, float], value: tuple[float, float]) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return round(red * 255), round(green * 255), round(blue * 255)


def _random_color(rng: random.Random) -> tuple[int, int, int]:
    """A colour as people pick them: often saturated, sometimes pastel, dark or near grey."""
    style = rng.random()
    if style < 0.45:
        return _hsv(rng, (0.55, 1.0), (0.45, 1.0))  # vivid
    if style < 0.65:
        return _hsv(rng, (0.1, 0.4), (0.85, 1.0))  # pastel
    if style < 0.85:
        return _hsv(rng, (0.3, 1.0), (0.08, 0.35))  # dark
    return _hsv(rng, (0.0, 0.08), (0.0, 1.0))  # near grey


def legible_text_color(rng: random.Random, behind: np.ndarray, attempts: int = 24) -> tuple[int, int, int]:
    """A text colour whose contrast ratio against every colour in ``behind`` (N, 3) is at least
    MIN_CONTRAST_RATIO: random colours first, then black or white (whichever is better)."""
    darkest = behind[np.argmin(relative_luminance(behind))]
    lightest = behind[np.argmax(relative_luminance(behind))]
    for _ in range(attempts):
        color = _random_color(rng)
        if min(contrast_ratio(color, darkest), contrast_ratio(color, lightest)) >= MIN_CONTRAST_RATIO:
            return color
    black, white = (0, 0, 0), (255, 255, 255)
    return black if contrast_ratio(black, lightest) >= contrast_ratio(white, darkest) else white


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) uint8 coverage grown by ``radius`` px (a max filter)."""
    image = Image.fromarray(mask)
    return np.asarray(image.filter(ImageFilter.MaxFilter(2 * radius + 1)))


def _colors_under(background: Array, coverage: np.ndarray, radius: int = 2) -> np.ndarray:
    """(N, 3) background colours under the ink grown by ``radius``: what the text must stand out from."""
    region = dilate(coverage, radius) > 0
    return background[region]


def _gradient(rng: random.Random, size: int, first, second) -> Array:
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    along = xs * np.cos(angle) + ys * np.sin(angle)
    t = (along - along.min()) / max(along.max() - along.min(), 1e-6)
    return (1 - t)[..., None] * np.array(first, np.float32) + t[..., None] * np.array(second, np.float32)


def _fill_rect(canvas: Array, box: tuple[int, int, int, int], color) -> None:
    left, top, right, bottom = (max(0, v) for v in box)
    canvas[top:bottom, left:right] = color


# ------------------------------------------------------------------------------------------------
# The six kinds: each returns (background with any panel, text colour, extra ink layers)
# ------------------------------------------------------------------------------------------------


@dataclass
class Painted:
    """A scene: the RGB image and its controls."""

    image: Image.Image
    controls: SceneControls
    contrast: float  # least WCAG contrast ratio of the text colour against what is behind it


def _blend(canvas: Array, coverage: np.ndarray, color) -> Array:
    alpha = (coverage.astype(np.float32) / 255.0)[..., None]
    return canvas * (1 - alpha) + alpha * np.array(color, np.float32)


def _plain(rng, coverage, size, bank):
    return np.full((size, size, 3), _random_color(rng), np.float32)


def _gradient_kind(rng, coverage, size, bank):
    first = _random_color(rng)
    # the second colour keeps the lightness side of the first often enough that some text colour fits both
    second = _random_color(rng) if rng.random() < 0.5 else tuple(int(np.clip(c + rng.randint(-90, 90), 0, 255)) for c in first)
    return _gradient(rng, size, first, second)


def _sign(rng, coverage, size, bank):
    canvas = bank.crop(rng, size, texture=rng.random() < 0.25)
    left, top, right, bottom = ink_box(coverage)
    pad = rng.randint(3, 8)
    box = (left - pad, top - pad, right + pad, bottom + pad)
    if rng.random() < 0.4:  # a drop shadow under the panel, 2 px down and right
        canvas[max(0, box[1] + 2):box[3] + 2, max(0, box[0] + 2):box[2] + 2] *= 0.55
    panel = _random_color(rng)
    if rng.random() < 0.5:  # a border
        width = rng.randint(1, 2)
        border = _random_color(rng) if rng.random() < 0.5 else (255, 255, 255) if relative_luminance(panel) < 0.4 else (0, 0, 0)
        _fill_rect(canvas, (box[0] - width, box[1] - width, box[2] + width, box[3] + width), border)
    _fill_rect(canvas, box, panel)
    return canvas


def _caption(rng, coverage, size, bank):
    return bank.crop(rng, size)


def _paper(rng, coverage, size, bank):
    texture = bank.crop(rng, size, texture=True)
    tone = np.array(_hsv(rng, (0.0, 0.25), (0.85, 1.0)), np.float32)  # white, cream, pale card
    grain = texture - texture.mean(axis=(0, 1), keepdims=True)
    strength = rng.uniform(0.15, 0.45)  # how much of the texture shows through
    return np.clip(tone + strength * grain, 0, 255)


def _screen(rng, coverage, size, bank):
    if rng.random() < 0.5:
        outside = np.asarray(Image.fromarray(bank.crop(rng, size).astype(np.uint8)).filter(ImageFilter.GaussianBlur(3)), np.float32)
    else:
        outside = _gradient(rng, size, _random_color(rng), _random_color(rng))
    canvas = outside.copy()
    dark = rng.random() < 0.5
    body = _hsv(rng, (0.0, 0.3), (0.1, 0.22)) if dark else _hsv(rng, (0.0, 0.1), (0.93, 1.0))
    left, top, right, bottom = ink_box(coverage)
    margin = rng.randint(2, 5)
    window = (max(0, left - margin - rng.randint(1, 4)), max(0, top - 12 - margin), min(size, right + margin + rng.randint(2, 30)),
              min(size, bottom + margin + rng.randint(1, 10)))
    bar = _hsv(rng, (0.0, 0.6), (0.25, 0.45)) if dark else _hsv(rng, (0.0, 0.5), (0.75, 0.9))
    _fill_rect(canvas, window, body)
    _fill_rect(canvas, (window[0], window[1], window[2], window[1] + 8), bar)
    for k, dot in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        x = window[0] + 3 + 4 * k
        _fill_rect(canvas, (x, window[1] + 3, x + 2, window[1] + 5), dot)
    return canvas


BACKDROPS = {"plain": _plain, "gradient": _gradient_kind, "sign": _sign, "caption": _caption, "paper": _paper, "screen": _screen}
assert tuple(BACKDROPS) == SCENE_KINDS


def paint_scene(kind: str, coverage: np.ndarray, rng: random.Random, bank: BackgroundBank | None) -> Painted:
    """Paint the ink ``coverage`` ((S, S) uint8 0..255) into a scene of ``kind``."""
    size = coverage.shape[0]
    if bank is None and kind in ("sign", "caption", "paper"):
        raise GlyphfuseError(f"scene kind {kind!r} needs background pictures (--backgrounds DIR)")
    background = BACKDROPS[kind](rng, coverage, size, bank)
    behind = _colors_under(background, coverage)
    background_color = tuple(int(v) for v in np.median(behind, axis=0).round())
    if kind == "caption":
        # white or black fill (now and then yellow), outlined or shadowed in the opposite colour
        light = rng.random() < 0.7
        fill = ((255, 255, 255) if rng.random() < 0.8 else (255, 225, 40)) if light else (0, 0, 0)
        edge = (0, 0, 0) if light else (255, 255, 255)
        if rng.random() < 0.65:
            halo = dilate(coverage, 1)
        else:
            dx, dy = rng.choice(((1, 1), (2, 2), (1, 2)))
            halo = np.roll(np.roll(dilate(coverage, 1) if rng.random() < 0.5 else coverage, dy, axis=0), dx, axis=1)
            halo = np.asarray(Image.fromarray(halo).filter(ImageFilter.GaussianBlur(0.6)))
        canvas = _blend(background, halo, edge)
        text_color = fill
        contrast = float(contrast_ratio(fill, edge))
    else:
        text_color = legible_text_color(rng, behind) if kind != "paper" else _ink_color(rng, behind)
        canvas = background
        contrast = float(contrast_ratio(text_color, behind).min())
    canvas = _blend(canvas, coverage, text_color)
    image = Image.fromarray(np.clip(canvas, 0, 255).round().astype(np.uint8), mode="RGB")
    return Painted(image, SceneControls(kind, tuple(int(c) for c in text_color), background_color), contrast)


def _ink_color(rng: random.Random, behind: np.ndarray) -> tuple[int, int, int]:
    """Paper: pen and printer inks (black, blue, dark red, brown, green) when they are legible."""
    ink = rng.choice(((20, 20, 25), (25, 40, 120), (120, 20, 25), (70, 45, 25), (20, 80, 40), (40, 40, 40)))
    darkest = behind[np.argmin(relative_luminance(behind))]
    if contrast_ratio(ink, darkest) >= MIN_CONTRAST_RATIO:
        return ink
    return legible_text_color(rng, behind)
