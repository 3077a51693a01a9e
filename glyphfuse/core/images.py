"""Conversions between PIL images, files and model tensors.

Model tensors are float, shape (B, C, H, W) or (C, H, W), values in [-1, 1];
C is 1 for grayscale ("L") and 3 for RGB.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from glyphfuse.core.errors import GlyphfuseError

MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}


def _mode(channels: int) -> str:
    if channels not in MODE_FOR_CHANNELS:
        raise GlyphfuseError(f"images must have 1 (grayscale) or 3 (RGB) channels, not {channels}")
    return MODE_FOR_CHANNELS[channels]


def fit_to_square(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and centre-crop the longer one. Never flips or rotates:
    text must stay readable."""
    width, height = image.size
    if (width, height) == (size, size):
        return image
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    image = image.resize((new_w, new_h), resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def pil_to_tensor(image: Image.Image, size: int | None = None, channels: int = 1) -> torch.Tensor:
    """PIL image -> float tensor (C, H, W) in [-1, 1], converted to ``channels`` and, when
    ``size`` is given, resized/cropped to size x size."""
    image = image.convert(_mode(channels))
    if size is not None:
        image = fit_to_square(image, size)
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy()).div_(127.5).sub_(1.0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (C, H, W) in [-1, 1] -> PIL image ("L" or "RGB")."""
    if tensor.ndim != 3:
        raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(tensor.shape)}")
    array = ((tensor.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    if array.shape[0] == 1:
        return Image.fromarray(array[0], mode="L")
    return Image.fromarray(array.transpose(1, 2, 0), mode="RGB")


def load_image(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file; a missing, truncated or corrupt file, or one larger
    than ``max_pixels`` (default: PIL's decompression-bomb limit, about 89 Mpx) is a one-line
    GlyphfuseError naming the file. The size is checked from the header, before decoding, and
    PIL's own DecompressionBombWarning is never printed."""
    path = Path(path)
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if limit and image.width * image.height > limit:
                    raise GlyphfuseError(
                        f"{path}: image is {image.width}x{image.height} ({image.width * image.height / 1e6:.1f} Mpx), "
                        f"more than the {limit / 1e6:.1f} Mpx limit; refusing to decode it"
                    )
                image.load()
                return image.copy()
    except FileNotFoundError:
        raise GlyphfuseError(f"{path}: no such image file") from None
    except Image.DecompressionBombError:  # PIL refuses images over twice its limit in open()
        raise GlyphfuseError(f"{path}: image is more than the {limit / 1e6:.1f} Mpx limit; refusing to decode it") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise GlyphfuseError(f"{path}: unreadable or corrupt image ({exc})") from None


def make_grid(images: list[Image.Image], columns: int | None = None, pad: int = 2, fill: int = 255) -> Image.Image:
    """Tile equally sized images into one picture, row by row."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / columns))
    width, height = images[0].size
    mode = "RGB" if any(im.mode == "RGB" for im in images) else "L"
    grid = Image.new(mode, (columns * (width + pad) + pad, rows * (height + pad) + pad), color=fill if mode == "L" else (fill,) * 3)
    for index, image in enumerate(images):
        row, col = divmod(index, columns)
        grid.paste(image.convert(mode), (pad + col * (width + pad), pad + row * (height + pad)))
    return grid
