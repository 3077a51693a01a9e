"""Super-resolution: compatibility checks, two-stage upsampling, train-sr (runs, resumes, grids).

A 16 px ``tiny`` base and its 32 px SR model, a few steps on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from glyphfuse import cli
from glyphfuse.core.checkpoint import WEIGHTS_NAME, load_checkpoint, save_checkpoint
from glyphfuse.core.config import get_preset, sr_config_for
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.model import GlyphModel
from glyphfuse.sampling.generation import generate, save_images
from glyphfuse.sampling.sr import check_sr_compatible, upsample_with_sr
from glyphfuse.training.run_folder import find_latest_checkpoint
from glyphfuse.training.sr import init_from_checkpoint, make_low_res, train_sr
from glyphfuse.training.loop import TrainConfig, train

from helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from glyphfuse.training.warm_start import warm_start_checkpoint


def base_config():
    return dataclasses.replace(get_preset("tiny"), name="tiny16", image_size=16)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(base checkpoint, warm-started 32 px SR checkpoint)."""
    root = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    save_checkpoint(root / "base", GlyphModel(base_config()), base_config())
    sr_path, _ = warm_start_checkpoint(root / "base", root / "sr", sr_size=32)
    return root / "base", sr_path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for i in range(8):
        image = Image.new("L", (32, 32), 255 - 9 * i)
        ImageDraw.Draw(image).text((2, 10), f"s{i}", fill=0)
        image.save(root / f"img{i}.png")
        (root / f"img{i}.txt").write_text(f"s{i}", encoding="utf-8")
    return root


def test_check_sr_compatible():
    base = base_config()
    check_sr_compatible(base, sr_config_for(base, 32))  # fine
    check_sr_compatible(base, sr_config_for(base, 64))
    with pytest.raises(GlyphfuseError, match="upsamples 32 px images but .* makes 16 px"):
        check_sr_compatible(base, sr_config_for(get_preset("tiny"), 64))
    rgb = sr_config_for(dataclasses.replace(base, channels=3), 32)
    with pytest.raises(GlyphfuseError, match="channel"):
        check_sr_compatible(base, rgb)
    longer = sr_config_for(base, 32)
    longer.text = dataclasses.replace(longer.text, max_length=64)
    with pytest.raises(GlyphfuseError, match="text encoder settings differ .*max_length 64 vs 48"):
        check_sr_compatible(base, longer, sr_where="ckpt/sr")
    with pytest.raises(GlyphfuseError, match="not a super-resolution model"):
        check_sr_compatible(base, base)


def test_two_stage_writes_an_upsampled_image(checkpoints, tmp_path):
    base, base_cfg = load_checkpoint(checkpoints[0])
    sr, sr_cfg = load_checkpoint(checkpoints[1])
    check_sr_compatible(base_cfg, sr_cfg)
    prompts = ["hi", "a\nb"]
    low = generate(base, base_cfg, prompts, steps=2, guidance=1.0, seed=5)
    assert low.shape == (2, 1, 16, 16)
    high = upsample_with_sr(sr, sr_cfg, prompts, low, steps=2, seed=5, guidance=2.0)
    assert high.shape == (2, 1, 32, 32) and high.abs().max() <= 1.0
    again = upsample_with_sr(sr, sr_cfg, prompts[:1], low[:1], steps=2, seed=5, guidance=2.0)
    assert torch.equal(again[0], high[0])  # deterministic, independent of the batch
    noisy = upsample_with_sr(sr, sr_cfg, prompts, low, steps=2, seed=5, low_res_noise=0.3)
    assert noisy.shape == high.shape
    paths = save_images(high, tmp_path / "two_stage.png")
    with Image.open(paths[0]) as image:
        assert image.size == (32, 32)
    with pytest.raises(GlyphfuseError, match=r"low-res images have shape \(2, 1, 32, 32\), expected \(2, 1, 16, 16\)"):
        upsample_with_sr(sr, sr_cfg, prompts, high, steps=2)
    with pytest.raises(GlyphfuseError, match="not a super-resolution model"):
        upsample_with_sr(base, base_cfg, prompts, low, steps=2)


def test_sr_starts_from_the_noised_bicubic_upsample(checkpoints):
    """sr_start: near 0 the SR output stays at the bicubic upsample of its input; at 1 (pure noise)
    a random SR model draws something else; the setting is checked."""
    sr, sr_cfg = load_checkpoint(checkpoints[1])
    prompts = ["hi", "a\nb"]
    low = torch.linspace(-1, 1, 2 * 16 * 16).view(2, 1, 16, 16)
    bicubic = F.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False).clamp(-1, 1)
    near = upsample_with_sr(sr, sr_cfg, prompts, low, steps=4, seed=1, start=0.002)
    far = upsample_with_sr(sr, sr_cfg, prompts, low, steps=4, seed=1, start=1.0)
    assert (near - bicubic).abs().mean() < 0.05 < (far - bicubic).abs().mean()
    again = upsample_with_sr(sr, sr_cfg, prompts[1:], low[1:], steps=4, seed=2, start=0.3)
    both = upsample_with_sr(sr, sr_cfg, prompts, low, steps=4, seed=1, start=0.3)
    assert torch.equal(again[0], both[1])  # image i's noise comes from seed + i, also from the start image
    with pytest.raises(GlyphfuseError, match=r"sr_start must be a fraction of the timesteps in \(0, 1\], got 0.0"):
        upsample_with_sr(sr, sr_cfg, prompts, low, steps=4, start=0.0)


