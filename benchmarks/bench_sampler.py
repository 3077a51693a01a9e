"""Sampler benchmark: legibility against denoiser evaluations, DDIM against DPM-Solver++(2M).

    python benchmarks/bench_sampler.py                      # packaged model, words + lines2, n 1
    python benchmarks/bench_sampler.py -c runs/lines64/checkpoint --steps 5 10 20 -n 4 --json sampler.json

For every prompt set, sampler and step count one `glyphfuse eval` (glyphfuse.evaluate.run_eval,
same seed for every row) gives exact and CER; while it runs, glyphfuse.sampling.generation.generate is timed
and hooks on the model's text encoder and U-Net count and time their calls:

* images/s: images over the wall time of sampling alone (model loading and OCR not counted);
* U-Net evaluations per image: rows that went through the U-Net over images (2 per step with
  guidance != 1: the conditional and null rows share one batched forward);
* text encoder: it takes the timestep, so it runs again at every step; its time per forward and
  its share of the sampling time (what caching its output could save at most).

The default sampler and step count of glyphfuse are ``glyphfuse.sampling.settings.DEFAULT_SAMPLER`` and
``DEFAULT_STEPS``; this benchmark is how to choose them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from glyphfuse.ocr import tesseract as ocr
from glyphfuse.sampling import generation as sampling
from glyphfuse.core.checkpoint import load_checkpoint_config
from glyphfuse.core.diffusion import SAMPLERS, space_timesteps
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.evaluate import load_prompts, run_eval
from glyphfuse.sampling.settings import SamplingSettings

DEFAULTS = SamplingSettings()


class SamplingMeter:
    """While active, wraps glyphfuse.sampling.generation.generate to time it and count its images, and hooks
    the text encoder and U-Net of the model it is given to count their calls, rows and time."""

    def __init__(self):
        self.seconds = self.text_seconds = self.unet_seconds = 0.0
        self.images = self.text_calls = self.unet_calls = self.unet_rows = 0

    def _hooks(self, module: torch.nn.Module, part: str) -> list:
        started = {}

        def sync(tensor: torch.Tensor) -> None:
            if tensor.is_cuda:
                torch.cuda.synchronize(tensor.device)

        def before(module, args):
            sync(args[0])
            started["at"] = time.perf_counter()

        def after(module, args, output):
            sync(output)
            seconds = time.perf_counter() - started["at"]
            if part == "text":
                self.text_seconds += seconds
                self.text_calls += 1
            else:
                self.unet_seconds += seconds
                self.unet_calls += 1
                self.unet_rows += args[0].shape[0]  # x_t: (rows, C, H, W)

        return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]

    def __enter__(self) -> "SamplingMeter":
        self._generate = sampling.generate

        def measured_generate(model, config, prompts, *args, **kwargs):
            handles = self._hooks(model.text_encoder, "text") + self._hooks(model.unet, "unet")
            started = time.perf_counter()
            try:
                images = self._generate(model, config, prompts, *args, **kwargs)  # (B, C, H, W) on the CPU
            finally:
                for handle in handles:
                    handle.remove()
            self.seconds += time.perf_counter() - started
            self.images += len(images)
            return images

        sampling.generate = measured_generate
        return self

    def __exit__(self, *exc) -> None:
        sampling.generate = self._generate

    def figures(self) -> dict:
        return {
            "images": self.images,
            "sampling_seconds": self.seconds,
            "images_per_second": self.images / self.seconds if self.seconds else None,
            "unet_evals_per_image": self.unet_rows / self.images if self.images else None,
            "text_encoder_ms_per_forward": 1000 * self.text_seconds / self.text_calls if self.text_calls else None,
            "text_encoder_share": self.text_seconds / self.seconds if self.seconds else None,
        }


def settings_of(args: argparse.Namespace, sampler: str, steps: int) -> SamplingSettings:
    """One row's sampling settings (checked): the command line's, with this sampler and step count."""
    settings = SamplingSettings(steps=steps, sampler=sampler, guidance=args.guidance, seed=args.seed, batch_size=args.batch_size)
    settings.validate(options=True)
    return settings


def measure(args: argparse.Namespace, prompts: str, sampler: str, steps: int) -> dict:
    with SamplingMeter() as meter:
        report = run_eval(args.checkpoint, settings_of(args, sampler, steps), prompts=prompts, n=args.n, device=args.device)
    summary = report["model"]["summary"]
    return {"prompts": prompts, "sampler": sampler, "steps": steps, "exact": summary["exact"], "cer": summary["cer"], **meter.figures()}


def row_text(row: dict) -> str:
    return (f"{row['prompts']:<8} {row['sampler']:<9} {row['steps']:>3} steps  {row['unet_evals_per_image']:>5.0f} U-Net evals/image  "
            f"exact {row['exact']:.3f}  CER {row['cer']:.3f}  {row['images_per_second']:7.3f} images/s  "
            f"text encoder {row['text_encoder_ms_per_forward']:.2f} ms/forward ({100 * row['text_encoder_share']:.1f}% of sampling)")


def check_arguments(args: argparse.Namespace) -> dict:
    """Fail on bad input before anything is sampled; returns the settings to record."""
    if args.n < 1:
        raise GlyphfuseError(f"-n must be at least 1, got {args.n}")
    folder = args.checkpoint if args.checkpoint is not None else sampling.default_checkpoint_dir()
    config = load_checkpoint_config(folder)
    for steps in args.steps:
        space_timesteps(config.diffusion.num_timesteps, steps)  # GlyphfuseError when out of range
        for sampler in args.samplers:
            settings_of(args, sampler, steps)
    for prompts in args.prompts:
        load_prompts(prompts)  # GlyphfuseError for an unknown set or a missing file
    ocr.check_tesseract()
    return {"checkpoint": str(folder), "model": config.name, "image_size": config.image_size, "schedule": config.diffusion.schedule,
            "prediction": config.diffusion.prediction, "guidance": args.guidance, "n": args.n, "seed": args.seed,
            "device": args.device, "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", "-c", type=Path, default=None, help="checkpoint folder (default: the packaged model)")
    parser.add_argument("--prompts", nargs="+", default=["words", "lines2"], help="held-out prompt sets or files (default: words lines2)")
    parser.add_argument("--steps", nargs="+", type=int, default=[5, 8, 10, 15, 20, 50], help="step counts (default: 5 8 10 15 20 50)")
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=["ddim", "dpmpp-2m"], help="default: ddim dpmpp-2m")
    parser.add_argument("-n", type=int, default=1, help="samples per prompt (default 1)")
    parser.add_argument("--guidance", type=float, default=DEFAULTS.guidance, help=f"classifier-free guidance scale (default {DEFAULTS.guidance:g})")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="images per forward pass (x2 rows with guidance)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write settings and rows as JSON here")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        settings = check_arguments(args)
        print(f"{settings['model']} ({settings['image_size']} px, {settings['schedule']}/{settings['prediction']}) from {settings['checkpoint']}, "
              f"guidance {args.guidance}, n {args.n}, {settings['torch_threads']} torch threads, device {args.device}", flush=True)
        rows = []
        for prompts in args.prompts:
            for sampler in args.samplers:
                for steps in args.steps:
                    rows.append(measure(args, prompts, sampler, steps))
                    print(row_text(rows[-1]), flush=True)
    except GlyphfuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    if args.json:
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
