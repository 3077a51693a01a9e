"""The GPU recipe (examples/recipes/gpu128/) dry-run on the CPU, so that a typo cannot waste GPU minutes.

The whole recipe runs through the same script as on the GPU machine, at tiny scale (GPU128_SCALE=
tiny: a 48 px model, a few images and steps), one device command at a time as its README groups
them, each with its own $OUT; then the CPU stages. The full-scale settings are checked without
training: data flags on a few images, model sizes, what an export brings back, the time budgets.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from glyphfuse.core.checkpoint import load_checkpoint, load_checkpoint_config, read_checkpoint_info, read_model_card, save_checkpoint
from glyphfuse.core.config import load_model_config, sr_config_for
from glyphfuse.core.model import GlyphModel, count_parameters
from glyphfuse.core.shards import INDEX_NAME
from glyphfuse.core.tokenizer import tokenize
from glyphfuse.data.prompts import load_prompts
from glyphfuse.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "examples" / "recipes" / "gpu128"
# the device tool: at most 8 files of 16 MiB, 64 MiB in all, from one command
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20
# the GPU commands as README.md gives them
GPU_COMMANDS = (("data", "base-a"), ("base-b",), ("sr", "eval"))


def run_stages(work: Path, out: Path, *stages: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, WORK=str(work), OUT=str(out), GPU128_SCALE="tiny", GLYPHFUSE=f"{sys.executable} -m glyphfuse")
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny models: threads only contend on a busy 2-core machine
    env.update(env_extra)
    return subprocess.run(["bash", str(RECIPE / "stage.sh"), *stages], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny recipe: the three GPU commands, then score and package on the CPU."""
    work = tmp_path_factory.mktemp("gpu128")
    results = {}
    for stages in GPU_COMMANDS + (("score", "package"),):
        out = work / ("out-" + "-".join(stages))
        results[stages] = (run_stages(work, out, *stages, GPU128_DEVICE="cpu"), out)
        proc = results[stages][0]
        assert proc.returncode == 0, f"stage.sh {' '.join(stages)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return work, results


def test_each_gpu_command_brings_back_its_model_and_logs_within_the_limits(tiny_run):
    work, results = tiny_run
    expected = {("data", "base-a"): "gpu128-base", ("base-b",): "gpu128-base", ("sr", "eval"): "gpu128-sr256"}
    for stages, model in expected.items():
        proc, out = results[stages]
        files = files_under(out)
        names = {path.relative_to(out).as_posix() for path in files}
        assert f"logs-{'-'.join(stages)}.tar.gz" in names
        assert {f"{model}/config.json", f"{model}/{INDEX_NAME}"} <= names
        assert len([n for n in names if re.fullmatch(rf"{model}/model-\d{{5}}-of-\d{{5}}\.safetensors", n)]) >= 2  # sharded
        assert len(files) <= MAX_FILES and all(path.stat().st_size <= MAX_FILE_BYTES for path in files)
        assert all(len(path.relative_to(out).parts) <= 3 for path in files)
        load_checkpoint(out / model)  # the brought-back weights are a complete checkpoint
        assert "comes back:" in proc.stdout


