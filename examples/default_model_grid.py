"""The sample grid of the packaged default model shown in the README (examples/default_model.png).

    python examples/default_model_grid.py [--out examples/default_model.png]

Top row: one sample per prompt (seed 0, no rejection) through the packaged cascade (128 px base,
then the 256 px SR): the README's example, the original system's 5-line test prompt, and the
first held-out signs and words. Bottom row: the OCR-best of 8 candidates (seeds 0-7). Prints what
tesseract reads. ``--zoom 3`` enlarges a small model's pictures (nearest neighbour).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from glyphfuse.core.images import make_grid
from glyphfuse.evaluate import load_prompts
from glyphfuse.sampling.pipeline import load_models, sample_many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "default_model.png")
    parser.add_argument("--prompts", nargs="+", default=["readme", "original", "signs", "cased"], help="prompt sets or files (default: readme original signs cased)")
    parser.add_argument("--count", type=int, default=2, help="prompts taken from each set (default 2)")
    parser.add_argument("--zoom", type=int, default=1, help="enlarge the grid this many times (default 1)")
    args = parser.parse_args()
    prompts = [prompt for source in args.prompts for prompt in load_prompts(source)[0][: args.count]]
    models = load_models(device="cpu")
    rows = []
    for candidates in (1, 8):
        results = sample_many(prompts, **models, candidates=candidates, seed=0, ocr=True)
        rows.append(results)
        reads = ", ".join(f"{p!r}->{r.ocr_text!r}" for p, r in zip(prompts, results))
        print(f"best of {candidates}: {reads}")
    pictures = [result.image for row in rows for result in row]
    grid = make_grid(pictures, columns=len(prompts))
    grid = grid.resize((grid.width * args.zoom, grid.height * args.zoom), Image.NEAREST)
    grid.save(args.out)
    print(f"wrote {args.out}: {len(prompts)} prompts x 2 rows")


if __name__ == "__main__":
    main()
