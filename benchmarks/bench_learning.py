"""Learning benchmark: train a small model from scratch for a fixed budget and print its learning
curve as `glyphfuse eval` figures (CER, exact, exact_ci on held-out prompts) at several points.

Use it to measure how a change affects learning speed: run it before and after, same arguments.

    python benchmarks/bench_learning.py                       # tiny, 32 px, short words, CPU-sized
    python benchmarks/bench_learning.py --model base64 --size 64 --count 100000 --steps 20000 \
        --eval-every 2000 --batch-size 128 --lr 2e-4 --device cuda          # a GPU run

By default the data is the packaged model's domain (examples/recipes/words32.sh): short lowercase
words (3-5 letters) from the shipped word list in one condensed bold font at 12-14 px, and eval
uses the packaged `short` prompt set (held out: none of its words is in that list).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path

from glyphfuse.evaluate import run_eval
from glyphfuse.synth import parse_font_size, synthesize
from glyphfuse.train import config_for_run, find_latest_checkpoint, train

REPO = Path(__file__).resolve().parents[1]


def short_words_file(folder: Path, min_len: int = 3, max_len: int = 5) -> Path:
    """A --text-file of the shipped training words of min_len..max_len lowercase letters."""
    words = resources.files("glyphfuse").joinpath("resources/words.txt").read_text(encoding="utf-8").split()
    chosen = [w for w in words if min_len <= len(w) <= max_len and w.isascii() and w.isalpha() and w.islower()]
    path = folder / "words.txt"
    path.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="preset or ModelConfig JSON (default tiny)")
    parser.add_argument("--size", type=int, default=32, help="image size of the synthetic set; must match the model")
    parser.add_argument("--count", type=int, default=10000, help="synthetic training images")
    parser.add_argument("--steps", type=int, default=2000, help="training budget in optimizer steps")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--font", type=Path, default=REPO / "fonts" / "OpenSans-CondBold.ttf", help="the one font of the data (default OpenSans-CondBold)")
    parser.add_argument("--font-size", default="12-14", help="font size range MIN-MAX in px (default 12-14)")
    parser.add_argument("--prompts", default="short", help="eval prompt set or file (default short)")
    parser.add_argument("-n", type=int, default=2, help="eval samples per prompt")
    parser.add_argument("--sample-steps", type=int, default=25, help="DDIM steps at eval")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", type=Path, default=None, help="keep data and run here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the curve as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data, run = work / "data", work / "run"
        if not (data / "metadata.jsonl").is_file():
            (work / "fonts").mkdir(exist_ok=True)
            shutil.copy(args.font, work / "fonts")
            synthesize(data, args.count, size=args.size, seed=0, workers=2, text_file=short_words_file(work), fonts_dir=work / "fonts",
                       font_px=parse_font_size(args.font_size), progress=False)
        curve = []
        started = time.perf_counter()
        for target in range(args.eval_every, args.steps + 1, args.eval_every):
            overrides = {"max_steps": target, "batch_size": args.batch_size, "lr": args.lr, "warmup_steps": min(100, target),
                         "ema_decay": 0.999, "checkpoint_every": args.eval_every, "sample_every": 0, "num_workers": 1,
                         "device": args.device, "progress": False}
            config = config_for_run(data, run, model=args.model, overrides=overrides)
            train(config, run)
            checkpoint = find_latest_checkpoint(run)
            report = run_eval(checkpoint, prompts=args.prompts, n=args.n, steps=args.sample_steps, seed=0, device=args.device)
            summary = report["model"]["summary"]
            losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()[-5:]]
            row = {"step": target, "loss": sum(losses) / len(losses), "cer": summary["cer"], "exact": summary["exact"],
                   "exact_ci": summary["exact_ci"], "train_seconds": time.perf_counter() - started}
            curve.append(row)
            print(f"step {row['step']:>6}  loss {row['loss']:.4f}  CER {row['cer']:.3f}  exact {row['exact']:.3f}  "
                  f"exact_ci {row['exact_ci']:.3f}  ({row['train_seconds']:.0f} s)", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "curve": curve}, indent=2))


if __name__ == "__main__":
    main()
