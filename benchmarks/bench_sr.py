"""What the super-resolution stage adds: legibility and sharpness before and after SR.

    python benchmarks/bench_sr.py [--checkpoint BASE --sr-checkpoint SR] [--prompts cased signs] \
        [--truth cased=work/lines128/truth256_cased ...]

Without checkpoints it measures the committed lines128 exports (base stage 2, SR stage 2).

For every prompt the base model draws one sample (seed 0 + index, the default sampler) and the
same 128 px image is shown three ways:

* ``base``: the base sample as it is (what `glyphfuse eval --no-sr` reads);
* ``bicubic``: that sample resized to the SR size with bicubic interpolation (the free upscale);
* ``sr@F``: that sample upsampled by the SR model, its chain started from the bicubic upsample
  noised to the fraction F of the timesteps (``--sr-start``, several allowed; 1 = from pure
  noise). The default F is what the cascade writes.

Figures per set and way: OCR exact and CER (tesseract, the project's reader), and edge
sharpness = the 99.5th percentile of the Sobel gradient magnitude over the image's intensity range
(max - min: text covers only a few per cent of the pixels), measured at the SR size (the base sample is resized there first, so every figure is
on the same pixel grid). A crisp 1-px edge gives about 1; a blurred one less. ``base`` and
``bicubic`` read the same, as the OCR's own preprocessing upscales a 128 px image bicubically
to about 192 px anyway; the row is there to show it. With
``--truth SET=FOLDER`` (real renderings of the set at the SR size, `synth-fonts --text-file`) the
same sharpness of real text is printed as the reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from glyphfuse.core.images import tensor_to_pil
from glyphfuse.data.prompts import load_prompts
from glyphfuse.ocr.metrics import cer, exact
from glyphfuse.ocr.tesseract import read_images
from glyphfuse.sampling.generation import generate
from glyphfuse.sampling.pipeline import load_models
from glyphfuse.sampling.settings import DEFAULT_SR_START, SamplingSettings
from glyphfuse.sampling.sr import upsample_with_sr

EXPORTS = Path(__file__).resolve().parents[1] / "exports"
DEFAULT_BASE = EXPORTS / "lines128-base2-step_4000"
DEFAULT_SR = EXPORTS / "lines256-sr2-step_1800"


def edge_sharpness(image: Image.Image) -> float:
    """99.5th percentile of |Sobel gradient| over (max - min) of the intensities; 0 for a flat image."""
    pixels = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    padded = np.pad(pixels, 1, mode="edge")
    gx = (padded[:-2, 2:] + 2 * padded[1:-1, 2:] + padded[2:, 2:]) - (padded[:-2, :-2] + 2 * padded[1:-1, :-2] + padded[2:, :-2])
    gy = (padded[2:, :-2] + 2 * padded[2:, 1:-1] + padded[2:, 2:]) - (padded[:-2, :-2] + 2 * padded[:-2, 1:-1] + padded[:-2, 2:])
    magnitude = np.hypot(gx, gy) / 4.0  # a unit step edge gives 1
    spread = pixels.max() - pixels.min()
    return float(np.percentile(magnitude, 99.5) / spread) if spread > 1e-3 else 0.0


def score(images: list[Image.Image], prompts: list[str], size: int) -> dict:
    texts = read_images(images)
    resized = [im if im.size == (size, size) else im.resize((size, size), Image.BICUBIC) for im in images]
    return {
        "exact": float(np.mean([exact(t, p) for t, p in zip(texts, prompts)])),
        "cer": float(np.mean([cer(t, p) for t, p in zip(texts, prompts)])),
        "sharpness": float(np.median([edge_sharpness(im) for im in resized])),
    }


def truth_sharpness(folder: Path) -> float:
    files = sorted(folder.glob("*.png"))
    return float(np.median([edge_sharpness(Image.open(f)) for f in files]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_BASE, help="base checkpoint folder (default: the lines128 export)")
    parser.add_argument("--sr-checkpoint", type=Path, default=DEFAULT_SR, help="SR checkpoint folder (default: the lines256 export)")
    parser.add_argument("--prompts", nargs="+", default=["cased"], help="prompt sets or files")
    parser.add_argument("--truth", nargs="*", default=[], help="SET=FOLDER of real renderings at the SR size")
    parser.add_argument("--sr-start", type=float, nargs="+", default=[DEFAULT_SR_START], help=f"where the SR chain starts (default {DEFAULT_SR_START})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    models = load_models(args.checkpoint, args.sr_checkpoint, device="cpu")
    settings = SamplingSettings(seed=args.seed)
    size = models["sr_config"].image_size
    truths = dict(item.split("=", 1) for item in args.truth)
    report = {}
    for name in args.prompts:
        prompts, _ = load_prompts(name)
        start = time.perf_counter()
        low = generate(models["base_model"], models["base_config"], prompts, settings)  # (B, C, 128, 128)
        base_seconds = time.perf_counter() - start
        base_images = [tensor_to_pil(image) for image in low]
        ways = {
            "base": score(base_images, prompts, size),
            "bicubic": score([im.resize((size, size), Image.BICUBIC) for im in base_images], prompts, size),
        }
        sr_seconds = {}
        for sr_start in args.sr_start:
            start = time.perf_counter()
            high = upsample_with_sr(models["sr_model"], models["sr_config"], prompts, low, settings, start=sr_start)  # (B, C, 256, 256)
            sr_seconds[f"sr@{sr_start:g}"] = (time.perf_counter() - start) / len(prompts)
            ways[f"sr@{sr_start:g}"] = score([tensor_to_pil(image) for image in high], prompts, size)
        if name in truths:
            ways["real"] = {"sharpness": truth_sharpness(Path(truths[name]))}
        report[name] = {"n": len(prompts), "base_s_per_image": base_seconds / len(prompts),
                        "sr_s_per_image": sr_seconds, **ways}
        for way, figures in ways.items():
            cells = "  ".join(f"{key} {value:.3f}" for key, value in figures.items())
            print(f"{name:<10} n={len(prompts):<4} {way:<8} {cells}")
        print(f"{name:<10} seconds per image: base {base_seconds / len(prompts):.2f}, " + ", ".join(f"{way} {value:.2f}" for way, value in sr_seconds.items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
