"""Training loop: exact resume, crash-safe checkpoints, torchrun, bad data, NaN stop, CLI.

Everything runs the ``tiny`` preset on 12 generated 32 px images, a few steps, on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file
from typer.testing import CliRunner

from glyphfuse.training import run_folder
from glyphfuse.training.batches import epoch_shard
from glyphfuse.cli import app
from glyphfuse.core import checkpoint as checkpoint_module
from glyphfuse.core.checkpoint import load_checkpoint, load_safetensors
from glyphfuse.core.diffusion import GaussianDiffusion
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data.prompts import DEFAULT_SAMPLE_PROMPTS, load_prompt_file
from glyphfuse.training.run_folder import find_latest_checkpoint
from glyphfuse.training.sr import prepare_super_resolution_batch
from glyphfuse.training.loop import TrainConfig, train

from helpers import one_torch_thread  # noqa: F401 (autouse fixture)

REPO = Path(__file__).resolve().parents[1]
STEPS = 5  # 12 images / batch 4 = 3 steps per epoch: the runs cross an epoch boundary


def _write_images(root: Path, count: int, start: int = 0) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        image = Image.new("L", (32, 32), 255 - 7 * i)
        ImageDraw.Draw(image).text((2, 10), f"w{i}", fill=0)
        image.save(root / f"img{i:02d}.png")
        (root / f"img{i:02d}.txt").write_text(f"w{i}", encoding="utf-8")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    _write_images(root, 12)
    return root


def tiny_config(data: Path, **changes) -> TrainConfig:
    values = dict(
        model="tiny", data=str(data), batch_size=4, lr=1e-3, warmup_steps=2, max_steps=STEPS, num_workers=0,
        checkpoint_every=2, keep_last=2, sample_every=0, log_every=1, device="cpu", progress=False,
        text_dropout=0.25, ema_decay=0.9, seed=3,
    )
    values.update(changes)
    return TrainConfig(**values)


class Killed(Exception):
    """Raised from on_step: the process "dies" after that step, without writing a checkpoint."""


def kill_after(steps: int):
    """An on_step hook that kills the run after ``steps`` optimizer steps; ``.steps`` records
    the steps it saw."""

    def on_step(step, metrics):
        on_step.steps.append(step)
        if len(on_step.steps) >= steps:
            raise Killed

    on_step.steps = []
    return on_step


def final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(raw weights, EMA weights) of the run's latest checkpoint."""
    latest = find_latest_checkpoint(run_dir)
    raw = {k[len("model.") :]: v for k, v in load_file(str(latest / "training_state.safetensors")).items() if k.startswith("model.")}
    return raw, load_file(str(latest / "model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)


@pytest.fixture(scope="module")
def reference_run(data_dir, tmp_path_factory) -> Path:
    """An uninterrupted STEPS-step run (checkpoints at steps 2, 4 and 5)."""
    run = tmp_path_factory.mktemp("reference")
    result = train(tiny_config(data_dir), run)
    assert result.step == STEPS and result.checkpoint == run / "checkpoints" / f"step_{STEPS}"
    return run


# -- (1) exact resume ------------------------------------------------------------------------


def test_kill_and_resume_matches_uninterrupted_run(data_dir, reference_run, tmp_path):
    run = tmp_path / "run"
    # "kill" after step 3: no checkpoint for it; the latest is step 2
    killed = kill_after(3)
    with pytest.raises(Killed):
        train(tiny_config(data_dir), run, on_step=killed)
    assert killed.steps[-1] == 3
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_2"
    resumed = train(tiny_config(data_dir), run)
    assert resumed.step == STEPS
    raw, ema = final_state(run)
    ref_raw, ref_ema = final_state(reference_run)
    assert_same_weights(raw, ref_raw)
    assert_same_weights(ema, ref_ema)
    assert any((raw[k] != ema[k]).any() for k in raw)  # EMA is really a different set of weights
    # metrics rows of the steps redone after the kill are not duplicated
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))
    # keep_last=2 pruned the older step folders
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_4", f"step_{STEPS}"]