def test_training_pairs_are_area_downsampled():
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    assert torch.allclose(make_low_res(images, 16), F.avg_pool2d(images, 2), atol=1e-6)
    blurred = make_low_res(images, 16, blur=True)
    assert blurred.shape == (3, 1, 16, 16) and not torch.allclose(blurred, F.avg_pool2d(images, 2))


def _overrides(**changes):
    values = dict(
        batch_size=4, lr=1e-3, warmup_steps=1, max_steps=4, num_workers=0, checkpoint_every=2, keep_last=2,
        sample_every=0, log_every=1, device="cpu", progress=False, ema_decay=0.9, seed=3, sr_blur=True,
    )
    values.update(changes)
    return values


def test_train_sr_with_t_max_trains_only_low_noise_levels(checkpoints, data_dir, tmp_path):
    with pytest.raises(GlyphfuseError, match=r"t_max must be a fraction of the timesteps in \(0, 1\], got 1.5"):
        TrainConfig(data=str(data_dir), t_max=1.5).validate()
    result = train_sr(data_dir, tmp_path / "run", init=checkpoints[1], overrides=_overrides(max_steps=2, sample_every=2, t_max=0.2))
    assert result.step == 2 and (tmp_path / "run" / "samples" / "step_2.png").is_file()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["t_max"] == 0.2


def test_train_sr_starts_from_init_and_resumes_exactly(checkpoints, data_dir, tmp_path):
    init = checkpoints[1]
    model = GlyphModel(sr_config_for(base_config(), 32))
    init_from_checkpoint(init)(model)
    for name, tensor in load_file(str(init / WEIGHTS_NAME)).items():
        assert torch.equal(model.state_dict()[name], tensor)

    straight = train_sr(data_dir, tmp_path / "a", init=init, overrides=_overrides())
    assert straight.step == 4 and all(torch.isfinite(torch.tensor(loss)) for _, loss in straight.losses)
    steps = []

    class Killed(Exception):
        pass

    def kill_after_3(step, metrics):  # the process "dies" after step 3, without a checkpoint for it
        steps.append(step)
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        train_sr(data_dir, tmp_path / "b", init=init, overrides=_overrides(), on_step=kill_after_3)
    assert steps[-1] == 3 and find_latest_checkpoint(tmp_path / "b").name == "step_2"
    resumed = train_sr(data_dir, tmp_path / "b", overrides={})  # no --init needed to resume
    assert resumed.step == 4
    a = load_file(str(find_latest_checkpoint(tmp_path / "a") / WEIGHTS_NAME))
    b = load_file(str(find_latest_checkpoint(tmp_path / "b") / WEIGHTS_NAME))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["unet.out.2.weight"], load_file(str(init / WEIGHTS_NAME))["unet.out.2.weight"])  # it trained


def test_train_sr_writes_low_res_sr_truth_grid(checkpoints, data_dir, tmp_path):
    result = train_sr(data_dir, tmp_path / "run", init=checkpoints[1], overrides=_overrides(max_steps=2, sample_every=2, sample_steps=2))
    grid = tmp_path / "run" / "samples" / "step_2.png"
    assert result.step == 2 and grid.is_file()
    with Image.open(grid) as image:
        # 3 columns (low-res | SR | ground truth) of 32 px, 8 rows (one per sample prompt / example), 2 px padding
        assert image.size == (3 * 34 + 2, 8 * 34 + 2)


def test_train_sr_refuses_wrong_inputs(checkpoints, data_dir, tmp_path):
    with pytest.raises(GlyphfuseError, match="needs --init"):
        train_sr(data_dir, tmp_path / "x", overrides=_overrides())
    with pytest.raises(GlyphfuseError, match="not a super-resolution checkpoint"):
        train_sr(data_dir, tmp_path / "y", init=checkpoints[0], overrides=_overrides())
    with pytest.raises(GlyphfuseError, match="not a super-resolution model"):
        train_sr(data_dir, tmp_path / "z", model="tiny", overrides=_overrides())


def test_the_trainer_refuses_an_sr_model_without_its_low_res_inputs(data_dir, tmp_path):
    config = TrainConfig(model=sr_config_for(base_config(), 32).to_dict(), data=str(data_dir), **_overrides())
    with pytest.raises(GlyphfuseError, match=r"super-resolution model .*glyphfuse\.training\.sr\.train_sr \(glyphfuse train-sr\)"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cli_train_sr(checkpoints, data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["glyphfuse", "train-sr", str(data_dir), "--init", str(checkpoints[1]), "--out", str(out), "--steps", "1", "--batch-size", "4",
            "--workers", "0", "--device", "cpu", "--no-progress", "--sample-every", "0", "--blur", "--lr", "1e-3"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code in (0, None), capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["sr_blur"] is True and run["model"]["low_res_size"] == 16 and run["max_steps"] == 1
    assert find_latest_checkpoint(out).name == "step_1"
