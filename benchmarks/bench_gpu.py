"""Throughput of the GPU recipe's models (examples/recipes/gpu128/), with and without bf16 / compile.

    python benchmarks/bench_gpu.py                      # CUDA: the recipe's models; CPU: the tiny dry-run models
    python benchmarks/bench_gpu.py --quick              # CUDA: fewer iterations, no torch.compile (about 1 minute)
    python benchmarks/bench_gpu.py --json bench.json    # also write the figures as JSON
    python benchmarks/bench_gpu.py --models full --iters 1 --batch-base 2 --batch-sr 2   # the recipe's models on a CPU (slow)

For the base model (``base128.json``) and its SR model (``sr_config_for(base, 256)``, what
``glyphfuse warm-start`` builds) it prints parameters, forward GFLOP per image (counted by
``torch.utils.flop_counter``), and images/s of

* training: one step as the trainer takes it (diffusion loss, backward, AdamW) on random data, at
  the recipe's batch sizes (train-base.json / train-sr.json);
* sampling: one classifier-free-guided denoising evaluation (the conditional and null rows in one
  forward pass); a 50-step DDIM sample costs 50 of them, so images/s of sampling = this / 50;

for each variant: ``fp32``, ``bf16`` (autocast, what the trainer does on CUDA), ``bf16+cl``
(channels-last memory format, which the trainer does not offer yet) and ``bf16+compile``
(``torch.compile``, the trainer's ``--compile``; its compile time is printed too). On a CPU only
``fp32`` runs, and the GPU minutes of each recipe stage are then ESTIMATED from the FLOPs and an
assumed sustained rate (``--assume-tflops``, default 60 TFLOP/s: about 6 % of an H100's dense
bf16 peak, for a small U-Net of 40-160 channels); on CUDA they follow from the measured rate.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from glyphfuse.core.config import ModelConfig, load_model_config, sr_config_for
from glyphfuse.core.diffusion import GaussianDiffusion
from glyphfuse.core.model import GlyphModel, count_parameters
from glyphfuse.core.tokenizer import tokenize

RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipes" / "gpu128"
PROMPTS = ["Deny Crisis\nLuCdIs", "receive\nkHgfJPf", "LOAM\nlive\nterrace", "found mean", "kimono strut\nEMaCkvT from"]
VARIANTS = ("fp32", "bf16", "bf16+cl", "bf16+compile")
STARTUP_SECONDS = 30  # of a stage's wall time before training runs: Python, CUDA, data index, workers


def recipe_models(which: str) -> dict[str, ModelConfig]:
    base = load_model_config(RECIPE / ("base128.json" if which == "full" else "tiny.json"))
    return {"base": base, "sr": sr_config_for(base, 2 * base.image_size, name=f"{base.name}-sr")}


def _inputs(config: ModelConfig, batch: int, device: torch.device, channels_last: bool):
    """Random noisy images (B, C, H, W), prompts as a TextBatch and the SR conditioning."""
    memory = torch.channels_last if channels_last else torch.contiguous_format
    images = torch.randn(batch, config.channels, config.image_size, config.image_size, device=device).contiguous(memory_format=memory)
    texts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    text = tokenize(texts, config.text.max_length, max_lines=config.text.max_lines).to(device)
    extra = {}
    if config.low_res_size is not None:
        low = torch.randn(batch, config.channels, config.low_res_size, config.low_res_size, device=device)
        extra = {"low_res": low.contiguous(memory_format=memory), "low_res_noise_level": torch.zeros(batch, device=device)}
    return images, text, extra


def forward_gflop(config: ModelConfig) -> float:
    """Forward GFLOP per image (multiply-add = 2), counted on the CPU with a batch of one."""
    model = GlyphModel(config)
    images, text, extra = _inputs(config, 1, torch.device("cpu"), False)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(images, torch.tensor([500.0]), text, **extra)
    return counter.get_total_flops() / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(run, device: torch.device, warmup: int, iters: int) -> tuple[float, float]:
    """(seconds of the first call, e.g. compilation included; mean seconds of the timed calls)."""
    _sync(device)
    started = time.perf_counter()
    run()
    _sync(device)
    first = time.perf_counter() - started
    for _ in range(max(0, warmup - 1)):
        run()
    _sync(device)
    started = time.perf_counter()
    for _ in range(iters):
        run()
    _sync(device)
    return first, (time.perf_counter() - started) / iters


def measure(config: ModelConfig, variant: str, batch: int, device: torch.device, warmup: int, iters: int) -> dict:
    """Training and sampling images/s of one model in one variant (fp32, bf16, bf16+cl, bf16+compile)."""
    torch.manual_seed(0)
    channels_last = variant == "bf16+cl"
    model = GlyphModel(config).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if variant == "bf16+compile" else model
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant != "fp32")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    diffusion = GaussianDiffusion(config.diffusion)
    images, text, extra = _inputs(config, batch, device, channels_last)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp:
            loss = diffusion.training_loss(lambda x, t: net(x, t, text, **extra), images).mean()
        loss.backward()
        optimizer.step()

    # guided sampling evaluates [cond; null] rows together: 2B rows for B images
    rows = torch.cat([images, images])
    rows_text = tokenize([PROMPTS[i % len(PROMPTS)] for i in range(batch)] + [None] * batch, config.text.max_length, max_lines=config.text.max_lines).to(device)
    rows_extra = {key: torch.cat([value, value]) for key, value in extra.items()}
    timesteps = torch.full((2 * batch,), 500.0, device=device)

    def sample_eval() -> None:
        with torch.no_grad(), amp:
            net(rows, timesteps, rows_text, **rows_extra)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_first, train_seconds = _timed(train_step, device, warmup, iters)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    model.eval()
    sample_first, sample_seconds = _timed(sample_eval, device, warmup, iters)
    return {
        "variant": variant, "batch": batch, "train_images_per_s": batch / train_seconds, "sample_evals_per_s": batch / sample_seconds,
        "first_train_step_s": train_first, "first_sample_eval_s": sample_first, "train_peak_gib": peak,
    }


def measure_or_report(config: ModelConfig, variant: str, batch: int, device: torch.device, warmup: int, iters: int) -> dict:
    """:func:`measure`, or a row of zeros naming the error (e.g. torch.compile failing), so that one
    variant cannot cost the other figures of a short GPU session."""
    try:
        return measure(config, variant, batch, device, warmup, iters)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        print(f"  {variant}: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return {"variant": variant + " (failed)", "batch": batch, "train_images_per_s": 0.0, "sample_evals_per_s": 0.0,
                "first_train_step_s": 0.0, "first_sample_eval_s": 0.0, "train_peak_gib": None, "error": str(exc)[:500]}
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def stage_train_seconds() -> dict[str, int]:
    """Training seconds of each recipe stage: its wall-time bound in stage.sh (the full-scale
    ``seconds_a=...`` settings) minus the start-up."""
    text = (RECIPE / "stage.sh").read_text(encoding="utf-8")
    bounds = {}
    for key, value in re.findall(r"\bseconds_(a|b|sr)=(\d+)", text):
        bounds.setdefault(key, int(value))
    return {stage: bounds[key] - STARTUP_SECONDS for stage, key in (("base-a", "a"), ("base-b", "b"), ("sr", "sr"))}


def stage_minutes(base_rate: float, sr_rate: float) -> list[tuple[str, float, int]]:
    """(stage, training minutes, images seen) at the given training images/s."""
    rates = {"base-a": base_rate, "base-b": base_rate, "sr": sr_rate}
    return [(stage, seconds / 60, int(rates[stage] * seconds)) for stage, seconds in stage_train_seconds().items()]


def _batch_sizes(args) -> dict[str, int]:
    if args.models == "tiny":
        return {"base": args.batch_base or 4, "sr": args.batch_sr or 4}
    defaults = {name: json.loads((RECIPE / f"train-{name}.json").read_text())["batch_size"] for name in ("base", "sr")}
    return {"base": args.batch_base or defaults["base"], "sr": args.batch_sr or defaults["sr"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", choices=("full", "tiny"), default=None, help="default: full on CUDA, tiny on a CPU")
    parser.add_argument("--quick", action="store_true", help="fewer iterations and no torch.compile")
    parser.add_argument("--variants", default=None, help="comma-separated subset of fp32,bf16,bf16+cl,bf16+compile")
    parser.add_argument("--batch-base", type=int, default=None)
    parser.add_argument("--batch-sr", type=int, default=None)
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per figure")
    parser.add_argument("--assume-tflops", type=float, default=60.0, help="sustained TFLOP/s assumed for the GPU estimate")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    args.models = args.models or ("full" if cuda else "tiny")
    variants = args.variants.split(",") if args.variants else (["fp32", "bf16", "bf16+cl"] + ([] if args.quick else ["bf16+compile"]) if cuda else ["fp32"])
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    iters = args.iters or (3 if not cuda else 5 if args.quick else 20)
    warmup = 1 if not cuda else 3
    batches = _batch_sizes(args)
    where = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"bench_gpu: {args.models} recipe models on {where}; torch {torch.__version__}; {iters} timed iterations")
    report = {"device": where, "torch": torch.__version__, "models": {}}
    for name, config in recipe_models(args.models).items():
        gflop = forward_gflop(config)
        params = count_parameters(GlyphModel(config))["total"]
        rows = [measure_or_report(config, variant, batches[name], device, warmup, iters) for variant in variants]
        report["models"][name] = {"config": config.name, "params": params, "forward_gflop": gflop, "image_size": config.image_size, "rows": rows}
        print(f"\n{name}: {config.name}, {config.image_size} px, {params / 1e6:.2f}M parameters, {gflop:.2f} GFLOP forward per image, batch {batches[name]}")
        print(f"  {'variant':<13} {'train img/s':>12} {'guided evals/s':>15} {'50-step img/s':>14} {'1st step s':>11} {'peak GiB':>9}")
        for row in rows:
            peak = f"{row['train_peak_gib']:.1f}" if row["train_peak_gib"] is not None else "-"
            print(f"  {row['variant']:<13} {row['train_images_per_s']:12.1f} {row['sample_evals_per_s']:15.1f} {row['sample_evals_per_s'] / 50:14.2f} {row['first_train_step_s']:11.1f} {peak:>9}")
    full = recipe_models("full")
    if cuda and args.models == "full":
        best = {name: max(row["train_images_per_s"] for row in report["models"][name]["rows"]) for name in ("base", "sr")}
        label = "measured (best variant)"
    else:
        best = {name: args.assume_tflops * 1e12 / (3e9 * forward_gflop(config)) for name, config in full.items()}
        label = f"ESTIMATE: {args.assume_tflops:.0f} TFLOP/s sustained, training = 3x forward FLOPs"
    report["stage_estimate"] = {"basis": label, "train_images_per_s": best, "stages": stage_minutes(best["base"], best["sr"])}
    print(f"\nrecipe stages at base {best['base']:.0f} / SR {best['sr']:.0f} training images/s ({label}):")
    for stage, minutes, images in report["stage_estimate"]["stages"]:
        print(f"  {stage:<7} {minutes:4.1f} min of training -> {images / 1e6:5.2f}M images")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
