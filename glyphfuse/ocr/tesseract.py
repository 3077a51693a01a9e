"""Local OCR with tesseract: the one home of every tesseract call in glyphfuse (grey pictures;
colour scenes go to :mod:`glyphfuse.ocr.scene_text`, and :mod:`glyphfuse.ocr.reader` chooses).

Reading is done by the ``tesseract`` binary directly (no per-image pytesseract call): images are
preprocessed, written to a temporary folder, and ONE tesseract process reads a whole chunk of them
from a list file, printing the pages separated by form feeds. Chunks run in parallel processes.
Per-image calls cost 105-150 ms each on an idle 2-core box (process start-up dominates; 300-900 ms
under load), the list-file path 8-15 ms/img (idle) to 15-55 ms/img (loaded) with one process.

Preprocessing (each step follows tesseract's own guidance and was measured, see
``benchmarks/bench_ocr.py``):

1. grayscale; if the median luminance is dark (< 128) the image is inverted, so text is dark on
   a light background;
2. upscaled (bicubic) by an integer factor so the short side reaches ``TARGET_SHORT_SIDE`` = 192 px
   (64 px -> x3, 128 px -> x2, 256 px -> x1). Measured on 100 rendered 1-3 line images per size
   (24 fonts of fonts/, random text size and background), CER / exact by fixed factor:
   64 px: x1 0.435/0.35, x2 0.097/0.70, x3 0.100/0.70, x4 0.088/0.69;
   128 px: x1 0.063/0.74, x2 0.022/0.89, x3 0.030/0.88, x4 0.032/0.83;
   256 px: x1 0.028/0.84, x2 0.030/0.82, x3 0.029/0.82, x4 0.033/0.78.
   So small canvases need x2-x4 (x-height >= ~20 px) while over-upscaling hurts; x3/x2/x1 is the
   best or within noise of it at every size. Autocontrast and border width (0 to 15 %) made no
   measurable difference; ``--psm 7`` read single lines exactly as ``--psm 6`` did;
3. a light border (5 % of the short side) of the background colour is added around it.

Tesseract runs with ``--psm 6`` (a uniform block of text; handles one or several lines) and the
dictionaries off (``load_system_dawg=0``, ``load_freq_dawg=0``) because prompts are arbitrary
strings. The result is whitespace-normalised per line: runs of spaces become one space, each line
is stripped and empty lines are dropped; line breaks are kept.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

from PIL import Image, ImageOps

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.images import load_image
from glyphfuse.core.progress import ProgressBar

ImageLike = Union[Image.Image, str, Path]

TESSERACT_MISSING = (
    "tesseract binary not found on PATH; install it "
    "(Debian/Ubuntu: sudo apt-get install tesseract-ocr; macOS: brew install tesseract)"
)
TARGET_SHORT_SIDE = 192  # upscale small images until the short side reaches this (see module doc)
MAX_SCALE = 8
BORDER_FRACTION = 0.05  # border width as a fraction of the (upscaled) short side
DEFAULT_PSM = 6
DICTIONARIES_OFF = ("-c", "load_system_dawg=0", "-c", "load_freq_dawg=0")
PAGE_SEPARATOR = "\f"


# Whether read_images shows a progress bar when its caller does not say: the CLI turns it on for
# its commands (e.g. around glyphfuse eval, whose OCR calls live in glyphfuse.evaluate).
_SHOW_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("glyphfuse_ocr_progress", default=False)


@contextlib.contextmanager
def progress_shown() -> Iterator[None]:
    """Within this block, read_images shows a progress bar on stderr (unless told otherwise)."""
    token = _SHOW_PROGRESS.set(True)
    try:
        yield
    finally:
        _SHOW_PROGRESS.reset(token)


def progress_is_shown() -> bool:
    """Whether OCR progress bars are on (see :func:`progress_shown`)."""
    return _SHOW_PROGRESS.get()


class OcrError(GlyphfuseError):
    """OCR could not run (tesseract missing or failing)."""


def check_tesseract() -> str:
    """Return the path of the ``tesseract`` binary, or raise :class:`OcrError` saying how to install it."""
    path = shutil.which("tesseract")
    if path is None:
        raise OcrError(TESSERACT_MISSING)
    return path


def upscale_factor(short_side: int, target: int = TARGET_SHORT_SIDE) -> int:
    """Integer factor (>= 1, <= MAX_SCALE) that brings ``short_side`` up to about ``target`` px."""
    if short_side <= 0:
        return 1
    return max(1, min(MAX_SCALE, math.floor(target / short_side + 0.5)))


def preprocess(image: Image.Image, target: int = TARGET_SHORT_SIDE, border_fraction: float = BORDER_FRACTION,
               autocontrast: bool = False) -> Image.Image:
    """Grayscale, dark-on-light, upscaled, bordered copy of ``image`` ready for tesseract."""
    if image.mode in ("RGBA", "LA", "P"):
        # Transparent pixels become white, not black.
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    gray = image.convert("L")
    histogram = gray.histogram()
    median = _median_from_histogram(histogram)
    if median < 128:
        gray = ImageOps.invert(gray)
        median = 255 - median
    if autocontrast:
        gray = ImageOps.autocontrast(gray, cutoff=1)
        median = _median_from_histogram(gray.histogram())
    factor = upscale_factor(min(gray.size), target)
    if factor > 1:
        gray = gray.resize((gray.width * factor, gray.height * factor), Image.Resampling.BICUBIC)
    border = max(4, round(border_fraction * min(gray.size)))
    return ImageOps.expand(gray, border=border, fill=median)


def _median_from_histogram(histogram: list[int]) -> int:
    half = sum(histogram) / 2
    running = 0
    for value, count in enumerate(histogram):
        running += count
        if running >= half:
            return value
    return 255


def clean_text(text: str) -> str:
    """Tidy tesseract output: collapse spaces within lines, strip lines, drop empty lines."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _as_image(item: ImageLike) -> Image.Image:
    """The PIL image itself, or the file loaded (GlyphfuseError naming the file when corrupt)."""
    return item if isinstance(item, Image.Image) else load_image(item)


