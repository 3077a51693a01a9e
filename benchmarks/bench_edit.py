"""How well ``glyphfuse edit`` writes into photos it never saw: the bars of issue "glyphfuse edit".

For every held-out photo of benchmarks/edit_photos (boxes.json gives a one-word box and a two-line
box each), held-out words (cased.txt) go into the word box and held-out two-line prompts (lines2.txt) into
the other.
OCR reads the box of the output. Printed per prompt set and candidate count:

* exact: OCR of the box equals the prompt (glyphfuse.ocr.metrics.exact), and the mean CER;
* outside: the largest difference of any pixel outside the box from the input (must be 0);
* seam: the mean |step| between each box-border pixel and its outside neighbour, over the same
  for neighbouring pixel pairs just outside the box (the picture's own texture there): ~1 = no
  visible edge, much more = a seam; step and own: those two means in levels of 0..255 (on a
  smooth sky a step of 1-2 levels reads as a large ratio and is still invisible);
* seconds: median time of one edit (candidates drawn, blended and read; the model is loaded once).

    python benchmarks/bench_edit.py --checkpoint ckpt/inpaint128 --candidates 1 4 --json edit.json
    python benchmarks/bench_edit.py --checkpoint ckpt/scenes128-base --method repaint   # the training-free baseline
    python benchmarks/bench_edit.py --checkpoint exports/paint128 --glyphs typeset                # a painter, its glyphs typeset
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from glyphfuse.core.images import make_grid  # noqa: E402
from glyphfuse.data.prompts import load_prompt_file  # noqa: E402
from glyphfuse.editing import edit_picture, load_edit_model, open_picture  # noqa: E402
from glyphfuse.ocr.metrics import cer, exact  # noqa: E402

PROMPTS = REPO / "glyphfuse" / "resources" / "prompts"


def seam_ratio(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean |after[border] - after[just outside]| over mean |before| steps one pixel further out."""
    across, own = seam_steps(before, after, box)
    return across / max(own, 1e-3)  # nan when the box touches every edge


