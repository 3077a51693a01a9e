"""Which engine reads a picture: tesseract for grey text pages, RapidOCR for colour scenes.

:func:`read_images` is what ranking, rejection sampling and ``eval`` call. A picture with colour in
it (:func:`has_colour`) goes to the scene-text engine (:mod:`glyphfuse.ocr.scene_text`), every other
one to tesseract (:mod:`glyphfuse.ocr.tesseract`), whose figures on the grey models stay as they
were measured. Results come back in the order of the input.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from glyphfuse.core.progress import ProgressBar
from glyphfuse.ocr import scene_text, tesseract

COLOUR_SPREAD = 24  # a pixel is coloured when its channels differ by more than this (0..255)
COLOUR_SHARE = 0.01  # ... and a picture when more than this share of its pixels are


def has_colour(image: Image.Image) -> bool:
    """More than COLOUR_SHARE of the pixels have channels COLOUR_SPREAD apart (a grey picture
    saved as RGB is still grey)."""
    if image.mode in ("L", "1", "I", "I;16", "F", "LA"):
        return False
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return float((spread > COLOUR_SPREAD).mean()) > COLOUR_SHARE


def read_images(images: Sequence[tesseract.ImageLike], processes: int | None = None, show_progress: bool | None = None) -> list[str]:
    """One cleaned transcript per image (a PIL image or a path), each read by the engine that
    suits it; see :func:`glyphfuse.ocr.tesseract.read_images` for ``processes`` and
    ``show_progress``. A colour picture without RapidOCR installed is a one-line GlyphfuseError."""
    pictures = [tesseract._as_image(item) for item in images]
    coloured = [has_colour(picture) for picture in pictures]
    colour = [i for i, is_colour in enumerate(coloured) if is_colour]
    grey = [i for i, is_colour in enumerate(coloured) if not is_colour]
    texts: list[str] = [""] * len(pictures)
    if grey:
        for i, text in zip(grey, tesseract.read_images([pictures[i] for i in grey], processes=processes, show_progress=show_progress)):
            texts[i] = text
    if colour:
        shown = tesseract.progress_is_shown() if show_progress is None else show_progress
        with ProgressBar("OCR (scenes)", len(colour), unit="images", shown=shown) as bar:
            for i, text in zip(colour, scene_text.read_scene_images([pictures[i] for i in colour], on_image=bar.advance)):
                texts[i] = text
    return texts
