"""The sample grid of the packaged default model shown in the README (examples/default_model.png).

    python examples/default_model_grid.py [--out examples/default_model.png]

Top row: one sample per held-out prompt (seed 0, no rejection): the first words, two-line prompts
and random strings of the packaged held-out sets. Bottom row: the OCR-best of 8 candidates (seeds
0-7). Enlarged 3x (nearest neighbour) so the pixels are visible. Prints what tesseract reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from glyphfuse.core.images import make_grid
from glyphfuse.evaluate import load_prompts
from glyphfuse.sampling.pipeline import load_models, sample_many

ZOOM = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "default_model.png")
    parser.add_argument("--prompts", nargs="+", default=["words", "lines2", "strings"], help="prompt sets or files (default: words lines2 strings)")
    parser.add_argument("--count", type=int, default=3, help="prompts taken from each set")
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
    grid = grid.resize((grid.width * ZOOM, grid.height * ZOOM), Image.NEAREST)
    grid.save(args.out)
    print(f"wrote {args.out} ({' | '.join(prompts)})")


if __name__ == "__main__":
    main()
