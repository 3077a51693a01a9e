"""How an edit's drawing becomes the pixels of the box: two layers, blended in without a seam.

A painter paints at its own canvas size (128 px), and a word box on a photo is often three or four
times larger, so the painter's letters, scaled up, come out soft and blocky (an "m" reads "rn"),
and its pattern of 4 px patches shows. The grey cascade writes the same text twice as sharp (its SR
stage, 256 px). So the box is composed of two layers (:func:`compose_layers`):

* the **background**: the painter's picture with its own letters taken out (the ink and a pixel
  around it filled in from the surrounding background, :func:`background_layer`) and smoothed
  a little (its patch pattern is :data:`SMOOTH_SIGMA` px fine);
* the **ink**: the text's coverage at the sharpest size there is (the grey SR image, or typeset
  glyphs), in one colour: the painter's own ink colour (its median over the letters), moved toward
  black or white only as far as it needs to read against the final background around the letters
  (:func:`glyphfuse.sampling.glyphs.legible_ink`).

The background is blended in **seamlessly** (:func:`seamless_offset`) before the ink goes on: a
smooth correction is added to it, zero-curvature inside the box (a harmonic function), that takes
its border pixels to the colour of the picture just outside the box. Its detail is kept, its
colour meets the picture's at the edge, and no step shows there. How much of the painter's own
backing (a panel, a sign's board) stays is ``panel`` (default :data:`DEFAULT_PANEL`: none; the box is
then the picture's surroundings filled in smoothly, and the text goes straight onto the picture).
The ink is put on last, so its colour, and the contrast the legibility rule chose, are exactly what
reaches the picture.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from glyphfuse.sampling.glyphs import legible_ink

SMOOTH_SIGMA = 1.5  # px of the painter's canvas: the background's blur (its patch pattern has a 4 px period)
FILL_SIGMA = 2.0  # px: how far around a hole the fill of the letters looks for background
INK_GROW = 1  # px of the painter's canvas: the letters' hole reaches this far past the ink
HALO_PX = 4  # px of the painter's canvas: the ring around the letters that the ink must read against (scaled to the box)
INK_LEVEL = 0.5  # coverage over which a pixel is ink (for the ink colour)
HOLE_LEVEL = 0.05  # coverage over which a pixel is taken out of the background
MAX_COMPOSE_PIXELS = 1 << 21  # a larger box is composed at this many px and scaled up (its detail comes from a <= 256 px canvas)
DEFAULT_PANEL = 0.0  # how much of the painter's own backing shows by default: none, the text goes onto the picture


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) blurred by a Gaussian of ``sigma`` px (edges replicated)."""
    radius = max(1, int(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def fill_holes(image: torch.Tensor, hole: torch.Tensor, sigma: float = FILL_SIGMA) -> torch.Tensor:
    """``image`` (C, H, W) with the pixels where ``hole`` (H, W) is True replaced by a weighted
    average of the known pixels near them (normalised convolution), grown inward until filled."""
    known = (~hole).to(image.dtype)[None, None]  # (1, 1, H, W)
    out = image[None].clone()
    for _ in range(64):  # each round reaches ~3 sigma further into the hole
        if bool(known.min() > 0):
            break
        weight = gaussian_blur(known, sigma)
        average = gaussian_blur(out * known, sigma) / weight.clamp_min(1e-6)
        reached = (weight > 1e-4) & (known == 0)
        out = torch.where(reached.expand_as(out), average, out)
        known = torch.where(reached, torch.ones_like(known), known)
    return out[0]


def background_layer(drawing: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """The painter's ``drawing`` (3, S, S) in [-1, 1] without its letters (``coverage`` (S, S) in
    0..1, at the drawing's size), smoothed by :data:`SMOOTH_SIGMA`."""
    hole = F.max_pool2d((coverage > HOLE_LEVEL).float()[None, None], 2 * INK_GROW + 1, stride=1, padding=INK_GROW)[0, 0] > 0
    filled = fill_holes(drawing.float(), hole) if bool(hole.any()) else drawing.float()
    return gaussian_blur(filled[None], SMOOTH_SIGMA)[0].clamp(-1.0, 1.0)


def painted_ink(drawing: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor | None:
    """The painter's ink colour (3,) in [-1, 1]: its median over its letters (``coverage`` (S, S)
    over :data:`INK_LEVEL`); None without ink."""
    ink = coverage > INK_LEVEL
    if int(ink.sum()) == 0:
        return None
    return drawing.float()[:, ink].median(dim=1).values.clamp(-1.0, 1.0)


def legible_against(ink: torch.Tensor, background: np.ndarray, alpha: np.ndarray, ring_px: int) -> torch.Tensor:
    """``ink`` (3,) in [-1, 1] made legible against the median of ``background`` (h, w, 3) in 0..255
    over a ``ring_px`` wide ring around the letters (``alpha`` (h, w) over :data:`INK_LEVEL`)."""
    letters = torch.from_numpy(np.ascontiguousarray(alpha > INK_LEVEL, dtype=np.float32))[None, None]
    ring_px = max(1, int(ring_px))
    grown = F.max_pool2d(letters, (2 * ring_px + 1, 1), stride=1, padding=(ring_px, 0))  # a square window, one axis at a time
    grown = F.max_pool2d(grown, (1, 2 * ring_px + 1), stride=1, padding=(0, ring_px))[0, 0].numpy() > 0
    ring = grown & (alpha < HOLE_LEVEL)
    if not ring.any():
        return ink
    around = np.median(background[ring], axis=0) / 127.5 - 1.0
    return legible_ink(ink, torch.as_tensor(around, dtype=ink.dtype))


def _dst1(values: np.ndarray, axis: int) -> np.ndarray:
    """The type-I discrete sine transform along ``axis`` (its own inverse up to 2 / (n + 1)),
    through the FFT of the odd extension [0, x, 0, -reversed x]."""
    moved = np.moveaxis(values, axis, -1)
    n = moved.shape[-1]
    zero = np.zeros(moved.shape[:-1] + (1,))
    extended = np.concatenate([zero, moved, zero, -moved[..., ::-1]], axis=-1)
    transformed = -np.fft.rfft(extended, axis=-1).imag[..., 1 : n + 1] / 2.0
    return np.moveaxis(transformed, -1, axis)


def seamless_offset(region: np.ndarray, picture_rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The smooth correction (h, w, 3) that, added to ``region`` (h, w, 3) drawn for ``box`` (left,
    top, right, bottom) of ``picture_rgb`` (H, W, 3), makes it meet the picture at the box's border.

    It is harmonic inside the box (its discrete Laplacian is 0), and its value just outside each
    side is the picture's pixel there minus the region's border pixel next to it (a side on the
    picture's edge has no outside: 0 there). Solved exactly by the sine transform: the Laplacian
    with those boundary values is diagonal in it."""
    left, top, right, bottom = box
    height, width = region.shape[:2]
    picture = picture_rgb.astype(np.float64)
    drawn = region.astype(np.float64)
    boundary = np.zeros_like(drawn)  # the outside neighbours' values, summed per border pixel
    if left > 0:
        boundary[:, 0] += picture[top:bottom, left - 1] - drawn[:, 0]
    if right < picture.shape[1]:
        boundary[:, -1] += picture[top:bottom, right] - drawn[:, -1]
    if top > 0:
        boundary[0, :] += picture[top - 1, left:right] - drawn[0, :]
    if bottom < picture.shape[0]:
        boundary[-1, :] += picture[bottom, left:right] - drawn[-1, :]
    rows = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, height + 1) / (height + 1))
    cols = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, width + 1) / (width + 1))
    eigenvalues = rows[:, None, None] + cols[None, :, None]  # of the negative Laplacian, (h, w, 1)
    spectrum = _dst1(_dst1(boundary, 0), 1) / eigenvalues
    return _dst1(_dst1(spectrum, 0), 1) * (4.0 / ((height + 1) * (width + 1)))


def compose_size(box: tuple[int, int, int, int]) -> tuple[int, int]:
    """(width, height) at which a box is composed: its own size, or scaled down to
    :data:`MAX_COMPOSE_PIXELS` (the sine transform of a 40 Mpx box would need gigabytes)."""
    width, height = box[2] - box[0], box[3] - box[1]
    if width * height <= MAX_COMPOSE_PIXELS:
        return width, height
    factor = math.sqrt(MAX_COMPOSE_PIXELS / (width * height))
    return max(1, round(width * factor)), max(1, round(height * factor))


def _box_average(strip: np.ndarray, length: int) -> np.ndarray:
    """``strip`` (n, C) averaged down to ``length`` <= n rows (each row the mean of its span)."""
    edges = np.round(np.linspace(0, strip.shape[0], length + 1)).astype(int)
    sums = np.concatenate([np.zeros((1, strip.shape[1])), np.cumsum(strip, axis=0)])
    return (sums[edges[1:]] - sums[edges[:-1]]) / np.maximum(edges[1:] - edges[:-1], 1)[:, None]


def ring_picture(picture_rgb: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]
                 ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """What :func:`seamless_offset` needs of the picture for a box composed at ``size`` (width,
    height): a small picture whose box ``size`` large has, on each side that the real box has an
    outside, the picture just outside it averaged down (a band as wide as one composed pixel);
    (that picture, the box in it)."""
    left, top, right, bottom = box
    height_px, width_px = picture_rgb.shape[:2]
    width, height = size
    band_x, band_y = max(1, math.ceil((right - left) / width)), max(1, math.ceil((bottom - top) / height))
    pad_left, pad_top, pad_right, pad_bottom = int(left > 0), int(top > 0), int(right < width_px), int(bottom < height_px)
    small = np.zeros((height + pad_top + pad_bottom, width + pad_left + pad_right, 3))
    rows = slice(pad_top, pad_top + height)
    cols = slice(pad_left, pad_left + width)
    if pad_left:
        small[rows, 0] = _box_average(picture_rgb[top:bottom, max(0, left - band_x):left].mean(axis=1), height)
    if pad_right:
        small[rows, -1] = _box_average(picture_rgb[top:bottom, right:right + band_x].mean(axis=1), height)
    if pad_top:
        small[0, cols] = _box_average(picture_rgb[max(0, top - band_y):top, left:right].mean(axis=0), width)
    if pad_bottom:
        small[-1, cols] = _box_average(picture_rgb[bottom:bottom + band_y, left:right].mean(axis=0), width)
    return small, (pad_left, pad_top, pad_left + width, pad_top + height)


def compose_layers(background_region: np.ndarray | None, alpha: np.ndarray, ink: torch.Tensor | None, picture_rgb: np.ndarray,
                   box: tuple[int, int, int, int], ring_px: int, panel: float = DEFAULT_PANEL) -> np.ndarray:
    """The box's pixels (h, w, 3) float in 0..255: ``background_region`` (h, w, 3) moved seamlessly
    onto the picture, then the ``ink`` (3,) in [-1, 1], made legible against that background
    (:func:`legible_against`, a ``ring_px`` ring), laid on with coverage ``alpha`` (h, w) in 0..1.

    ``panel`` in 0..1: how much of the drawn background's own shape shows (a panel, a sign's
    board): 1 keeps all of it, 0 none, and the box is then the picture's surroundings filled in
    smoothly (the harmonic function with the picture's values around the box) under the ink; with
    0 the drawn background is not needed (None)."""
    height, width = (background_region if background_region is not None else alpha).shape[:2]
    filled = seamless_offset(np.zeros((height, width, 3)), picture_rgb, box)  # the surroundings, filled in
    background = filled
    if panel > 0:
        drawn = background_region.astype(np.float64)
        background = filled + panel * (drawn + seamless_offset(drawn, picture_rgb, box) - filled)
    background = np.clip(background, 0.0, 255.0)
    if ink is None:
        return background
    coverage = np.clip(alpha.astype(np.float64), 0.0, 1.0)
    ink_rgb = (legible_against(ink, background, coverage, ring_px).double().cpu().numpy() + 1.0) * 127.5
    return background * (1.0 - coverage[..., None]) + ink_rgb * coverage[..., None]
