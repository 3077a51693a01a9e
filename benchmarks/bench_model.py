"""Speed and memory of the glyphfuse model (not a test; prints tables).

    python benchmarks/bench_model.py                       # base64 + base128, batch 16, CPU
    python benchmarks/bench_model.py --presets base64 --batch 8 --iters 2
    python benchmarks/bench_model.py --skip-models         # only the weave-vs-GLIDE memory table

For each preset: parameter count, training-step throughput (forward + backward + AdamW),
sampling throughput (one denoising forward without grad) and peak memory. If ``diffusers`` is
importable (benchmark-only; never a glyphfuse dependency; ``--extra-path`` adds a folder it was
``pip install --target``-ed into) the same figures are printed for a peer: our text encoder +
a diffusers ``UNet2DConditionModel`` with the same channels, levels, res blocks and cross-attention
sizes. Every measurement runs in a fresh subprocess so that the CPU peak (``ru_maxrss``) belongs
to it alone; on CUDA the peak is ``torch.cuda.max_memory_allocated``.

The memory table compares ONE weave layer (text<->image cross-attention, O(L * HW)) with the
GLIDE way of appending the L text tokens to the image self-attention (O((HW + L)^2)).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def _rss_mib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prompts(batch: int) -> list[str]:
    words = ["glyph", "fuse", "hello\nworld", "OPEN 24h", "Café", "the quick brown fox", "SALE -50%", "a"]
    return [" ".join(words[(i + k) % len(words)] for k in range(1 + i % 3)) for i in range(batch)]


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    return _rss_mib()


def _peak_read(device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return _rss_mib()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------- models


def build_model(kind: str, preset: str):
    from glyphfuse.core.config import get_preset

    config = get_preset(preset)
    if kind == "glyphfuse":
        from glyphfuse.core.model import GlyphModel

        return GlyphModel(config), config
    return DiffusersPeer(config), config


class DiffusersPeer(nn.Module):
    """glyphfuse's text encoder + diffusers UNet2DConditionModel with glyphfuse's U-Net shape
    (cross-attention transformer blocks at the sizes where glyphfuse has weave layers)."""

    def __init__(self, config):
        super().__init__()
        from diffusers import UNet2DConditionModel

        from glyphfuse.core.text_encoder import TextEncoder

        u = config.unet
        base = u.base_channels
        self.base = base
        self.time_embed = nn.Sequential(nn.Linear(base, 4 * base), nn.SiLU(), nn.Linear(4 * base, 4 * base))
        self.text_encoder = TextEncoder(config.text, 4 * base)
        sizes = [config.image_size // 2**i for i in range(len(u.channel_mult))]
        down = tuple("CrossAttnDownBlock2D" if s in u.weave_resolutions else "DownBlock2D" for s in sizes)
        up = tuple("CrossAttnUpBlock2D" if s in u.weave_resolutions else "UpBlock2D" for s in reversed(sizes))
        self.unet = UNet2DConditionModel(
            sample_size=config.image_size,
            in_channels=u.in_channels,
            out_channels=u.out_channels,
            block_out_channels=tuple(base * m for m in u.channel_mult),
            down_block_types=down,
            up_block_types=up,
            layers_per_block=u.num_res_blocks,
            cross_attention_dim=config.text.width,
            attention_head_dim=u.head_channels,
            norm_num_groups=32,
        )

    def forward(self, x, t, text):
        from glyphfuse.core.layers import timestep_embedding

        emb = self.time_embed(timestep_embedding(t, self.base))
        h = self.text_encoder(text.token_ids, text.line_ids, text.mask, emb)
        return self.unet(x, t, encoder_hidden_states=h, encoder_attention_mask=text.mask.float()).sample


def job_model(kind: str, preset: str, batch: int, iters: int, device_name: str) -> dict:
    from glyphfuse.core.device import resolve_device
    from glyphfuse.core.tokenizer import tokenize

    device = resolve_device(device_name)
    torch.manual_seed(0)
    model, config = build_model(kind, preset)
    model.to(device)
    params = sum(p.numel() for p in model.parameters())
    text = tokenize(_prompts(batch), config.text.max_length).to(device)
    C, S = config.channels, config.image_size
    x = torch.randn(batch, C, S, S, device=device)
    t = torch.randint(0, 1000, (batch,), device=device).float()
    result = {"kind": kind, "preset": preset, "params": params, "batch": batch, "iters": iters, "device": str(device)}

    # sampling: one denoising forward without grad
    model.eval()
    base_mem = _peak_reset(device)
    with torch.no_grad():
        model(x, t, text)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            model(x, t, text)
        _sync(device)
    result["sample_img_s"] = batch * iters / (time.perf_counter() - start)
    result["sample_peak_mib"] = _peak_read(device) - base_mem

    # training: forward + backward + AdamW
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    target = torch.randn_like(x)

    def step():
        loss = F.mse_loss(model(x, t, text), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    base_mem = _peak_reset(device)
    step()  # warm-up (also allocates the optimizer state)
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    result["train_img_s"] = batch * iters / (time.perf_counter() - start)
    result["train_peak_mib"] = _peak_read(device) - base_mem
    return result


# ------------------------------------------------------------------------- memory: one layer


class GlideStyleLayer(nn.Module):
    """Text tokens appended to the image self-attention: attention over HW + L tokens."""

    def __init__(self, channels: int, text_width: int, head_channels: int):
        super().__init__()
        from glyphfuse.core.layers import group_norm

        self.heads = channels // head_channels
        self.norm = group_norm(channels)
        self.text_proj = nn.Linear(text_width, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, image, text, text_mask):
        B, C, H, W = image.shape
        tokens = torch.cat([self.norm(image).flatten(2).transpose(1, 2), self.text_proj(text)], dim=1)  # (B, HW+L, C)
        N = tokens.shape[1]
        q, k, v = self.qkv(tokens).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        keep = torch.cat([torch.ones(B, H * W, dtype=torch.bool, device=image.device), text_mask], dim=1)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        h = self.out(h.transpose(1, 2).reshape(B, N, C))[:, : H * W]
        return image + h.transpose(1, 2).reshape(B, C, H, W)


def job_layer(kind: str, size: int, text_len: int, channels: int, text_width: int, head_channels: int, device_name: str) -> dict:
    from glyphfuse.core.attention import WeaveLayer
    from glyphfuse.core.device import resolve_device

    device = resolve_device(device_name)
    torch.manual_seed(0)
    emb_dim = 4 * channels
    if kind == "weave":
        layer = WeaveLayer(channels, text_width, emb_dim, head_channels)
    else:
        layer = GlideStyleLayer(channels, text_width, head_channels)
    layer.to(device)
    image = torch.randn(1, channels, size, size, device=device, requires_grad=True)
    text = torch.randn(1, text_len, text_width, device=device, requires_grad=True)
    mask = torch.ones(1, text_len, dtype=torch.bool, device=device)
    base_mem = _peak_reset(device)
    start = time.perf_counter()
    if kind == "weave":
        emb = torch.randn(1, emb_dim, device=device)
        position = torch.randn(1, 2 * channels, size, size, device=device)
        out_image, out_text = layer(image, text, mask, emb, position)
        (out_image.square().mean() + out_text.square().mean()).backward()
    else:
        layer(image, text, mask).square().mean().backward()
    _sync(device)
    return {"peak_mib": _peak_read(device) - base_mem, "seconds": time.perf_counter() - start}


def attention_matrix_mib(kind: str, size: int, text_len: int, heads: int, batch: int = 1, bytes_per: int = 4) -> float:
    """Memory of the materialised attention probabilities of one layer (fp32, batch 1)."""
    hw = size * size
    entries = 2 * hw * text_len if kind == "weave" else (hw + text_len) ** 2
    return batch * heads * entries * bytes_per / 2**20


# ------------------------------------------------------------------------------------ driver


def run_worker(job: dict, extra_path: str | None) -> dict:
    """Run one job in a fresh interpreter (so ru_maxrss is its own) and return its result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)]
    if extra_path:
        cmd += ["--extra-path", extra_path]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def diffusers_available(extra_path: str | None) -> bool:
    code = "import diffusers"
    env = dict(os.environ)
    if extra_path:
        code = f"import sys; sys.path.append({extra_path!r}); " + code
    return subprocess.run([sys.executable, "-c", code], capture_output=True, env=env).returncode == 0


