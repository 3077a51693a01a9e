"""Transcripts that drill the letters the lines128 base confused: q written as g, b as h.

    python examples/recipes/confusables_text.py work/lines128/confusables.txt --count 40000 --seed 11

One transcript a line (a literal \\n is a line break), in the lines128 layout's limits: 1-5 lines
of at most 16 characters, 1-3 tokens a line. Half the tokens are training words (never a held-out
one) that contain a focus letter, in three casings; half are random lowercase strings in which q,
g, b and h are drawn 6 times and p, d, l and y 3 times as often as the other letters. No transcript
holds a held-out token (glyphfuse.data.transcripts.is_held_out), so eval still measures words the
model never saw. `synth-fonts --recipe lines128 --text-file` draws them in the recipe's layout.
"""

from __future__ import annotations

import argparse
import random
import string
from pathlib import Path

from glyphfuse.data.synth import load_words
from glyphfuse.data.transcripts import held_out_tokens, is_held_out, token_key

STRONG, MILD = "qgbh", "pdly"  # the confused letters, and their near neighbours
MAX_LINE_CHARS = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=40000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    held_out = held_out_tokens()
    words = [word for word in load_words() if token_key(word) not in held_out]
    with_qb = [word for word in words if any(char in word for char in "qb")]
    with_focus = [word for word in words if any(char in word for char in STRONG + MILD)]
    letters = list(string.ascii_lowercase)
    weights = [6 if char in STRONG else 3 if char in MILD else 1 for char in letters]

    def token() -> str:
        if rng.random() < 0.5:
            return "".join(rng.choices(letters, weights, k=rng.randint(2, 7)))
        word = rng.choice(with_qb if rng.random() < 0.6 else with_focus)
        roll = rng.random()
        return word.upper() if roll < 0.15 else word.title() if roll < 0.35 else word

    def line() -> str:
        for _ in range(50):
            text = " ".join(token() for _ in range(rng.randint(1, 3)))
            if len(text) <= MAX_LINE_CHARS:
                return text
        return "".join(rng.choices(letters, weights, k=5))

    transcripts = []
    while len(transcripts) < args.count:
        lines = [line() for _ in range(rng.choices((1, 2, 3, 4, 5), (25, 30, 20, 15, 10))[0])]
        if not is_held_out(lines):
            transcripts.append("\\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(transcripts) + "\n", encoding="utf-8")
    print(f"wrote {len(transcripts)} transcripts to {args.out}")


if __name__ == "__main__":
    main()
