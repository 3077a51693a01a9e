"""OCR speed and accuracy ceiling on rendered text (prints figures; not a timed test).

For each canvas size (64, 128, 256 px) renders N images of 1-3 lines of random words in random
fonts (the repo's fonts/ folder, else DejaVu), random sizes and random background lightness
(light text on dark backgrounds half the time), then reports:

* images/s of :func:`glyphfuse.ocr.tesseract.read_images` (list-file batches) with 1 and 2 processes;
* ms/img of the per-image path (one ``pytesseract.image_to_string`` call per image, same
  preprocessing and flags) for comparison;
* the OCR ceiling on clean renders: mean CER, exact and exact_ci;
* with ``--factors 1,2,3,4`` the same accuracy for each fixed upscale factor (how the default
  ``TARGET_SHORT_SIDE`` was chosen).

Usage: python benchmarks/bench_ocr.py [--n 100] [--sizes 64,128,256] [--factors 1,2,3,4]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import pytesseract
from PIL import Image, ImageDraw, ImageFont

from glyphfuse.ocr import tesseract as ocr
from glyphfuse.ocr.metrics import summarize

REPO = Path(__file__).resolve().parents[1]
WORDS = ("the quick brown fox jumps over lazy dog glyph fuse text model write open local read image "
         "paper night river stone cloud apple zero seven market light house green").split()


def font_paths() -> list[Path]:
    fonts = sorted(p for p in (REPO / "fonts").glob("*") if p.suffix.lower() in (".ttf", ".otf"))
    return fonts or sorted(Path("/usr/share/fonts/truetype/dejavu").glob("DejaVuSans*.ttf"))


def random_text(rng: random.Random, max_chars: int) -> str:
    lines = []
    n_lines = rng.randint(1, 3)
    for _ in range(n_lines):
        line = rng.choice(WORDS)
        second = rng.choice(WORDS)
        if rng.random() < 0.5 and len(line) + 1 + len(second) <= max_chars // n_lines + 2:
            line += " " + second
        if rng.random() < 0.3:
            line = line.capitalize()
        if rng.random() < 0.1:
            line += str(rng.randint(0, 99))
        lines.append(line)
    return "\n".join(lines)


def render(text: str, size: int, font: Path, background: int, ink: int, margin: float) -> Image.Image:
    """Centred text, the largest font size that fits inside the margin."""
    image = Image.new("L", (size, size), background)
    draw = ImageDraw.Draw(image)
    room = size * (1 - 2 * margin)
    for font_size in range(size, 4, -1):
        face = ImageFont.truetype(str(font), font_size)
        spacing = font_size // 5
        left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=face, spacing=spacing, align="center")
        if right - left <= room and bottom - top <= room:
            break
    xy = ((size - (right - left)) / 2 - left, (size - (bottom - top)) / 2 - top)
    draw.multiline_text(xy, text, fill=ink, font=face, spacing=spacing, align="center")
    return image


def make_set(n: int, size: int, seed: int) -> tuple[list[Image.Image], list[str]]:
    rng = random.Random(seed)
    fonts = font_paths()
    images, texts = [], []
    for _ in range(n):
        text = random_text(rng, 24 if size <= 64 else 30)
        background = rng.randint(0, 255)
        ink = rng.randint(0, 60) if background > 127 else rng.randint(195, 255)
        images.append(render(text, size, rng.choice(fonts), background, ink, rng.uniform(0.05, 0.25)))
        texts.append(text)
    return images, texts


def accuracy(read: list[str], texts: list[str]) -> str:
    stats = summarize([{"ocr": o, "prompt": p} for o, p in zip(read, texts)])
    return f"CER {stats['cer']:.3f}  exact {stats['exact']:.2f}  exact_ci {stats['exact_ci']:.2f}"


def per_image_pytesseract(images: list[Image.Image]) -> float:
    """ms/img of one pytesseract call per image (same preprocessing and flags)."""
    config = f"--psm {ocr.DEFAULT_PSM} " + " ".join(ocr.DICTIONARIES_OFF)
    start = time.perf_counter()
    for image in images:
        pytesseract.image_to_string(ocr.preprocess(image), config=config)
    return (time.perf_counter() - start) / len(images) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="images per size")
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--factors", default="", help="also sweep these fixed upscale factors, e.g. 1,2,3,4")
    parser.add_argument("--pytesseract-n", type=int, default=20, help="images timed on the per-image path")
    args = parser.parse_args()
    ocr.check_tesseract()
    print(f"fonts: {len(font_paths())}  images per size: {args.n}")
    for size in (int(s) for s in args.sizes.split(",")):
        images, texts = make_set(args.n, size, seed=size)
        ocr.read_images(images[:4], processes=1)  # warm the file cache
        rates = {}
        for processes in (1, 2):
            start = time.perf_counter()
            read = ocr.read_images(images, processes=processes)
            rates[processes] = len(images) / (time.perf_counter() - start)
        per_image_ms = per_image_pytesseract(images[:args.pytesseract_n])
        print(f"{size:4d} px  x{ocr.upscale_factor(size)}  1 proc {rates[1]:6.1f} img/s  2 proc {rates[2]:6.1f} img/s "
              f"(x{rates[2] / rates[1]:.2f})  list-file {1000 / rates[1]:.0f} ms/img vs pytesseract per-image "
              f"{per_image_ms:.0f} ms/img  | ceiling {accuracy(read, texts)}")
        for factor in (int(f) for f in args.factors.split(",") if f):
            read = ocr.read_images(images, processes=2, target=size * factor)
            print(f"      factor x{factor}: {accuracy(read, texts)}")


if __name__ == "__main__":
    main()
