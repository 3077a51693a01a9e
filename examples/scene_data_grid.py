"""The README's picture of the scene kinds: the same prompts rendered by the data renderer in every kind.

    python examples/scene_data_grid.py [--out examples/scene_kinds_data.png]

Columns: plain, gradient, sign, caption, paper, screen; rows: the prompts. These are training images
(synth-fonts --recipe scenes128), what the colour model learns to draw.
"""

from __future__ import annotations

import argparse

from glyphfuse.data.render import SynthSource, render_example
from glyphfuse.data.scenes import BackgroundBank
from glyphfuse.data.synth import style_fonts, get_data_recipe, load_words
from glyphfuse.core.controls import SCENE_KINDS
from glyphfuse.core.images import make_grid

PROMPTS = ("SALE\n50% OFF", "the\nwhat string", "Open 7am-11pm\nTAQUERIA")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="examples/scene_kinds_data.png")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    bank = BackgroundBank.scan()
    images = []
    for row, prompt in enumerate(PROMPTS):
        for kind in SCENE_KINDS:
            style = get_data_recipe("scenes128").replace(scene_kinds=(kind,))
            source = SynthSource(size=128, seed=args.seed, color=True, font_paths=style_fonts(None, style), texts=[prompt],
                                 words=load_words(), style=style, backgrounds=bank)
            images.append(render_example(source, row).image)  # image `row`: another scene each row
    make_grid(images, columns=len(SCENE_KINDS)).save(args.out)
    print(f"wrote {args.out} (columns: {', '.join(SCENE_KINDS)})")


if __name__ == "__main__":
    main()