def _tesseract_command(binary: str, source: str, psm: int) -> list[str]:
    return [binary, source, "stdout", "--psm", str(psm), "--dpi", "300", *DICTIONARIES_OFF]


def _child_env() -> dict:
    env = dict(os.environ)
    env["OMP_THREAD_LIMIT"] = "1"  # one core per tesseract process; we parallelise over processes
    return env


def _run(command: list[str], on_page: Callable[[], None] | None = None) -> str:
    """Run tesseract and return its stdout; ``on_page()`` is called whenever a page is finished
    (tesseract ends every page with a form feed and writes it as soon as it is read)."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty stderr cannot block it
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=_child_env())
        output = bytearray()
        while True:
            piece = process.stdout.read1(65536)
            if not piece:
                break
            output += piece
            if on_page is not None:
                for _ in range(piece.count(PAGE_SEPARATOR.encode())):
                    on_page()
        process.stdout.close()
        returncode = process.wait()
        errors.seek(0)
        stderr = errors.read()
    if returncode != 0:
        message = stderr.decode("utf-8", "replace").strip().splitlines()
        raise OcrError(f"tesseract failed on {command[1]}: {message[-1] if message else 'exit status ' + str(returncode)}")
    return output.decode("utf-8", "replace")


def _read_chunk(binary: str, images: Sequence[ImageLike], folder: str, psm: int, target: int, on_page: Callable[[], None] | None = None) -> list[str]:
    """Preprocess ``images`` into ``folder`` and read them with ONE tesseract process over a list file.

    Falls back to one call per image if the form-feed page split does not give one page per image.
    """
    paths = []
    for index, item in enumerate(images):
        path = os.path.join(folder, f"{index:06d}.png")
        preprocess(_as_image(item), target=target).save(path, dpi=(300, 300), compress_level=1)
        paths.append(path)
    list_file = os.path.join(folder, "list.txt")
    Path(list_file).write_text("\n".join(paths) + "\n", encoding="utf-8")
    done = 0

    def page_done() -> None:  # progress: one step per image of this chunk, never more
        nonlocal done
        if on_page is not None and done < len(paths):
            done += 1
            on_page()

    output = _run(_tesseract_command(binary, list_file, psm), page_done)
    pages = output.split(PAGE_SEPARATOR)
    # Tesseract separates the pages (blank ones too) with form feeds, usually one after the last
    # page too: drop the one trailing empty piece.
    if pages and not pages[-1].strip():
        pages = pages[:-1]
    if len(pages) != len(paths):
        pages = [_run(_tesseract_command(binary, path, psm)) for path in paths]
    while done < len(paths) and on_page is not None:
        page_done()  # the last page has no form feed after it
    return [clean_text(page) for page in pages]


def read_images(images: Sequence[ImageLike], processes: int | None = None, psm: int = DEFAULT_PSM,
                target: int = TARGET_SHORT_SIDE, show_progress: bool | None = None) -> list[str]:
    """OCR every image (a PIL image or a file path); returns one cleaned transcript per image, in order.

    The images are split into ``processes`` contiguous chunks (default: the CPU count); each chunk
    is preprocessed and read by its own tesseract process, the chunks side by side (threads that
    wait on subprocesses). A corrupt or missing image file raises :class:`GlyphfuseError` naming
    it; tesseract missing raises :class:`OcrError`. ``show_progress``: a progress bar on stderr,
    advanced as tesseract finishes each page (None: as set by :func:`progress_shown`).
    """
    binary = check_tesseract()
    if not images:
        return []
    images = list(images)
    processes = max(1, min(processes or os.cpu_count() or 1, len(images)))
    chunk_size = math.ceil(len(images) / processes)
    chunks = [images[i:i + chunk_size] for i in range(0, len(images), chunk_size)]
    shown = _SHOW_PROGRESS.get() if show_progress is None else show_progress
    with tempfile.TemporaryDirectory(prefix="glyphfuse-ocr-") as tmp, ProgressBar("OCR", len(images), unit="images", shown=shown) as bar:
        folders = [os.path.join(tmp, f"chunk-{i}") for i in range(len(chunks))]
        for folder in folders:
            os.mkdir(folder)
        if len(chunks) == 1:
            return _read_chunk(binary, chunks[0], folders[0], psm, target, bar.advance)
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:  # bar.advance is thread-safe
            futures = [pool.submit(_read_chunk, binary, chunk, folder, psm, target, bar.advance) for chunk, folder in zip(chunks, folders)]
            return [text for future in futures for text in future.result()]


def read_image(image: ImageLike, psm: int = DEFAULT_PSM) -> str:
    """OCR one image (PIL image or path); see :func:`read_images`."""
    return read_images([image], processes=1, psm=psm)[0]
