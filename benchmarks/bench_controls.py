"""Does a colour model draw what its controls ask? Text and background colour in CIELAB, and a grid
of every scene kind.

    python benchmarks/bench_controls.py --checkpoint CKPT [--json out.json] [--grid kinds.png]

Colour: for each requested text colour (names and #RRGGBB spread over the hues and lightnesses)
and each prompt, one sample (default sampler, a random kind: the colour must hold in every kind).
Where the ink is, is known without looking at the sample: the model writes lines128's fixed layout,
so the prompt rendered by the data renderer gives the ink mask (a painter is given that ink as its
glyphs, typeset). The median colour of the sample under
the mask's full-ink pixels is the drawn text colour; its CIE76 distance ΔE to the request (CIELAB,
D65) is the figure. The bar of issue "Colour scenes": ΔE <= 15 in >= 90 % of samples. The same
for --background-color, measured on the ring just outside the ink.

Grid: one prompt drawn in every kind (columns) under several seeds (rows).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from glyphfuse.core.controls import SceneControls, parse_color
from glyphfuse.core.images import make_grid, tensor_to_pil
from glyphfuse.data.scenes import dilate
from glyphfuse.data.synth import FRAME_RECIPE, recipe_glyphs
from glyphfuse.sampling.generation import generate, load_model
from glyphfuse.sampling.glyphs import typeset_glyphs

TEXT_COLORS = ("white", "black", "red", "yellow", "navy", "green", "orange", "purple", "#00a0a0", "pink")
BACKGROUND_COLORS = ("white", "black", "red", "navy", "gold", "#2e8b57", "cream", "skyblue")
PROMPTS = ("OPEN", "the\nwhat string", "SALE\n50% OFF")


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB 0..255 -> CIELAB (D65)."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e(a, b) -> float:
    return float(np.linalg.norm(srgb_to_lab(a) - srgb_to_lab(b)))


def ink_mask(prompt: str, size: int) -> np.ndarray:
    """(size, size) bool: where the scenes128 layout puts full ink for ``prompt``."""
    return recipe_glyphs(FRAME_RECIPE, size)(prompt) > 0.5


def glyph_inputs(config, prompts: list[str]) -> dict:
    """A painter's glyphs (the prompts typeset: the controls are measured, not the spelling); none for other models."""
    return {"glyphs": typeset_glyphs(prompts, config.image_size)} if config.glyphs else {}


def measure(model, config, requests, key: str, steps: int, seed: int) -> list[dict]:
    rows = []
    for r, request in enumerate(requests):
        for p, prompt in enumerate(PROMPTS):
            sample_seed = seed + 100 * r + p
            image = generate(model, config, [prompt], steps=steps, seed=sample_seed, **{key: request}, **glyph_inputs(config, [prompt]))[0]
            pixels = np.asarray(tensor_to_pil(image), np.float64)
            ink = ink_mask(prompt, config.image_size)
            region = ink if key == "text_color" else (dilate(ink.astype(np.uint8) * 255, 3) > 0) & ~(dilate(ink.astype(np.uint8) * 255, 1) > 0)
            drawn = np.median(pixels[region], axis=0)
            rows.append({"request": request, "prompt": prompt, "seed": sample_seed, "drawn": [round(v) for v in drawn],
                         "delta_e": delta_e(drawn, parse_color(request))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--grid", type=Path, help="write the kinds grid here")
    parser.add_argument("--grid-prompt", default="SALE\n50% OFF")
    args = parser.parse_args()
    model, config = load_model(args.checkpoint, "cpu")
    report = {"checkpoint": args.checkpoint, "steps": args.steps}
    for key, requests in (("text_color", TEXT_COLORS), ("background_color", BACKGROUND_COLORS)):
        rows = measure(model, config, requests, key, args.steps, args.seed)
        within = float(np.mean([row["delta_e"] <= 15 for row in rows]))
        median = float(np.median([row["delta_e"] for row in rows]))
        report[key] = {"samples": len(rows), "within_15": within, "median_delta_e": median, "rows": rows}
        print(f"{key}: {len(rows)} samples, ΔE <= 15 in {within:.0%}, median ΔE {median:.1f}")
        for request in requests:
            mine = [row["delta_e"] for row in rows if row["request"] == request]
            print(f"  {request:10s} median ΔE {np.median(mine):5.1f}")
    if args.grid is not None:
        columns = []
        for s in range(3):
            images = generate(model, config, [args.grid_prompt] * len(config.scene_kinds), steps=args.steps, seed=args.seed + s,
                              controls=[SceneControls(kind) for kind in config.scene_kinds],
                              **glyph_inputs(config, [args.grid_prompt] * len(config.scene_kinds)))
            columns.extend(tensor_to_pil(image) for image in images)
        make_grid(columns, columns=len(config.scene_kinds)).save(args.grid)
        print(f"wrote {args.grid} (columns: {', '.join(config.scene_kinds)}; rows: seeds {args.seed}..{args.seed + 2})")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