def test_sigint_finishes_step_checkpoints_and_resumes_exactly(data_dir, reference_run, tmp_path):
    run = tmp_path / "run"

    def interrupt(step, metrics):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    result = train(tiny_config(data_dir), run, on_step=interrupt)
    assert result.interrupted == "SIGINT" and result.exit_code == 130 and result.step == 3
    assert find_latest_checkpoint(run) == run / "checkpoints" / "step_3"
    trainer = json.loads((run / "checkpoints" / "step_3" / "trainer.json").read_text())
    assert (trainer["step"], trainer["epoch"], trainer["index"]) == (3, 1, 0)  # epoch 0 fully used
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    train(tiny_config(data_dir), run)
    for got, want in zip(final_state(run), final_state(reference_run)):
        assert_same_weights(got, want)


# -- (2) crash while writing a checkpoint ---------------------------------------------------------


def test_crash_inside_checkpoint_write_keeps_latest_loadable(data_dir, reference_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_save = checkpoint_module.save_checkpoint

    def dying_save(path, *args, **kwargs):
        if Path(path).name == "step_4":  # leave a half-written temp folder behind, as kill -9 would
            partial = Path(path).parent / "step_4.tmp-dead"
            partial.mkdir()
            (partial / "model.safetensors").write_bytes(b"\x00" * 10)
            raise OSError("simulated crash while writing")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", dying_save)
    with pytest.raises(OSError, match="simulated crash"):
        train(tiny_config(data_dir), run)
    assert find_latest_checkpoint(run) == run / "checkpoints" / "step_2"
    model, _ = load_checkpoint(run / "checkpoints" / "step_2")
    assert not (run / "checkpoints" / "step_4").exists()

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", real_save)
    train(tiny_config(data_dir), run)
    assert not (run / "checkpoints" / "step_4.tmp-dead").exists()  # cleaned at start
    for got, want in zip(final_state(run), final_state(reference_run)):
        assert_same_weights(got, want)


def test_crash_before_pointer_update_resumes_from_previous(data_dir, reference_run, tmp_path, monkeypatch):
    """step_4 is complete but `latest` never moved: resume from step_2 and overwrite step_4."""
    run = tmp_path / "run"
    real_write = run_folder.write_text_atomic

    def dying_write(path, text):
        if path.name == "latest" and text.strip() == "step_4":
            raise KeyboardInterrupt  # the process dies between the rename and the pointer update
        real_write(path, text)

    monkeypatch.setattr(run_folder, "write_text_atomic", dying_write)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data_dir), run)
    assert (run / "checkpoints" / "step_4").is_dir()
    assert find_latest_checkpoint(run) == run / "checkpoints" / "step_2"
    monkeypatch.setattr(run_folder, "write_text_atomic", real_write)
    train(tiny_config(data_dir), run)
    for got, want in zip(final_state(run), final_state(reference_run)):
        assert_same_weights(got, want)


# -- (3) torchrun ------------------------------------------------------------------------------

WORKER = """
import hashlib, sys, torch
from glyphfuse.training.loop import TrainConfig, train
data, run, out = sys.argv[1:4]
config = TrainConfig(model="tiny", data=data, batch_size=2, lr=1e-3, warmup_steps=1, max_steps=3, num_workers=0,
                     checkpoint_every=0, sample_every=0, log_every=1, device="cpu", progress=False, text_dropout=0.25)
result = train(config, run)
digest = hashlib.sha256()
for module in (result.model, result.ema):
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode()); digest.update(tensor.detach().cpu().numpy().tobytes())
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else int(__import__("os").environ["RANK"])
open(f"{out}/rank{rank}.txt", "w").write(f"{result.step} {result.last_loss:.8f} {digest.hexdigest()}")
"""


