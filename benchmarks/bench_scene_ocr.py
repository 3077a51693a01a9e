"""Which OCR reads colour scenes: tesseract, tesseract with colour preprocessing, or RapidOCR.

    python benchmarks/bench_scene_ocr.py FOLDER [FOLDER ...]

FOLDER: real renderings with scene metadata (``synth-fonts --recipe scenes128 --text-file ...``,
e.g. ``examples/recipes/scenes128.sh truth``). Per scene kind, exact reads of:

* ``tesseract``: glyphfuse's tesseract preprocessing (grey, dark on light, upscaled);
* ``tesseract best of 4``: the grey picture, and stroke maps of dark and of light strokes (a 5 px
  morphological top-hat, which drops smooth backgrounds), each read by tesseract; the read with the
  highest mean word confidence wins, and words under confidence 50 are dropped;
* ``scene reader``: glyphfuse.ocr.scene_text (RapidOCR's text-line detector and recogniser), what
  glyphfuse.ocr.reader uses for colour pictures;
and the milliseconds a picture of each engine. This is the measurement behind reading colour
scenes with RapidOCR (issue "Colour scenes": a kind whose ceiling is under 0.9 needs better reading).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image, ImageFilter

from glyphfuse.data.imagefolder import scan_image_folder
from glyphfuse.ocr import scene_text, tesseract
from glyphfuse.ocr.metrics import cer, exact


def stroke_map(gray: Image.Image, dark: bool, size: int = 5) -> Image.Image:
    """Dark-on-white map of the thin strokes (dark or light ones) of ``gray``: a top-hat transform."""
    if dark:  # a closing fills dark thin strokes: what remains is the background
        background = gray.filter(ImageFilter.MaxFilter(size)).filter(ImageFilter.MinFilter(size))
        ink = np.asarray(background, np.int16) - np.asarray(gray, np.int16)
    else:
        background = gray.filter(ImageFilter.MinFilter(size)).filter(ImageFilter.MaxFilter(size))
        ink = np.asarray(gray, np.int16) - np.asarray(background, np.int16)
    ink = np.clip(ink, 0, None).astype(np.float32)
    top = float(np.percentile(ink, 99.5)) or 1.0
    return Image.fromarray((255 - np.clip(ink / top * 255, 0, 255)).astype(np.uint8))


def tesseract_words(paths: list[str]) -> list[list[tuple[tuple, float, str]]]:
    """Per picture: (line key, confidence, word) of tesseract's TSV output, one process for all."""
    with tempfile.TemporaryDirectory() as folder:
        list_file = os.path.join(folder, "list.txt")
        with open(list_file, "w") as handle:
            handle.write("\n".join(paths) + "\n")
        command = ["tesseract", list_file, "stdout", "--psm", "6", "--dpi", "300", *tesseract.DICTIONARIES_OFF, "tsv"]
        output = subprocess.run(command, capture_output=True, check=True).stdout.decode("utf-8", "replace")
    pages = collections.defaultdict(list)
    for line in output.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) >= 12 and fields[0] == "5" and fields[11].strip():
            pages[int(fields[1])].append(((fields[2], fields[3], fields[4]), float(fields[10]), fields[11]))
    return [pages.get(i + 1, []) for i in range(len(paths))]


def words_text(words, min_confidence: float = 0.0) -> str:
    lines = collections.OrderedDict()
    for key, confidence, word in words:
        if confidence >= min_confidence:
            lines.setdefault(key, []).append(word)
    return "\n".join(" ".join(line) for line in lines.values())


def mean_confidence(words) -> float:
    chars = sum(len(word) for _, _, word in words)
    return sum(confidence * len(word) for _, confidence, word in words) / chars if chars else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--limit", type=int, default=None, help="read at most this many pictures a folder")
    args = parser.parse_args()
    for folder in args.folders:
        examples, _ = scan_image_folder(folder)
        examples = [e for e in examples if e.controls is not None][: args.limit]
        pictures = [Image.open(e.image_path).convert("RGB") for e in examples]
        started = time.perf_counter()
        plain = tesseract.read_images(pictures)
        plain_ms = (time.perf_counter() - started) / len(pictures) * 1000
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            variants = {"grey": [], "dark": [], "light": []}
            for i, picture in enumerate(pictures):
                gray = picture.convert("L")
                for name, image in (("grey", picture), ("dark", stroke_map(gray, True)), ("light", stroke_map(gray, False))):
                    path = os.path.join(tmp, f"{i:05d}_{name}.png")
                    tesseract.preprocess(image).save(path, dpi=(300, 300))
                    variants[name].append(path)
            reads = {name: tesseract_words(paths) for name, paths in variants.items()}
        best = [words_text(max((reads[name][i] for name in reads), key=mean_confidence), 50) for i in range(len(pictures))]
        best_ms = (time.perf_counter() - started) / len(pictures) * 1000
        started = time.perf_counter()
        scene = scene_text.read_scene_images(pictures)
        scene_ms = (time.perf_counter() - started) / len(pictures) * 1000
        rows = collections.defaultdict(lambda: collections.defaultdict(list))
        for e, a, b, c in zip(examples, plain, best, scene):
            for name, text in (("tesseract", a), ("tesseract best of 4", b), ("scene reader", c)):
                rows[e.controls.kind][name].append((exact(text, e.text), cer(text, e.text)))
        print(f"\n{folder}: {len(examples)} pictures; exact / CER by kind")
        names = ("tesseract", "tesseract best of 4", "scene reader")
        print(f"{'kind':10s}" + "".join(f"{name:>24s}" for name in names))
        for kind, by_name in sorted(rows.items()):
            print(f"{kind:10s}" + "".join(f"{np.mean([x for x, _ in by_name[n]]):16.2f} / {np.mean([y for _, y in by_name[n]]):5.3f}" for n in names)
                  + f"   (n={len(by_name[names[0]])})")
        print(f"{'ms/picture':10s}{plain_ms:24.0f}{best_ms:24.0f}{scene_ms:24.0f}")


if __name__ == "__main__":
    main()
