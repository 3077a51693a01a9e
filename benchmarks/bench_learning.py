"""Learning benchmark: how fast a model learns to spell, as `glyphfuse eval` figures.

Two jobs:

    # the learning curve of an existing run: every step checkpoint evaluated on held-out prompts
    python benchmarks/bench_learning.py curve work/lines64/run --prompts words lines2 strings

    # an ablation at equal images seen: the lines64 data recipe against variants that change one
    # thing each (placement, background, random strings, the column-in-line embedding)
    python benchmarks/bench_learning.py ablation --steps 500 --count 20000

Figures: exact (the OCR read equals the prompt), CER, for a single sample per prompt (DDIM, no
rejection) on the packaged held-out sets, whose words are never rendered by synth-fonts. The CPU
default of `ablation` (`make bench`) is small; the closing note of issue 11 in CHANGELOG.md has a
full run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from glyphfuse.core.checkpoint import read_checkpoint_info
from glyphfuse.core.config import get_preset
from glyphfuse.evaluate import run_eval
from glyphfuse.training.run_folder import CHECKPOINTS, find_latest_checkpoint, run_config_path, step_of
from glyphfuse.data.synth import get_data_recipe, synthesize
from glyphfuse.training.loop import config_for_run, train

# name -> (changes to the lines64 data recipe, changes to the lines64 text encoder)
VARIANTS = {
    "lines64 recipe": ({}, {}),
    "centred block": ({"align": "center", "placement": "center"}, {}),
    "random placement": ({"align": "random", "placement": "random"}, {}),
    "random background": ({"background": "random"}, {}),
    "no random strings": ({"random_fraction": 0.0}, {}),
    "no column embedding": ({}, {"column_embedding": False}),
}


def evaluate(checkpoint: Path, prompt_sets: list[str], n: int, steps: int, device: str) -> dict:
    scores = {}
    for prompts in prompt_sets:
        summary = run_eval(checkpoint, prompts=prompts, n=n, steps=steps, seed=0, device=device)["model"]["summary"]
        scores[prompts] = {"exact": summary["exact"], "cer": summary["cer"]}
    return scores


def row_text(label: str, images: int, scores: dict) -> str:
    cells = "  ".join(f"{name} exact {s['exact']:.3f} CER {s['cer']:.3f}" for name, s in scores.items())
    return f"{label:<22} {images:>8,} images  {cells}"


def curve(args: argparse.Namespace) -> list[dict]:
    checkpoints = sorted((p for p in (args.run / CHECKPOINTS).iterdir() if p.is_dir() and step_of(p) is not None), key=step_of)
    if args.every:
        checkpoints = [c for c in checkpoints if step_of(c) % args.every == 0]
    run_json = run_config_path(args.run)
    batch = json.loads(run_json.read_text())["batch_size"] if run_json.is_file() else args.batch_size
    rows = []
    for checkpoint in checkpoints:
        step = int(read_checkpoint_info(checkpoint).get("metadata", {}).get("step") or step_of(checkpoint))
        scores = evaluate(checkpoint, args.prompts, args.n, args.sample_steps, args.device)
        rows.append({"step": step, "images": step * batch, "scores": scores})
        print(row_text(f"step {step}", step * batch, scores), flush=True)
    return rows


def ablation(args: argparse.Namespace) -> list[dict]:
    base_style = get_data_recipe("lines64")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        for name in args.variants or list(VARIANTS):
            data_changes, text_changes = VARIANTS[name]
            slug = name.replace(" ", "-")
            data, run = work / f"data-{slug}", work / f"run-{slug}"
            if not (data / "metadata.jsonl").is_file():
                synthesize(data, args.count, size=64, seed=0, workers=2, style=base_style.replace(**data_changes), overwrite=True, progress=False)
            model = get_preset("lines64")
            for key, value in text_changes.items():
                setattr(model.text, key, value)
            model_file = work / f"model-{slug}.json"
            model_file.write_text(model.to_json())
            overrides = {"max_steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "warmup_steps": 200, "ema_decay": 0.999,
                         "checkpoint_every": args.steps, "sample_every": 0, "num_workers": 1, "device": args.device, "progress": False}
            started = time.perf_counter()
            train(config_for_run(data, run, model=str(model_file), overrides=overrides), run)
            seconds = time.perf_counter() - started
            scores = evaluate(find_latest_checkpoint(run), args.prompts, args.n, args.sample_steps, args.device)
            rows.append({"variant": name, "images": args.steps * args.batch_size, "train_seconds": seconds, "scores": scores})
            print(row_text(name, args.steps * args.batch_size, scores) + f"  ({seconds:.0f} s training)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    jobs = parser.add_subparsers(dest="job")
    curve_parser = jobs.add_parser("curve", help="evaluate every step checkpoint of a run")
    curve_parser.add_argument("run", type=Path, help="a train-base run folder")
    curve_parser.add_argument("--every", type=int, default=0, help="only steps that are multiples of this")
    curve_parser.add_argument("--batch-size", type=int, default=32, help="images per step when the run has no run.json")
    ablation_parser = jobs.add_parser("ablation", help="train the lines64 recipe and its variants at equal images")
    ablation_parser.add_argument("--steps", type=int, default=200)
    ablation_parser.add_argument("--count", type=int, default=8000, help="synthetic images per variant")
    ablation_parser.add_argument("--batch-size", type=int, default=32)
    ablation_parser.add_argument("--lr", type=float, default=2e-3)
    ablation_parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), help="default: all")
    ablation_parser.add_argument("--workdir", type=Path, default=None, help="keep data and runs here (default: a temp dir)")
    for sub in (curve_parser, ablation_parser):
        sub.add_argument("--prompts", nargs="+", default=["words", "lines2"], help="held-out prompt sets (default words lines2)")
        sub.add_argument("-n", type=int, default=1, help="samples per prompt")
        sub.add_argument("--sample-steps", type=int, default=50, help="DDIM steps at eval")
        sub.add_argument("--device", default="auto")
        sub.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    if args.job is None:  # `make bench`: a small ablation sized for the CPU
        args = ablation_parser.parse_args([])
        args.job = "ablation"
    rows = curve(args) if args.job == "curve" else ablation(args)
    if args.json:
        args.json.write_text(json.dumps({"job": args.job, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
