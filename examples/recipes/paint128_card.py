"""Write the model card of the packaged colour painter (paint128) from the recipe's reports.

    python examples/recipes/paint128_card.py WORK_DIR OUT_CARD_JSON --training TEXT --status TEXT

WORK_DIR is the recipe's work folder after `paint128.sh eval` and `paint128.sh controls` ran:
paint_SET_GLYPHS.json (`glyphfuse eval --colour`, SET cased or signs, GLYPHS model or typeset),
paint_cased_model_c4.json (best of 4 grey candidates) and paint_controls.json
(benchmarks/bench_controls.py --json). Every score in the card is copied from those reports; nothing
is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = {
    "cased": "held-out single words, 3-10 letters, in three casings",
    "signs": "held-out signs of 2-5 lines: capitals, digits, punctuation",
}
GLYPHS = {
    "model": "the packaged grey model writes the glyphs",
    "typeset": "the font renderer typesets the glyphs (--glyphs typeset)",
}
REPORTS = [("cased", "model", ""), ("cased", "model", "_c4"), ("signs", "model", ""), ("cased", "typeset", ""), ("signs", "typeset", "")]


def read_report(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def score_row(report: dict, name: str, glyphs: str) -> dict:
    settings, model = report["settings"], report["model"]
    by_kind = {kind: round(figures["exact"], 3) for kind, figures in model.get("by_kind", {}).items()}
    return {"prompts": f"{name}: {SETS[name]}", "glyphs": GLYPHS[glyphs], "n": settings["n"], "candidates": settings["candidates"],
            "steps": f"{settings['sampler']} {settings['steps']} (default), ink anchoring {'on' if settings.get('anchor_ink', True) else 'off'}",
            "image_size": settings["image_size"], "cer": round(model["summary"]["cer"], 3), "exact": round(model["summary"]["exact"], 3),
            "exact_by_kind": by_kind}


def controls_rows(controls: dict) -> list[str]:
    rows = []
    for control in ("text_color", "background_color"):
        figures = controls[control]
        rows.append(f"--{control.replace('_', '-')}: drawn within ΔE 15 of the request in {figures['within_15']:.0%} of "
                    f"{figures['samples']} samples, median ΔE {figures['median_delta_e']:.1f} (benchmarks/bench_controls.py)")
    return rows


def build_card(work: Path, training: str, status: str) -> dict:
    scores = [score_row(read_report(work / f"paint_{name}_{glyphs}{suffix}.json"), name, glyphs) for name, glyphs, suffix in REPORTS]
    return {
        "name": "paint128-cpu",
        "preset": "paint128",
        "domain": {
            "summary": "the grey model's domain (1-5 lines of at most 16 characters, DejaVu Sans Mono Bold at fixed places) "
                       "painted into a 128x128 RGB picture of one of six kinds: plain, gradient, sign, caption, paper, screen",
            "canvas": "128x128 RGB",
        },
        "recipe": "examples/recipes/paint128.sh",
        "training": [training],
        "status": status,
        "scores": scores,
        "controls": controls_rows(read_report(work / "paint_controls.json")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--training", required=True)
    parser.add_argument("--status", required=True)
    args = parser.parse_args()
    card = build_card(args.work, args.training, args.status)
    args.out.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