def fmt_mib(value: float) -> str:
    return f"{value / 1024:.2f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["base64", "base128"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=2, help="timed iterations after one warm-up")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-diffusers", action="store_true")
    parser.add_argument("--extra-path", default=None, help="folder appended to sys.path (e.g. a pip --target with diffusers)")
    parser.add_argument("--skip-models", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--mem-sizes", nargs="+", type=int, default=[64, 128, 256])
    parser.add_argument("--mem-text-lens", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--mem-channels", type=int, default=128)
    parser.add_argument("--mem-measure-max", type=int, default=128,
                        help="largest feature map to measure (the GLIDE layer at 256 px is minutes of CPU); larger: analytic only")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.extra_path:
        sys.path.append(args.extra_path)
    if args.worker:
        job = json.loads(args.worker)
        kind = job.pop("job")
        result = job_model(**job) if kind == "model" else job_layer(**job)
        print(json.dumps(result))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    if not args.skip_models:
        kinds = ["glyphfuse"]
        if not args.no_diffusers and diffusers_available(args.extra_path):
            kinds.append("diffusers")
        elif not args.no_diffusers:
            print("(diffusers not importable: peer comparison skipped)")
        print(f"\nModels: batch {args.batch}, {args.iters} timed iterations after one warm-up")
        header = f"{'preset':8} {'model':10} {'params':>8} {'train img/s':>11} {'train peak':>11} {'sample img/s':>12} {'sample peak':>11}"
        print(header)
        print("-" * len(header))
        for preset in args.presets:
            for kind in kinds:
                job = {"job": "model", "kind": kind, "preset": preset, "batch": args.batch, "iters": args.iters, "device_name": args.device}
                r = run_worker(job, args.extra_path)
                if "error" in r:
                    print(f"{preset:8} {kind:10} error: {r['error']}")
                    continue
                print(
                    f"{preset:8} {kind:10} {r['params'] / 1e6:7.1f}M {r['train_img_s']:11.2f} {fmt_mib(r['train_peak_mib']):>11} "
                    f"{r['sample_img_s']:12.2f} {fmt_mib(r['sample_peak_mib']):>11}",
                    flush=True,
                )

    if not args.skip_memory:
        ch, tw, hc = args.mem_channels, 256, 32
        heads = ch // hc
        print(f"\nOne text-conditioning layer, forward + backward, batch 1, {ch} channels, {heads} heads, text width {tw}")
        print("attn matrix = fp32 attention probabilities if materialised; peak = measured increase")
        header = f"{'map':>7} {'L':>4} {'weave attn':>11} {'GLIDE attn':>11} {'weave peak':>11} {'GLIDE peak':>11} {'weave s':>8} {'GLIDE s':>8}"
        print(header)
        print("-" * len(header))
        for size in args.mem_sizes:
            for L in args.mem_text_lens:
                a_w = attention_matrix_mib("weave", size, L, heads)
                a_g = attention_matrix_mib("glide", size, L, heads)
                cells = []
                for kind in ("weave", "glide"):
                    if size <= args.mem_measure_max:
                        job = {"job": "layer", "kind": kind, "size": size, "text_len": L, "channels": ch,
                               "text_width": tw, "head_channels": hc, "device_name": args.device}
                        cells.append(run_worker(job, None))
                    else:
                        cells.append(None)
                peaks = [fmt_mib(c["peak_mib"]) if c and "peak_mib" in c else "-" for c in cells]
                secs = [f"{c['seconds']:.2f}" if c and "seconds" in c else "-" for c in cells]
                print(f"{size:>4}px {L:>4} {fmt_mib(a_w):>11} {fmt_mib(a_g):>11} {peaks[0]:>11} {peaks[1]:>11} {secs[0]:>8} {secs[1]:>8}", flush=True)


if __name__ == "__main__":
    main()
