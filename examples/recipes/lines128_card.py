"""Write the model card of the packaged lines128 -> lines256 cascade from the recipe's eval reports.

    python examples/recipes/lines128_card.py WORK_DIR OUT_CARD_JSON --base-images TEXT --sr-images TEXT --status TEXT [--bench-sr FILE]

WORK_DIR is the recipe's work folder after `lines128.sh eval` ran twice (without and with
EVAL_SR): eval_SET.json (the 128 px base alone), eval_SET_sr.json (the cascade, 256 px),
ceiling256_SET.json (tesseract on real 256 px renderings) and eval_original_c8_sr.json. Every
score in the card is copied from those reports; nothing is typed in by hand. With --bench-sr (the
--json of benchmarks/bench_sr.py on the same exports) the card also shows what the SR adds: exact
and edge sharpness of the same base samples resized bicubically and upsampled by the SR model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glyphfuse.data.transcripts import CHARSETS, SIGN_PUNCTUATION

SETS = {
    "cased": "held-out single words, 3-10 letters, in three casings",
    "signs": "held-out signs of 2-5 lines: capitals, digits, punctuation",
    "alnum": "held-out random letter-and-digit strings, 3-8 characters",
    "readme": "the README's example, 4 seeds (not held out)",
    "original": "the original system's 5-line test prompt, 4 seeds (not held out)",
}


def read_report(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def model_row(report: dict, label: str, stage: str, *, cascade: bool) -> dict:
    settings, summary = report["settings"], report["model"]["summary"]
    steps = f"{settings['sampler']} {settings['steps']} (default)"
    if cascade:  # where its SR chain started
        steps += f", SR from {settings['sr_start']:g} of the noise"
    return {"prompts": label, "stage": stage, "n": settings["n"], "candidates": settings["candidates"],
            "steps": steps, "image_size": settings["image_size"],
            "cer": round(summary["cer"], 3), "exact": round(summary["exact"], 3), "exact_ci": round(summary["exact_ci"], 3)}


def sr_effect_rows(bench: dict) -> list[str]:
    """bench_sr.py's figures, a line per prompt set: the same base samples resized bicubically and
    upsampled by the SR model from each start, as exact / edge sharpness."""
    rows = []
    for name, figures in bench.items():
        ways = [way for way in figures if way == "bicubic" or way.startswith("sr@")]
        cells = ", ".join(f"{way} {figures[way]['exact']:.3f} / {figures[way]['sharpness']:.3f}" for way in ways)
        rows.append(f"{name} ({figures['n']} prompts), exact / edge sharpness: {cells}")
    return rows


def ceiling_row(report: dict, name: str) -> dict:
    summary = report["ground_truth"]["summary"]
    return {"prompts": f"OCR ceiling: {name} rendered at 256 px by the lines128 data recipe", "stage": "real renderings",
            "n": summary["n"], "candidates": 1, "steps": "-", "image_size": 256,
            "cer": round(summary["cer"], 3), "exact": round(summary["exact"], 3), "exact_ci": round(summary["exact_ci"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--base-images", required=True, help="what the base training was, one line")
    parser.add_argument("--sr-images", required=True, help="what the SR training was, one line")
    parser.add_argument("--status", required=True, help="one line: which bars the cascade meets and which it does not")
    parser.add_argument("--bench-sr", type=Path, help="benchmarks/bench_sr.py --json output on the same exports")
    args = parser.parse_args()

    scores = []
    for name, label in SETS.items():
        scores.append(model_row(read_report(args.work / f"eval_{name}_sr.json"), f"{name}: {label}", "cascade, 256 px", cascade=True))
        scores.append(model_row(read_report(args.work / f"eval_{name}.json"), f"{name}: {label}", "base alone, 128 px (--no-sr)", cascade=False))
        scores.append(ceiling_row(read_report(args.work / f"ceiling256_{name}.json"), name))
    scores.append(model_row(read_report(args.work / "eval_original_c8_sr.json"), "original, best of 8 candidates by OCR", "cascade, 256 px", cascade=True))

    card = {
        "name": "lines128-cascade-cpu",
        "preset": "lines128",
        "sr_preset": "lines256",
        "domain": {
            "summary": "1-5 lines of at most 16 characters: letters in any case, digits, spaces and the sign punctuation "
                       + SIGN_PUNCTUATION + "; written as dark monospaced text (DejaVu Sans Mono Bold) left-aligned on a light "
                       "background; a 128 px base sample upsampled to 256x256 grayscale",
            "characters": CHARSETS["ascii"] + " ",
            "max_lines": 5,
            "max_chars_per_line": 16,
            "canvas": "256x256 grayscale (base 128x128)",
        },
        "recipe": "examples/recipes/lines128.sh",
        "data": "synth-fonts --recipe lines128: 150,000 images at 128 px (base) and 60,000 at 256 px (SR); words in three "
                "casings, sign numbers, punctuation, 35 % random letter-and-digit strings; no held-out token",
        "training": [f"base: {args.base_images}", f"SR: {args.sr_images}"],
        "status": args.status,
        "scores": scores,
    }
    if args.bench_sr is not None:
        card["sr_effect"] = sr_effect_rows(read_report(args.bench_sr))
    args.out.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(scores)} scores)")


if __name__ == "__main__":
    main()
