"""Trainer overhead: images/s of the full training loop vs the bare model step.

The bare step is forward + backward + AdamW on one fixed batch (the diffusion loss at random
timesteps), nothing else. The full trainer adds everything a real run does per step: loading
and decoding PNGs, text dropout, tokenization, per-step generators, grad clipping, the EMA
update, progress bookkeeping and metrics.jsonl. Both use the same model, batch size and thread
count; each is timed several times, interleaved; a trial's speed is batch / median step
time and the best trial counts (the CI box is shared, so plain means are noisy).
Target: trainer overhead under 10 %.

    python benchmarks/bench_train.py [--preset tiny] [--batch-size 16] [--steps 20] [--trials 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from glyphfuse.core.config import get_preset
from glyphfuse.core.diffusion import GaussianDiffusion
from glyphfuse.core.model import GlyphModel
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.data.imagefolder import ImageTextDataset
from glyphfuse.training.loop import TrainConfig, train


def make_dataset(root: Path, count: int, size: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = Image.new("L", (size, size), 200 + i % 50)
        ImageDraw.Draw(image).text((2, size // 3), f"t{i}", fill=0)
        image.save(root / f"{i:04d}.png")
        (root / f"{i:04d}.txt").write_text(f"t{i}", encoding="utf-8")


def bare_images_per_s(preset: str, batch_size: int, warmup: int, steps: int, data: Path) -> float:
    config = get_preset(preset)
    dataset = ImageTextDataset(data, config.image_size, config.channels)
    items = [dataset[i] for i in range(batch_size)]
    images = torch.stack([image for image, _, _ in items])
    text = tokenize([t for _, t, _ in items], config.text.max_length, max_lines=config.text.max_lines)
    torch.manual_seed(0)
    model = GlyphModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    diffusion = GaussianDiffusion(config.diffusion)
    generator = torch.Generator().manual_seed(0)
    stamps = []
    for step in range(warmup + steps):
        optimizer.zero_grad(set_to_none=True)
        loss = diffusion.training_loss(lambda x, t: model(x, t, text), images, generator=generator).mean()
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return batch_size / _median_step(stamps[warmup - 1 :])


def trainer_images_per_s(preset: str, batch_size: int, warmup: int, steps: int, data: Path, workers: int, run_dir: Path) -> float:
    config = TrainConfig(
        model=preset, data=str(data), batch_size=batch_size, lr=1e-4, warmup_steps=10, max_steps=warmup + steps,
        num_workers=workers, checkpoint_every=0, sample_every=0, log_every=10, device="cpu", progress=False,
    )
    stamps: dict[int, float] = {}
    shutil.rmtree(run_dir, ignore_errors=True)
    train(config, run_dir, on_step=lambda step, _: stamps.__setitem__(step, time.perf_counter()))
    return batch_size / _median_step([stamps[s] for s in range(warmup, warmup + steps + 1)])


def _median_step(stamps: list[float]) -> float:
    """Median seconds between consecutive timestamps: robust to other load on a shared box."""
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per trial")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the trainer (1: loading overlaps the 1-thread compute)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default; 1 gives steady figures on a busy 2-core box)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = get_preset(args.preset).image_size
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        data = Path(tmp) / "data"
        make_dataset(data, 4 * args.batch_size, size)
        bare, full = [], []
        for _ in range(args.trials):
            bare.append(bare_images_per_s(args.preset, args.batch_size, args.warmup, args.steps, data))
            full.append(trainer_images_per_s(args.preset, args.batch_size, args.warmup, args.steps, data, args.workers, Path(tmp) / "run"))
    best_bare, best_full = max(bare), max(full)
    overhead = 100.0 * (best_bare - best_full) / best_bare
    print(f"bench_train: preset {args.preset} {size}px, batch {args.batch_size}, {torch.get_num_threads()} thread(s), "
          f"{args.steps} timed steps x {args.trials} trials, trainer workers {args.workers}")
    print(f"  bare model step (fwd+bwd+AdamW): {best_bare:8.1f} images/s   trials {', '.join(f'{v:.1f}' for v in bare)}")
    print(f"  full trainer                   : {best_full:8.1f} images/s   trials {', '.join(f'{v:.1f}' for v in full)}")
    print(f"  trainer overhead               : {overhead:8.1f} %   (target < 10 %)")


if __name__ == "__main__":
    main()