def test_torchrun_two_processes_hold_identical_weights(data_dir, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(data_dir), str(tmp_path / "run"), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (tmp_path / "rank0.txt").read_text(), (tmp_path / "rank1.txt").read_text()
    assert rank0.startswith("3 ") and rank0 == rank1  # same step, same all-reduced loss, same weights
    assert find_latest_checkpoint(tmp_path / "run").name == "step_3"  # written once, by rank 0
    assert "2 process(es)" in proc.stderr


def test_epoch_shards_are_disjoint_equal_and_reproducible():
    shards = [epoch_shard(10, seed=1, epoch=4, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert len(set(sum(shards, []))) == 9
    assert shards[0] == epoch_shard(10, seed=1, epoch=4, rank=0, world_size=3)
    assert epoch_shard(10, 1, 4) != epoch_shard(10, 1, 5)


# -- (4)/(5) bad data ----------------------------------------------------------------------------


def test_corrupt_files_are_skipped_and_reported(tmp_path):
    data = tmp_path / "data"
    _write_images(data, 8)
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (data / "broken.txt").write_text("broken")
    Image.new("L", (32, 32)).save(data / "orphan.png")  # no transcript
    run = tmp_path / "run"
    result = train(tiny_config(data, max_steps=3, checkpoint_every=0), run)
    assert result.step == 3 and all(torch.isfinite(torch.tensor(l)) for _, l in result.losses)
    report = (run / "data_problems.txt").read_text()
    assert "orphan.png" in report and "broken.png" in report


def test_empty_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GlyphfuseError, match="no usable"):
        train(tiny_config(tmp_path / "empty"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_dataset_smaller_than_batch_is_a_clear_error(tmp_path):
    _write_images(tmp_path / "data", 3)
    with pytest.raises(GlyphfuseError, match="fewer than batch size 4"):
        train(tiny_config(tmp_path / "data"), tmp_path / "run")


# -- (6) NaN -------------------------------------------------------------------------------------


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_loss, calls = GaussianDiffusion.training_loss, []

    def nan_at_step_5(self, *args, **kwargs):  # one micro-batch a step: the 5th call is step 5
        calls.append(1)
        loss = real_loss(self, *args, **kwargs)
        return loss * float("nan") if len(calls) == 5 else loss

    monkeypatch.setattr(GaussianDiffusion, "training_loss", nan_at_step_5)
    with pytest.raises(GlyphfuseError, match=r"at step 5 .*last good checkpoint is .*step_4"):
        train(tiny_config(data_dir), run)
    assert find_latest_checkpoint(run).name == "step_4"
    assert not (run / "checkpoints" / "step_5").exists()
    model, _ = load_checkpoint(run / "checkpoints" / "step_4")
    assert all(torch.isfinite(p).all() for p in model.parameters())


# -- config, prompts, SR preparation ---------------------------------------------------------------


def test_train_config_json_round_trip_and_schedules():
    config = TrainConfig(model="tiny", data="d", lr=2e-4, warmup_steps=10, sample_prompts=["a\nb"])
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.lr_at(0) == pytest.approx(2e-5) and config.lr_at(9) == config.lr_at(500) == 2e-4
    assert config.ema_decay_at(0) == pytest.approx(0.1) and config.ema_decay_at(10**7) == config.ema_decay
    with pytest.raises(GlyphfuseError, match="unknown key"):
        TrainConfig.from_dict({"batchsize": 3})


def test_cosine_schedule_decays_to_its_floor():
    config = TrainConfig(model="tiny", data="d", lr=1e-3, warmup_steps=10, max_steps=110, lr_schedule="cosine", min_lr_ratio=0.1)
    assert config.lr_at(9) == pytest.approx(1e-3)  # the end of warm-up is the peak
    assert config.lr_at(60) == pytest.approx(0.55e-3)  # half-way down: the mean of peak and floor
    assert config.lr_at(110) == config.lr_at(10**6) == pytest.approx(1e-4)
    assert all(config.lr_at(s) >= config.lr_at(s + 1) for s in range(10, 120))
    for bad in ({"lr_schedule": "linear"}, {"min_lr_ratio": 1.5}, {"spike_skip": 0.5}):
        with pytest.raises(GlyphfuseError):
            TrainConfig(model="tiny", data="d", **bad).validate()


def test_spike_guard_skips_outliers_only_after_its_warm_up():
    from glyphfuse.training.spikes import SpikeGuard

    guard = SpikeGuard()
    assert all(guard.accepts(1.0, factor=4.0) for _ in range(60))
    assert not guard.accepts(10.0, factor=4.0) and guard.skipped == 1
    assert guard.accepts(3.0, factor=4.0)  # within 4x of the running average
    assert guard.accepts(100.0, factor=0.0)  # off
    assert SpikeGuard.from_dict(guard.to_dict()) == SpikeGuard(average=guard.average, accepted=guard.accepted, skipped=1)


def test_resume_with_cosine_schedule_and_spike_guard_is_exact(data_dir, tmp_path, monkeypatch):
    from glyphfuse.training import spikes

    monkeypatch.setattr(spikes, "SPIKE_WARMUP_STEPS", 1)
    changes = dict(lr_schedule="cosine", min_lr_ratio=0.2, spike_skip=1.01)
    reference = tmp_path / "reference"
    train(tiny_config(data_dir, **changes), reference)
    run = tmp_path / "run"
    with pytest.raises(Killed):
        train(tiny_config(data_dir, **changes), run, on_step=kill_after(3))
    train(tiny_config(data_dir, **changes), run)
    for (raw, ema), (ref_raw, ref_ema) in [(final_state(run), final_state(reference))]:
        assert_same_weights(raw, ref_raw)
        assert_same_weights(ema, ref_ema)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["skipped_steps"] >= 1  # a 1.01x guard on a noisy tiny run skips some steps
    assert rows[-1]["skipped_steps"] == [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()][-1]["skipped_steps"]
    assert rows[-1]["lr"] < rows[2]["lr"]  # the cosine went down


def test_shipped_prompt_file_matches_the_default_list():
    assert load_prompt_file(REPO / "examples" / "sample_prompts.txt") == list(DEFAULT_SAMPLE_PROMPTS)


def test_super_resolution_batch_preparation():
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    low, level = prepare_super_resolution_batch(images, 8, 0.2, torch.Generator().manual_seed(0), blur=True)
    assert low.shape == (3, 1, 8, 8) and level.shape == (3,)
    assert ((level >= 0) & (level <= 0.2)).all()
    again, level2 = prepare_super_resolution_batch(images, 8, 0.2, torch.Generator().manual_seed(0), blur=True)
    assert torch.equal(low, again) and torch.equal(level, level2)
    clean, zero = prepare_super_resolution_batch(images, 8, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(clean, torch.nn.functional.avg_pool2d(images, 2)) and (zero == 0).all()


# -- (7) CLI -----------------------------------------------------------------------------------------


def test_cli_train_base_trains_samples_and_resumes(data_dir, tmp_path):
    run = tmp_path / "run"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\nhi\nA\\nB\n")
    args = ["train-base", str(data_dir), "--out", str(run), "--model", "tiny", "--steps", "2", "--batch-size", "4",
            "--lr", "1e-3", "--workers", "0", "--sample-every", "2", "--checkpoint-every", "1", "--device", "cpu",
            "--sample-prompts", str(prompts), "--no-progress"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert (run / "samples" / "step_2.png").is_file()
    with Image.open(run / "samples" / "step_2.png") as grid:
        assert grid.size[0] > 2 * 32
    saved = json.loads((run / "run.json").read_text())
    assert saved["batch_size"] == 4 and saved["lr"] == 1e-3 and saved["model"] == "tiny"
    assert saved["sample_prompts"] == ["hi", "A\nB"]
    # same folder again, only --steps given: resumes with the saved settings
    second = CliRunner().invoke(app, ["train-base", str(data_dir), "--out", str(run), "--steps", "3", "--no-progress"])
    assert second.exit_code == 0, second.output
    output = " ".join(second.output.split())
    assert "resuming" in output and "from step 2" in output
    assert find_latest_checkpoint(run).name == "step_3"
    assert json.loads((run / "run.json").read_text())["max_steps"] == 3


def test_cli_train_base_init_starts_a_new_run_from_a_checkpoints_weights(reference_run, data_dir, tmp_path):
    """--init: the new run's model is the checkpoint's config, started from its weights (with lr
    1e-12 nothing moves measurably, so the first checkpoint holds those weights); --init with
    --model is refused; the same command resumes the run."""
    source = find_latest_checkpoint(reference_run)
    run = tmp_path / "from_init"
    args = ["train-base", str(data_dir), "--out", str(run), "--init", str(source), "--steps", "1", "--batch-size", "4",
            "--lr", "1e-12", "--workers", "0", "--sample-every", "0", "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    started = load_safetensors(find_latest_checkpoint(run) / "model.safetensors")
    expected = load_safetensors(source / "model.safetensors")
    assert started.keys() == expected.keys() and all(torch.allclose(started[name], expected[name], atol=1e-8) for name in expected)
    assert json.loads((run / "run.json").read_text())["model"] == json.loads((source / "config.json").read_text())["model"]
    refused = CliRunner().invoke(app, [*args[:6], "--model", "tiny", *args[6:]])
    assert isinstance(refused.exception, GlyphfuseError) and "either --init" in str(refused.exception)
    resumed = CliRunner().invoke(app, [*args, "--steps", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert "from step 1" in " ".join(resumed.output.split()) and find_latest_checkpoint(run).name == "step_2"
    missing = CliRunner().invoke(app, [*args[:5], str(tmp_path / "gone"), *args[6:]])
    assert isinstance(missing.exception, GlyphfuseError) and "gone" in str(missing.exception)