def test_curriculum_is_one_run_resumed_on_the_second_data_set(tiny_run):
    work, results = tiny_run
    assert "resuming" in results[("base-b",)][0].stdout and "from step 2" in results[("base-b",)][0].stdout
    assert (work / "base" / "checkpoints" / "latest").read_text().strip() == "step_4"
    assert Path(json.loads((work / "base" / "run.json").read_text())["data"]) == work / "data" / "b"
    steps = [json.loads(line)["step"] for line in (work / "base" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 4


def test_exported_weights_are_the_runs_ema_in_fp16_and_sr_follows_the_base(tiny_run):
    work, results = tiny_run
    base, base_config = load_checkpoint(results[("base-b",)][1] / "gpu128-base")
    ema, _ = load_checkpoint(work / "base" / "checkpoints" / "step_4")
    for name, tensor in ema.state_dict().items():
        assert torch.equal(base.state_dict()[name], tensor.half().float() if tensor.is_floating_point() else tensor), name
    sr_config = load_checkpoint_config(results[("sr", "eval")][1] / "gpu128-sr256")
    assert sr_config.unet == sr_config_for(base_config, 2 * base_config.image_size).unet
    with tarfile.open(results[("sr", "eval")][1] / "logs-sr-eval.tar.gz") as archive:
        members = set(archive.getnames())
    assert {"eval/base_lines.png", "eval/base_mixed.png", "eval/sr_lines.png", "sr/metrics.jsonl", "logs/sr.log"} <= members


def test_score_and_package_on_the_cpu(tiny_run):
    work, _ = tiny_run
    for name, part in (("eval_base_tiny_prompts", "model"), ("eval_sr_tiny_prompts", "model"), ("ceiling_tiny_prompts", "ground_truth")):
        report = json.loads((work / "score" / f"{name}.json").read_text())
        assert report[part]["summary"]["n"] > 0, name
    assert json.loads((work / "score" / "eval_sr_tiny_prompts.json").read_text())["settings"]["sr_checkpoint"]
    for name, card in (("gpu128-base", "card-base.json"), ("gpu128-sr256", "card-sr256.json")):
        folder = work / "package" / name
        assert read_model_card(folder) == json.loads((RECIPE / card).read_text())
        load_checkpoint(folder)


def test_a_stage_ended_by_its_time_budget_still_exports_and_the_next_resumes(tiny_run):
    work, _ = tiny_run
    out = work / "out-budget"
    proc = run_stages(work, out, "sr", GPU128_STEPS_SR="1000000", GPU128_SECONDS_SR="8")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "time budget of 8s reached" in proc.stdout
    assert int((work / "sr" / "checkpoints" / "latest").read_text().strip().removeprefix("step_")) >= 4
    load_checkpoint(out / "gpu128-sr256")


def test_sr_on_a_fresh_machine_warm_starts_from_the_carried_base_export(tiny_run, tmp_path):
    work, results = tiny_run
    fresh = tmp_path / "fresh"
    (fresh / "export").mkdir(parents=True)
    carried = results[("base-b",)][1] / "gpu128-base"  # what call 2 brought back
    shutil.copytree(carried, fresh / "export" / "gpu128-base")
    proc = run_stages(fresh, tmp_path / "out", "sr")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    source = read_checkpoint_info(fresh / "sr-init")["metadata"]["warm_start_from"]
    assert Path(source) == (fresh / "export" / "gpu128-base").resolve()
    load_checkpoint(tmp_path / "out" / "gpu128-sr256")


def test_base_b_on_a_fresh_machine_starts_from_the_carried_base_a_export(tiny_run, tmp_path):
    work, results = tiny_run
    fresh = tmp_path / "fresh"
    (fresh / "export").mkdir(parents=True)
    carried = results[("data", "base-a")][1] / "gpu128-base"  # what call 1 brought back
    shutil.copytree(carried, fresh / "export" / "gpu128-base")
    proc = run_stages(fresh, tmp_path / "out", "base-b", GPU128_DEVICE="cpu")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "starting stage b from the carried" in proc.stdout + proc.stderr
    run = json.loads((fresh / "base" / "run.json").read_text())
    assert run["model"] == json.loads((carried / "config.json").read_text())["model"]
    load_checkpoint(tmp_path / "out" / "gpu128-base")


def test_stages_out_of_order_or_unknown_fail_at_once_with_one_line(tmp_path):
    proc = run_stages(tmp_path / "w", tmp_path / "out", "base-b")
    output = proc.stdout + proc.stderr  # a stage's output goes through tee into its log
    assert proc.returncode == 1 and "has no checkpoint" in output and "run 'data base-a' first" in output
    proc = run_stages(tmp_path / "w", tmp_path / "out", "data", "base_a")
    assert proc.returncode == 1 and "unknown stage 'base_a'" in proc.stderr
    assert not (tmp_path / "w" / "data").exists()  # refused before any work


def test_full_scale_data_flags_render(tmp_path):
    """The full-scale synth-fonts options (128 and 256 px, six fonts, font sizes) on a few images."""
    proc = run_stages(tmp_path / "w", tmp_path / "out", "data", GPU128_SCALE="full", GPU128_COUNT_A="4", GPU128_COUNT_B="6", GPU128_COUNT_SR="3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from PIL import Image

    for name, size, count in (("a", 128, 4), ("b", 128, 6), ("sr", 256, 3)):
        rows = (tmp_path / "w" / "data" / name / "metadata.jsonl").read_text().splitlines()
        assert len(rows) == count
        assert Image.open(tmp_path / "w" / "data" / name / json.loads(rows[0])["file_name"]).size == (size, size)
    a_texts = [json.loads(row)["text"] for row in (tmp_path / "w" / "data" / "a" / "metadata.jsonl").read_text().splitlines()]
    assert all(text == text.lower() for text in a_texts)  # stage a: lowercase only


def _stage_settings() -> dict[str, int]:
    """The full-scale numbers of stage.sh (the first assignment of each name)."""
    settings: dict[str, int] = {}
    for name, value in re.findall(r"\b(steps_\w+|seconds_\w+|count_\w+)=(\d+)\b", (RECIPE / "stage.sh").read_text()):
        settings.setdefault(name, int(value))
    return settings


def test_full_scale_models_fit_what_comes_back_and_their_prompts():
    base = load_model_config(RECIPE / "base128.json")
    sr = sr_config_for(base, 256)
    for config in (base, sr):
        with torch.device("meta"):
            params = count_parameters(GlyphModel(config))["total"]
        assert params <= 12_000_000, config.name
        shards = -(-2 * params // (15 * 2**20))  # fp16 bytes over 15 MiB shards, rounded up
        assert shards + 2 + 1 <= MAX_FILES  # + index + config, and the command's log archive
    train_base = TrainConfig.load(RECIPE / "train-base.json")
    TrainConfig.load(RECIPE / "train-sr.json")
    texts = list(train_base.sample_prompts) + [p for name in ("words", "lines2", "multiline") for p in load_prompts(name)[0]]
    tokenize(texts, base.text.max_length, max_lines=base.text.max_lines)  # raises when one is too long


def test_full_scale_export_is_two_shards_under_15_mib(tmp_path):
    base = load_model_config(RECIPE / "base128.json")
    path = save_checkpoint(tmp_path / "ckpt", GlyphModel(base), base, dtype="float16", max_shard_bytes=15 * 2**20)
    shards = sorted(path.glob("model-*.safetensors"))
    assert len(shards) == 2 and all(shard.stat().st_size <= 15 * 2**20 for shard in shards)


def test_every_command_fits_its_9_minutes_and_the_caps_follow_each_other():
    s = _stage_settings()
    data_seconds, start_and_export = 90, 45  # estimates: README.md's stage table
    assert data_seconds + s["seconds_a"] + start_and_export <= 9 * 60
    assert s["seconds_b"] + start_and_export <= 9 * 60
    assert s["seconds_sr"] + start_and_export + 60 <= 9 * 60  # + warm-start and the eval grids
    assert s["steps_a"] < s["steps_b"]  # totals: stage b continues stage a's run
    assert TrainConfig.load(RECIPE / "train-base.json").warmup_steps < s["steps_a"] // 4
    readme = (RECIPE / "README.md").read_text()
    commands = re.findall(r"stage\.sh ((?:[a-z-]+ ?)+)", readme)
    assert commands
    for command in commands:
        for stage in command.split():
            assert stage in ("data", "base-a", "base-b", "sr", "eval", "score", "package"), stage
