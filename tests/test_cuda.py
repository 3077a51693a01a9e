"""The CUDA paths: bf16 autocast, channels-last, torch.compile, nccl/DDP with one process, the
trainer and the GPU recipe on CUDA. They run only where CUDA is present (a rented GPU machine:
``python3 -m pytest tests/test_cuda.py -q``, about 2 minutes); elsewhere every test is skipped
with the reason below. The models are the GPU recipe's tiny dry-run models.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from glyphfuse.core.checkpoint import load_checkpoint
from glyphfuse.core.config import load_model_config, sr_config_for
from glyphfuse.core.device import autocast_dtype, resolve_device
from glyphfuse.core.diffusion import GaussianDiffusion
from glyphfuse.core.model import GlyphModel
from glyphfuse.core.tokenizer import tokenize
from test_gpu_recipe import GPU_COMMANDS, RECIPE, ROOT, run_stages

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: bf16 autocast, channels-last, torch.compile and nccl run only there (no CUDA on this machine)",
)
PROMPTS = ["Deny Crisis\nLuCdIs", "ab", None, "LOAM\nlive\nterrace"]  # None: the guidance null input


def tiny_configs():
    base = load_model_config(RECIPE / "tiny.json")
    return {"base": base, "sr": sr_config_for(base, 2 * base.image_size)}


def make_inputs(config, batch: int = 4, memory=torch.contiguous_format):
    """Noisy images (B, C, H, W), timesteps (B,), the text batch and the SR inputs, on CUDA."""
    g = torch.Generator().manual_seed(0)
    size = config.image_size
    x = torch.randn(batch, config.channels, size, size, generator=g).cuda().contiguous(memory_format=memory)
    t = torch.tensor([10.0, 300.0, 600.0, 990.0][:batch]).cuda()
    text = tokenize(PROMPTS[:batch], config.text.max_length, max_lines=config.text.max_lines).to("cuda")
    extra = {}
    if config.low_res_size is not None:
        low = torch.randn(batch, config.channels, config.low_res_size, config.low_res_size, generator=g).cuda()
        extra = {"low_res": low.contiguous(memory_format=memory), "low_res_noise_level": torch.full((batch,), 0.1).cuda()}
    return x, t, text, extra


def random_cuda_model(config, seed: int = 0) -> GlyphModel:
    torch.manual_seed(seed)
    model = GlyphModel(config)
    with torch.no_grad():  # zero-initialised output layers would make every comparison vacuous
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    return model.cuda()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_autocast_picks_bf16_on_cuda():
    assert autocast_dtype(resolve_device("cuda")) == torch.bfloat16


@pytest.mark.parametrize("kind", ["base", "sr"])
def test_bf16_autocast_forward_is_close_and_a_training_step_is_finite(kind):
    config = tiny_configs()[kind]
    model = random_cuda_model(config)
    x, t, text, extra = make_inputs(config)
    with torch.no_grad():
        reference = model(x, t, text, **extra)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = model(x, t, text, **extra)
    assert relative_error(low, reference) < 0.05
    diffusion = GaussianDiffusion(config.diffusion)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = diffusion.training_loss(lambda x_t, steps: model(x_t, steps, text, **extra), x).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("kind", ["base", "sr"])
def test_channels_last_gives_the_same_outputs(kind):
    config = tiny_configs()[kind]
    model = random_cuda_model(config)
    x, t, text, extra = make_inputs(config)
    with torch.no_grad():
        reference = model(x, t, text, **extra)
        model = model.to(memory_format=torch.channels_last)
        x_cl, _, _, extra_cl = make_inputs(config, memory=torch.channels_last)
        got = model(x_cl, t, text, **extra_cl)
    assert relative_error(got, reference) < 1e-2  # TF32 convolutions pick other algorithms


def test_compile_matches_eager_forward_and_backward():
    config = tiny_configs()["base"]
    model = random_cuda_model(config)
    compiled = torch.compile(model)
    x, t, text, _ = make_inputs(config)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager = model(x, t, text)
        fast = compiled(x, t, text)
    assert relative_error(fast, eager) < 0.05
    fast.float().pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("kind", ["base", "sr"])
def test_ddp_over_nccl_with_one_process_matches_the_plain_model(kind):
    """Two bf16 steps (a second one catches parameters DDP never saw a gradient for)."""
    from torch.nn.parallel import DistributedDataParallel

    config = tiny_configs()[kind]
    torch.distributed.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        plain, wrapped = random_cuda_model(config), random_cuda_model(config)
        ddp = DistributedDataParallel(wrapped, device_ids=[0])
        x, t, text, extra = make_inputs(config)
        for net in (plain, ddp):
            for _ in range(2):
                net.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    net(x, t, text, **extra).float().pow(2).mean().backward()
        for (name, a), b in zip(plain.named_parameters(), wrapped.parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=1e-3, atol=1e-5), name
    finally:
        torch.distributed.destroy_process_group()


def _cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "glyphfuse", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("cuda") / "data"
    _cli("synth-fonts", str(data), "--recipe", "lines64", "--size", "48", "--font-size", "9", "--count", "16")
    return data


def test_trainer_with_compile_on_cuda_checkpoints_and_resumes(tiny_data, tmp_path):
    run = tmp_path / "run"
    common = ["train-base", str(tiny_data), "--out", str(run), "--model", str(RECIPE / "tiny.json"), "--batch-size", "4",
              "--workers", "2", "--device", "cuda", "--compile", "--sample-every", "2", "--no-progress"]
    _cli(*common, "--steps", "2")
    resumed = _cli(*common, "--steps", "4")
    assert "resuming" in resumed.stdout + resumed.stderr
    model, _ = load_checkpoint(run / "checkpoints" / "step_4")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_torchrun_one_process_on_cuda(tiny_data, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "glyphfuse", "train-base",
         str(tiny_data), "--out", str(run), "--model", str(RECIPE / "tiny.json"), "--batch-size", "4", "--steps", "2",
         "--workers", "0", "--device", "cuda", "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_2"


def test_tiny_recipe_runs_on_cuda(tmp_path):
    work = tmp_path / "gpu128"
    for stages in GPU_COMMANDS:
        proc = run_stages(work, tmp_path / ("out-" + "-".join(stages)), *stages, GPU128_DEVICE="cuda")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    load_checkpoint(tmp_path / "out-sr-eval" / "gpu128-sr256", device="cuda")
    assert os.path.getsize(work / "eval" / "sr_lines.png") > 0
