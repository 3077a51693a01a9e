"""Reading colour scenes: RapidOCR, a scene-text engine, where tesseract cannot read.

Tesseract reads dark text on a flat light page. On a colour scene it reads the photo too: on held-out
words rendered in every scene kind (``benchmarks/bench_scene_ocr.py``) it read signs and captions
over photos almost never exactly, however the picture was preprocessed (grey, inverted, top-hat
stroke maps, best of them by tesseract's own confidence). RapidOCR runs PaddleOCR's PP-OCR text
detector and recogniser (Apache-2.0 models shipped inside the ``rapidocr_onnxruntime`` wheel, run
by onnxruntime on the CPU: nothing is downloaded at run time). It finds the text lines first and
reads only them, so the photo around a sign does not matter.

:func:`read_scene_images` reads a list of images: each is upscaled to :data:`SCENE_SIDE` px on its
short side (a 128 px picture's 11 px text is small for the detector), its text lines are found and
read, and the lines are joined top to bottom with line breaks (whitespace-normalised like
tesseract's output). One engine is built per process on first use (a second or so) and reused.
"""

from __future__ import annotations

import threading
import unicodedata
from typing import Sequence

import numpy as np
from PIL import Image

from glyphfuse.core.errors import GlyphfuseError

SCENE_SIDE = 256  # px: pictures are upscaled (bicubic) until the short side reaches this
DETECTOR_SIDE = 256  # the detector's input size (its default 736 is 5x slower and reads no better here)
ENGINE_MISSING = ("colour scenes are read with RapidOCR, which is not installed; install it with "
                  "pip install 'glyphfuse[scenes]' (the rapidocr_onnxruntime package)")

_ENGINE = None
_LOCK = threading.Lock()  # one engine per process, built once, used by one thread at a time


class SceneOcrMissing(GlyphfuseError):
    """RapidOCR is not installed."""


def _engine():
    global _ENGINE
    if _ENGINE is None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise SceneOcrMissing(ENGINE_MISSING) from None
        # upright text: no angle classifier; the detector at a small side (see DETECTOR_SIDE)
        _ENGINE = RapidOCR(det_limit_side_len=DETECTOR_SIDE, use_cls=False)
    return _ENGINE


def _lines_top_to_bottom(result) -> str:
    """RapidOCR's [(box, text, score), ...] as text: boxes sorted by their top edge, then left;
    boxes whose vertical centres lie within half a line of each other are one line."""
    if not result:
        return ""
    boxes = []
    for box, text, _score in result:
        ys = [point[1] for point in box]
        xs = [point[0] for point in box]
        # NFKC: the recogniser also knows Chinese and now and then writes a full-width comma or colon
        boxes.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), " ".join(unicodedata.normalize("NFKC", str(text)).split())))
    boxes.sort()
    lines: list[list[tuple[float, str]]] = []
    last_centre = None
    for centre, height, left, text in boxes:
        if not text:
            continue
        if last_centre is not None and abs(centre - last_centre) < height / 2:
            lines[-1].append((left, text))
        else:
            lines.append([(left, text)])
        last_centre = centre
    return "\n".join(" ".join(text for _, text in sorted(line)) for line in lines)


def read_scene_image(image: Image.Image) -> str:
    """The text of one colour picture, lines top to bottom."""
    image = image.convert("RGB")
    scale = SCENE_SIDE / min(image.size)
    if scale > 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    with _LOCK:
        result, _ = _engine()(np.asarray(image))
    return _lines_top_to_bottom(result)


def read_scene_images(images: Sequence[Image.Image], on_image=None) -> list[str]:
    """:func:`read_scene_image` of each image, in order; ``on_image()`` after each (progress)."""
    texts = []
    for image in images:
        texts.append(read_scene_image(image))
        if on_image is not None:
            on_image()
    return texts