def seam_steps(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> tuple[float, float]:
    """(mean |step| across the box border in the output, mean |step| of the input one pixel further
    out), in levels of 0..255 over every channel."""
    x, y, w, h = box
    a = after.astype(np.float32).reshape(after.shape[0], after.shape[1], -1)
    b = before.astype(np.float32).reshape(before.shape[0], before.shape[1], -1)
    height, width = a.shape[:2]
    across, own = [], []
    if x >= 2:  # left edge: border column x vs x-1; the picture's own step x-1 vs x-2
        across.append(np.abs(a[y:y + h, x] - a[y:y + h, x - 1]).mean())
        own.append(np.abs(b[y:y + h, x - 1] - b[y:y + h, x - 2]).mean())
    if x + w + 1 < width:
        across.append(np.abs(a[y:y + h, x + w - 1] - a[y:y + h, x + w]).mean())
        own.append(np.abs(b[y:y + h, x + w] - b[y:y + h, x + w + 1]).mean())
    if y >= 2:
        across.append(np.abs(a[y, x:x + w] - a[y - 1, x:x + w]).mean())
        own.append(np.abs(b[y - 1, x:x + w] - b[y - 2, x:x + w]).mean())
    if y + h + 1 < height:
        across.append(np.abs(a[y + h - 1, x:x + w] - a[y + h, x:x + w]).mean())
        own.append(np.abs(b[y + h, x:x + w] - b[y + h + 1, x:x + w]).mean())
    return (float(np.mean(across)), float(np.mean(own))) if across else (float("nan"), float("nan"))


def outside_difference(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> int:
    x, y, w, h = box
    keep = np.ones(before.shape[:2], bool)
    keep[y:y + h, x:x + w] = False
    return int(np.abs(before.astype(np.int64) - after.astype(np.int64))[keep].max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="an inpainting checkpoint, or a colour base model with --method repaint")
    parser.add_argument("--method", default="auto", choices=("auto", "model", "repaint"))
    parser.add_argument("--resample", type=int, default=1, help="repaint rounds a step")
    parser.add_argument("--glyphs", default="model", choices=("model", "typeset"), help="a painter's glyphs: the packaged grey model's or typeset")
    parser.add_argument("--compose", default="layers", choices=("layers", "canvas"),
                        help="layers: seamless background + sharp ink (default); canvas: the drawing as it is, feathered in (0.9.0)")
    parser.add_argument("--panel", type=float, default=0.0, help="compose layers: how much of the painter's own background shows (0..1)")
    parser.add_argument("--photos", type=Path, default=REPO / "benchmarks" / "edit_photos")
    parser.add_argument("--words", type=int, default=24, help="held-out words (cased.txt), one per edit")
    parser.add_argument("--lines", type=int, default=24, help="held-out two-line prompts, one per edit")
    parser.add_argument("--lines-file", default="lines2", help="the prompt set of the two-line prompts (its prompts with one line break): "
                        "lines2 (30 held-out two-line prompts, default) or multiline (4)")
    parser.add_argument("--candidates", type=int, nargs="+", default=[1], help="candidate counts to measure, e.g. 1 4")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the sampler default)")
    parser.add_argument("--sampler", default=None, help="ddim or ddpm (default: the sampling default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", default=None, help="a colour model's scene kind for every edit (default: the model's any kind)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--timing", action="store_true", help="only time one edit of the first photo's word box (6 runs, the median of the 5 warm ones)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures and every row here")
    parser.add_argument("--examples", type=Path, default=None, help="write a grid: each photo's box before | after (first prompt set)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, config = load_edit_model(args.checkpoint)
    entries = json.loads((args.photos / "boxes.json").read_text())
    words = [p for p in load_prompt_file(PROMPTS / "cased.txt")][: args.words]
    two_lines = [p for p in load_prompt_file(PROMPTS / f"{args.lines_file}.txt") if p.count("\n") == 1][: args.lines]
    sets = {"words": (words, 0), "2 lines": (two_lines, 1)}
    overrides = ({"seed": args.seed, "glyph_source": args.glyphs} | ({"steps": args.steps} if args.steps else {})
                 | ({"sampler": args.sampler} if args.sampler else {}) | ({"style": args.style} if args.style else {}))

    if args.timing:
        picture = open_picture(args.photos / entries[0]["file"])
        times = []
        for i in range(6):
            started = time.perf_counter()
            edit_picture(picture, words[0], tuple(entries[0]["boxes"][0]), model=model, config=config, method=args.method, resample=args.resample, compose=args.compose, panel=args.panel,
                         candidates=args.candidates[0], **{**overrides, "seed": args.seed + i})
            times.append(time.perf_counter() - started)
        print(f"{args.checkpoint}: one edit of a {picture.size[0]}x{picture.size[1]} photo, {args.candidates[0]} candidate(s): "
              f"median {statistics.median(times[1:]):.3f} s warm (runs: {', '.join(f'{t:.3f}' for t in times)})")
        return

    summary, rows, shown = [], [], []
    for candidates in args.candidates:
        for name, (prompts, box_index) in sets.items():
            if not prompts:  # --words 0 or --lines 0
                continue
            results = []
            for i, prompt in enumerate(prompts):
                entry = entries[i % len(entries)]
                picture = open_picture(args.photos / entry["file"])
                box = tuple(entry["boxes"][box_index])
                started = time.perf_counter()
                result = edit_picture(picture, prompt, box, model=model, config=config, method=args.method, resample=args.resample,
                                      compose=args.compose, panel=args.panel, candidates=candidates, read=True, **overrides)
                seconds = time.perf_counter() - started
                before, after = np.asarray(picture.image), np.asarray(result.image)
                across, own = seam_steps(before, after, box)
                ocr = result.candidates[result.best].ocr or ""
                row = {"set": name, "candidates": candidates, "photo": entry["file"], "box": box, "prompt": prompt, "ocr": ocr,
                       "exact": exact(ocr, prompt), "cer": cer(ocr, prompt), "outside_max_diff": outside_difference(before, after, box),
                       "seam": seam_ratio(before, after, box), "seam_levels": across, "own_levels": own, "seconds": seconds,
                       "method": result.method}
                rows.append(row)
                results.append(row)
                if args.examples and candidates == args.candidates[0] and len(shown) < 2 * len(entries) and name == "words":
                    x, y, w, h = box
                    pad = max(w, h) // 2
                    region = (max(0, x - pad), max(0, y - pad), min(picture.size[0], x + w + pad), min(picture.size[1], y + h + pad))
                    shown += [picture.rgb.crop(region).resize((256, 192)), result.image.convert("RGB").crop(region).resize((256, 192))]
                print(f"  {name} c{candidates} {entry['file']}: {prompt!r} -> {ocr!r} ({seconds:.1f} s)", flush=True)
            figure = {
                "set": name, "candidates": candidates, "n": len(results),
                "exact": statistics.mean(r["exact"] for r in results), "cer": statistics.mean(r["cer"] for r in results),
                "outside_max_diff": max(r["outside_max_diff"] for r in results),
                "seam_median": statistics.median(r["seam"] for r in results),
                "seam_levels_median": statistics.median(r["seam_levels"] for r in results),
                "own_levels_median": statistics.median(r["own_levels"] for r in results),
                "seconds_median": statistics.median(r["seconds"] for r in results),
            }
            summary.append(figure)
    method = rows[0]["method"] if rows else args.method
    print(f"\n{args.checkpoint} ({method}, compose {args.compose}, panel {args.panel}{', resample ' + str(args.resample) if method == 'repaint' else ''})")
    print(f"{'set':<8} {'cand':>4} {'n':>3} {'exact':>6} {'CER':>6} {'outside':>8} {'seam':>6} {'step':>5} {'own':>5} {'s/edit':>7}")
    for f in summary:
        print(f"{f['set']:<8} {f['candidates']:>4} {f['n']:>3} {f['exact']:>6.3f} {f['cer']:>6.3f} {f['outside_max_diff']:>8} {f['seam_median']:>6.2f} "
              f"{f['seam_levels_median']:>5.2f} {f['own_levels_median']:>5.2f} {f['seconds_median']:>7.2f}")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "method": method, "summary": summary, "rows": rows}, indent=2) + "\n")
    if args.examples and shown:
        make_grid(shown, columns=4).save(args.examples)


if __name__ == "__main__":
    main()
