"""Issue 12: the failures a hostile test pass found, one or more tests per case.

Every user-facing failure must be ONE line on stderr ("error: ..." naming what and where), exit
status != 0, no traceback, and nothing lost: checkpoints, inputs and outputs stay intact. The CLI
runs in-process through ``glyphfuse.cli.main`` (the console-script entry point), except where a
second real process is the point (locks, signals, kill -9). Micro models (16 px) on the CPU.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from glyphfuse import cli
from glyphfuse.sampling import generation as sampling
from glyphfuse.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint, save_checkpoint
from glyphfuse.core.config import ModelConfig, get_preset
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.images import load_image
from glyphfuse.data.imagefolder import METADATA_FILE, ImageTextDataset, scan_image_folder
from glyphfuse.training.run_folder import LOCK, find_latest_checkpoint
from glyphfuse.training.loop import TrainConfig, train
from helpers import micro_config, one_torch_thread, random_model, run_cli  # noqa: F401 (one_torch_thread: autouse fixture)

REPO = Path(__file__).resolve().parents[1]


# -- helpers ------------------------------------------------------------------------------------


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """Exit 1 and one "error: ..." line, the last on stderr (progress lines may precede it),
    holding every needle; no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error: ") for line in lines) == 1, err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> hash)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_data(root: Path, count: int, size: int = 16, start: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        image = Image.new("L", (size, size), 255 - 9 * i)
        ImageDraw.Draw(image).text((1, 2), f"{i}", fill=0)
        image.save(root / f"img{i:02d}.png")
        (root / f"img{i:02d}.txt").write_text(f"w{i}", encoding="utf-8")
    return root


def micro_train_config(data: Path, **changes) -> TrainConfig:
    values = dict(
        model=micro_config().to_dict(), data=str(data), batch_size=2, lr=1e-3, warmup_steps=1, max_steps=2, num_workers=0,
        checkpoint_every=1, keep_last=0, sample_every=0, log_every=1, device="cpu", progress=False, seed=1,
    )
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def micro_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "micro.json"
    path.write_text(micro_config().to_json())
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"), 6)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    config = micro_config()
    path = tmp_path_factory.mktemp("ckpt") / "base"
    save_checkpoint(path, random_model(config), config)
    return path


def train_args(data: Path, out: Path, micro_json: Path, *extra) -> list:
    return ["train-base", data, "--out", out, "--model", micro_json, "--steps", "2", "--batch-size", "2", "--workers", "0",
            "--checkpoint-every", "1", "--sample-every", "0", "--device", "cpu", "--no-progress", *extra]


# -- (1) warm-start --out never destroys a checkpoint -------------------------------------------


def test_warm_start_onto_its_own_input_is_refused_and_the_input_survives(tmp_path, monkeypatch, capsys):
    checkpoint = save_checkpoint(tmp_path / "base", random_model(micro_config()), micro_config())  # not the shared one: it is at risk
    before = digest(checkpoint)
    for extra in ([], ["--overwrite"]):
        code, _, err = run_cli(monkeypatch, capsys, "warm-start", checkpoint, "--out", checkpoint, "--sr-size", "32", *extra)
        assert_one_line_error(code, err, str(checkpoint), "input checkpoint")
    assert digest(checkpoint) == before


def test_warm_start_never_replaces_a_run_or_its_training_checkpoints(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json))
    assert code == 0, err
    before = digest(run)
    step = run / "checkpoints" / "step_2"
    attempts = [
        [run, "--out", run],  # the run folder holds the input checkpoint
        [run, "--out", step, "--overwrite"],  # the input itself, reached through the run folder
        [run / "checkpoints" / "step_1", "--out", step, "--overwrite"],  # another run's training state
    ]
    for args in attempts:
        code, _, err = run_cli(monkeypatch, capsys, "warm-start", *args, "--sr-size", "32")
        assert_one_line_error(code, err)
    assert digest(run) == before
    load_checkpoint(step)


def test_warm_start_needs_overwrite_for_a_non_empty_folder(tmp_path, monkeypatch, capsys):
    checkpoint = save_checkpoint(tmp_path / "base", random_model(micro_config()), micro_config())
    taken = tmp_path / "taken"
    save_checkpoint(taken, random_model(micro_config(), seed=5), micro_config())
    before = digest(taken)
    code, _, err = run_cli(monkeypatch, capsys, "warm-start", checkpoint, "--out", taken, "--sr-size", "32")
    assert_one_line_error(code, err, str(taken), "--overwrite")
    assert digest(taken) == before
    code, out, err = run_cli(monkeypatch, capsys, "warm-start", checkpoint, "--out", taken, "--sr-size", "32", "--overwrite")
    assert code == 0, err
    assert load_checkpoint(taken)[1].low_res_size == 16  # replaced by the SR model, as asked
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    code, _, err = run_cli(monkeypatch, capsys, "warm-start", checkpoint, "--out", notes, "--sr-size", "32", "--overwrite")
    assert_one_line_error(code, err, "not a glyphfuse checkpoint")
    assert (notes / "todo.txt").read_text() == "mine"


# -- (2) one trainer per run folder ---------------------------------------------------------------

HOLDER = "import sys; from glyphfuse.training.run_folder import RunLock; lock = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); sys.stdin.read(); lock.release()"


def _lock_holder(run: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_trainer_on_a_run_folder_is_refused(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    holder = _lock_holder(run)  # another process trains into `run`
    try:
        code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json))
        assert_one_line_error(code, err, str(run), "another trainer", f"pid {holder.pid}")
        assert sorted(p.name for p in run.iterdir()) == [LOCK]  # nothing written, nothing replaced
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json))  # released on exit
    assert code == 0, err
    assert "did not exit cleanly" not in err
    assert (run / LOCK).read_text() == ""  # a clean exit empties the lock file


def test_a_killed_trainers_lock_is_taken_over_and_reported(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    holder = _lock_holder(run)
    holder.kill()  # kill -9: no clean release
    holder.wait(timeout=60)
    holder.stdin.close()
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json))
    assert code == 0, err
    assert f"pid {holder.pid}" in err and "did not exit cleanly" in err
    assert find_latest_checkpoint(run).name == "step_2"


# -- (3) unwritable outputs: one line, checked before the work ------------------------------------


@pytest.fixture
def no_sampling(monkeypatch):
    monkeypatch.setattr(sampling, "generate", lambda *a, **k: pytest.fail("sampled before checking -o"))


@pytest.mark.parametrize("out, needle", [
    ("/proc/glyphfuse-test.png", "/proc/glyphfuse-test.png: cannot write"),
    ("{tmp}/a-file/out.png", "a-file is a file, not a folder"),
    ("{tmp}/out.xyz", "unknown image file extension"),
    ("{tmp}", "is a folder"),
])
def test_sample_checks_its_output_before_sampling(checkpoint, tmp_path, monkeypatch, capsys, no_sampling, out, needle):
    (tmp_path / "a-file").write_text("x")
    out = out.format(tmp=tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "sample", "hi", "-o", out, "-c", checkpoint, "--steps", "2", "--device", "cpu")
    assert_one_line_error(code, err, needle)


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real_fsync = os.fsync

    def fsync(fd):
        if "step_2" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json))
    assert_one_line_error(code, err, str(run / "checkpoints" / "step_2"), "No space left on device", "step_1")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert find_latest_checkpoint(run).name == "step_1"
    load_checkpoint(run / "checkpoints" / "step_1")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_1"]  # no half-written leftovers


def test_ocr_rank_report_onto_an_unwritable_path_fails_before_ocr(tmp_path, monkeypatch, capsys):
    from glyphfuse.ocr import ranking

    write_data(tmp_path / "images", 1, size=32)
    monkeypatch.setattr(ranking, "rank_folder", lambda *a, **k: pytest.fail("OCR ran before the --json path was checked"))
    code, _, err = run_cli(monkeypatch, capsys, "ocr-rank", tmp_path / "images", "--json", "/sys/glyphfuse-rank.json")
    assert_one_line_error(code, err, "/sys/glyphfuse-rank.json", "cannot write")


def test_read_only_file_system_while_writing_reports_is_one_line(tmp_path, monkeypatch, capsys):
    from glyphfuse.core.files import write_text_atomic

    def read_only(*args):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(GlyphfuseError, match=r"report\.json: cannot write \(Read-only file system\)"):
        write_text_atomic(tmp_path / "report.json", "{}")
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


def test_synth_fonts_into_an_unwritable_folder_is_one_line(monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "synth-fonts", "/sys/glyphfuse-synth", "--count", "2", "--size", "32")
    assert_one_line_error(code, err, "/sys/glyphfuse-synth")


def test_unforeseen_os_errors_still_end_as_one_line(monkeypatch, capsys):
    def explode():
        raise PermissionError(errno.EACCES, "Permission denied", "/some/where")

    monkeypatch.setattr(cli, "app", explode)
    code, _, err = run_cli(monkeypatch, capsys)
    assert_one_line_error(code, err, "/some/where: Permission denied")


# -- (4) non-finite numbers in sampling --------------------------------------------------------------


@pytest.mark.parametrize("option, value", [("--guidance", "nan"), ("--guidance", "inf"), ("--eta", "inf"), ("--sr-guidance", "-inf")])
def test_non_finite_sampling_options_are_refused_at_parse_time(checkpoint, tmp_path, monkeypatch, capsys, no_sampling, option, value):
    code, _, err = run_cli(monkeypatch, capsys, "sample", "hi", "-o", tmp_path / "out.png", "-c", checkpoint, option, value)
    assert_one_line_error(code, err, option, "finite")
    assert not (tmp_path / "out.png").exists()


def test_nan_weights_are_refused_when_loaded(tmp_path, monkeypatch, capsys):
    config = micro_config()
    model = random_model(config)
    with torch.no_grad():
        model.unet.out[-1].weight[0, 0, 0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan", model, config)
    code, _, err = run_cli(monkeypatch, capsys, "sample", "hi", "-o", tmp_path / "out.png", "-c", tmp_path / "nan", "--steps", "2")
    assert_one_line_error(code, err, str(tmp_path / "nan" / WEIGHTS_NAME), "NaN", "unet.out.2.weight")
    assert not (tmp_path / "out.png").exists()


def test_a_sample_that_goes_non_finite_stops_naming_the_step(checkpoint, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "sample", "hi", "-o", tmp_path / "out.png", "-c", checkpoint, "--steps", "3", "--guidance", "1e300", "--device", "cpu")
    assert_one_line_error(code, err, "non-finite", "at step 1 of 3")
    assert not (tmp_path / "out.png").exists()
    model, config = load_checkpoint(checkpoint)
    with torch.no_grad():
        model.unet.input_conv.weight.fill_(float("nan"))  # weights that went bad in memory
    with pytest.raises(GlyphfuseError, match="at step 1 of 2"):
        sampling.generate(model, config, ["hi"], steps=2, guidance=1.0)


# -- (5) hostile or mistyped config.json ------------------------------------------------------------


@pytest.mark.parametrize("section, key, value, needle", [
    ("unet", "base_channels", "sixteen", "model.unet.base_channels: expected an integer, got 'sixteen'"),
    ("unet", "channel_mult", "1,2,2", "model.unet.channel_mult: expected a list"),
    ("unet", "base_channels", 1_000_000, "model.unet.base_channels: 1000000 is outside the sane range"),
    ("diffusion", "num_timesteps", 1e10, "model.diffusion.num_timesteps: 10000000000 is outside the sane range"),
    ("unet", "patch_size", 0, "model.unet.patch_size: 0 is outside the sane range"),
    ("text", "column_embedding", "yes", "model.text.column_embedding: expected true or false"),
    (None, "channels", 2, "model.channels: must be 1 (grayscale) or 3 (RGB)"),
])
def test_hostile_checkpoint_config_is_one_line_naming_the_field(checkpoint, tmp_path, monkeypatch, capsys, section, key, value, needle):
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    header = json.loads((checkpoint / CONFIG_NAME).read_text())
    (header["model"][section] if section else header["model"])[key] = value
    (hostile / CONFIG_NAME).write_text(json.dumps(header))
    (hostile / WEIGHTS_NAME).write_bytes((checkpoint / WEIGHTS_NAME).read_bytes())
    started = time.monotonic()
    for command in (["info", "-c", hostile], ["sample", "hi", "-o", tmp_path / "x.png", "-c", hostile, "--steps", "2"]):
        code, _, err = run_cli(monkeypatch, capsys, *command)
        assert_one_line_error(code, err, str(hostile / CONFIG_NAME), needle)
    assert time.monotonic() - started < 30  # refused, not attempted


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # a regression fails here instead of OOM-killing the box


def test_a_model_config_too_large_to_train_is_refused_before_allocating(data_dir, tmp_path):
    huge = micro_config().to_dict()  # every value within its range; together ~50B parameters
    huge["unet"]["base_channels"], huge["unet"]["channel_mult"] = 1024, [4, 4, 4, 4, 4, 4, 4, 4]
    huge["unet"]["num_res_blocks"], huge["image_size"], huge["name"] = 16, 1024, "huge"
    (tmp_path / "huge.json").write_text(json.dumps(huge))
    args = [str(a) for a in train_args(data_dir, tmp_path / "run", tmp_path / "huge.json")]
    done = subprocess.run([sys.executable, "-m", "glyphfuse", *args], capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory)
    assert_one_line_error(done.returncode, done.stderr, "huge", "B parameters, more than glyphfuse trains")


def test_hostile_train_configs_are_one_line_naming_the_field(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    (tmp_path / "train.json").write_text(json.dumps({"warmup_steps": "four", "sample_prompts": "hello"}))
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, tmp_path / "b", micro_json, "--config", tmp_path / "train.json"))
    assert_one_line_error(code, err, "train.json: warmup_steps: expected an integer, got 'four'")
    (tmp_path / "steps.json").write_text(json.dumps({"sample_steps": 10**9}))
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, tmp_path / "c", micro_json, "--config", tmp_path / "steps.json"))
    assert_one_line_error(code, err, "steps.json: sample_steps 1000000000 is more than")


def test_every_preset_passes_the_validation():
    from glyphfuse.core.config import PRESETS

    for name in PRESETS:
        config = get_preset(name)
        assert ModelConfig.from_dict(config.to_dict()) == config


# -- (6) corrupt images found inside DataLoader workers -------------------------------------------


def test_data_problems_lists_corrupt_images_found_in_workers(tmp_path):
    data = write_data(tmp_path / "data", 6)
    full = (data / "img05.png").read_bytes()
    (data / "img05.png").write_bytes(full[: len(full) // 2])  # truncated: found only when decoded
    run = tmp_path / "run"
    result = train(micro_train_config(data, num_workers=2, max_steps=3, checkpoint_every=0), run)
    assert result.step == 3
    report = (run / "data_problems.txt").read_text()
    assert "img05.png" in report and "corrupt" in report
    assert report.count("img05.png") == 1  # reported once, though two workers met it


# -- (7) bad data is reported, never silently used ---------------------------------------------------


def test_overlong_transcripts_tiny_images_and_sr_sized_data_are_skipped_and_reported(tmp_path, capsys):
    data = write_data(tmp_path / "data", 4)
    (data / "long.txt").write_text("x" * 10_000)
    Image.new("L", (16, 16), 200).save(data / "long.png")
    (data / "dot.txt").write_text("dot")
    Image.new("L", (1, 1), 0).save(data / "dot.png")
    run = tmp_path / "run"
    result = train(micro_train_config(data, max_steps=4, checkpoint_every=0, batch_size=2), run)
    assert result.step == 4
    report = (run / "data_problems.txt").read_text()
    assert "long.png: transcript longer than the model's max_length of 48 tokens" in report
    assert "dot.png: smaller than the model's 16 px" in report
    err = capsys.readouterr().err
    assert "skipped 1 unusable file(s)" in err and "skipped 1 unusable image(s) while training" in err
    # an SR model (32 px) on 16 px images: every image is too small, nothing is trained on
    dataset = ImageTextDataset(data, image_size=32, log=False)
    with pytest.raises(GlyphfuseError, match=r"no image is usable \(6 x smaller than the model's 32 px"):
        dataset[0]


def test_train_sr_on_images_smaller_than_the_sr_size_is_a_clear_error(data_dir, checkpoint, tmp_path, monkeypatch, capsys):
    from glyphfuse.training.warm_start import warm_start_checkpoint

    sr, _ = warm_start_checkpoint(checkpoint, tmp_path / "sr", sr_size=32)
    code, _, err = run_cli(monkeypatch, capsys, "train-sr", data_dir, "--init", sr, "--out", tmp_path / "run", "--steps", "1",
                           "--batch-size", "2", "--workers", "0", "--device", "cpu", "--no-progress")
    assert_one_line_error(code, err, "no image is usable", "smaller than the model's 32 px")
    assert find_latest_checkpoint(tmp_path / "run") is None


# -- (8) seeds ---------------------------------------------------------------------------------------


def test_huge_seeds_are_refused(checkpoint, data_dir, micro_json, tmp_path, monkeypatch, capsys, no_sampling):
    huge = str(10**23)
    code, _, err = run_cli(monkeypatch, capsys, "sample", "hi", "-o", tmp_path / "o.png", "-c", checkpoint, "--seed", huge)
    assert_one_line_error(code, err, "--seed must be between 0 and")
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, tmp_path / "run", micro_json, "--seed", huge))
    assert_one_line_error(code, err, "--seed must be between 0 and")
    (tmp_path / "seed.json").write_text(json.dumps({"seed": 10**23}))
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, tmp_path / "run", micro_json, "--config", tmp_path / "seed.json"))
    assert_one_line_error(code, err, "seed must be between 0 and")


# -- (9) user experience ---------------------------------------------------------------------------


def test_ocr_rank_and_eval_show_ocr_progress(tmp_path, monkeypatch, capsys):
    folder = write_data(tmp_path / "images", 3, size=32)
    code, _, err = run_cli(monkeypatch, capsys, "ocr-rank", folder)
    assert code == 0, err
    assert "OCR" in err and "3/3" in err
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--ground-truth", folder)
    assert code == 0, err
    assert "OCR" in err and "3/3" in err


def test_no_progress_prints_a_line_every_log_every_steps(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, tmp_path / "run", micro_json, "--log-every", "1"))
    assert code == 0, err
    assert "step 1/2" in err and "step 2/2" in err


def test_ctrl_c_is_reported_once_and_a_second_trainer_is_refused_meanwhile(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    args = [str(a) for a in train_args(data_dir, run, micro_json)]
    args[args.index("--steps") + 1], args[args.index("--workers") + 1] = "100000", "2"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    trainer = subprocess.Popen([sys.executable, "-m", "glyphfuse", *args], stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").is_file():  # training (workers running)
            assert trainer.poll() is None and time.monotonic() < deadline, trainer.stderr.read() if trainer.poll() is not None else "no step"
            time.sleep(0.2)
        second = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json))  # two real trainers, one folder
        os.killpg(trainer.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        _, stderr = trainer.communicate(timeout=120)
    finally:
        if trainer.poll() is None:
            os.killpg(trainer.pid, signal.SIGKILL)
    assert trainer.returncode == 130, stderr
    assert stderr.count("SIGINT received") == 1, stderr  # not once more per DataLoader worker
    assert "Traceback" not in stderr
    load_checkpoint(find_latest_checkpoint(run))
    code, _, err = second
    assert_one_line_error(code, err, "another trainer", f"pid {trainer.pid}")


def test_too_long_prompt_names_no_missing_flag(checkpoint, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "sample", "x" * 100, "-o", tmp_path / "o.png", "-c", checkpoint)
    assert_one_line_error(code, err, "shorten it", "48")
    assert "truncation" not in err


def test_decompression_bomb_sized_images_are_one_line_without_warnings(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so a 40 x 40 image is "a 1.6 kpx bomb"
    folder = write_data(tmp_path / "images", 1, size=32)
    Image.new("L", (40, 40), 255).save(folder / "bomb.png")
    (folder / "bomb.txt").write_text("boom")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning would fail the test
        with pytest.raises(GlyphfuseError, match=r"bomb\.png: image is 40x40 \(0\.0 Mpx\), more than the 0\.0 Mpx limit"):
            load_image(folder / "bomb.png")
        code, out, err = run_cli(monkeypatch, capsys, "ocr-rank", folder)
    assert code == 0 and "Warning" not in err and "Mpx limit" in out


def test_training_refuses_images_over_its_pixel_limit(tmp_path, monkeypatch):
    import glyphfuse.data.imagefolder as data_module

    monkeypatch.setattr(data_module, "TRAINING_MAX_PIXELS", 30 * 30, raising=False)
    data = write_data(tmp_path / "data", 2, size=32)
    dataset = ImageTextDataset(data, image_size=16)
    with pytest.raises(GlyphfuseError, match=r"no image is usable \(2 x image is 32x32"):
        dataset[0]


def test_one_bad_byte_skips_one_metadata_row_not_the_file(tmp_path):
    write_data(tmp_path, 3)
    rows = [json.dumps({"file_name": f"img{i:02d}.png", "text": f"meta {i}"}).encode() for i in range(3)]
    rows[1] = rows[1].replace(b"meta", b"m\xffta")
    (tmp_path / METADATA_FILE).write_bytes(b"\n".join(rows) + b"\n")
    examples, problems = scan_image_folder(tmp_path)
    texts = {e.image_path.name: e.text for e in examples}
    assert texts == {"img00.png": "meta 0", "img01.png": "w1", "img02.png": "meta 2"}  # row 2 alone falls back to its .txt
    assert len(problems) == 1 and f"{METADATA_FILE}:2: bad metadata row (not UTF-8" in problems[0]


def test_help_says_that_outputs_are_replaced(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "sample", "--help")
    assert code == 0 and "Existing files of these names are replaced" in " ".join(out.split())


# -- other instances of the same categories -----------------------------------------------------------


def test_file_names_that_look_like_markup_are_printed_verbatim(tmp_path, monkeypatch, capsys):
    data = write_data(tmp_path / "d[" / "]d", 4)  # its path reads ".../d[/]d/...": a closing tag to rich
    (data / "[red]x[-].png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")  # found when loaded
    (data / "[red]x[-].txt").write_text("x")
    (data / "[bold]orphan.png").write_bytes((data / "img00.png").read_bytes())  # no transcript: found when scanned
    result = train(micro_train_config(data, max_steps=5, batch_size=1, checkpoint_every=0), tmp_path / "run")  # one epoch: every image loaded
    assert result.step == 5
    err = capsys.readouterr().err
    assert "d[/]d/[bold]orphan.png: no transcript" in err and "d[/]d/[red]x[-].png: unreadable or corrupt image" in err


def test_sample_prompts_too_long_for_the_model_fail_before_training(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("ok\n" + "y" * 60 + "\n")
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, tmp_path / "run", micro_json, "--sample-every", "1", "--sample-prompts", prompts))
    assert_one_line_error(code, err, "needs 61 tokens", "shorten it")
    assert find_latest_checkpoint(tmp_path / "run") is None


def test_hostile_trainer_json_and_latest_pointer_are_one_line(data_dir, micro_json, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json))
    assert code == 0, err
    trainer = run / "checkpoints" / "step_2" / "trainer.json"
    state = json.loads(trainer.read_text())
    trainer.write_text(json.dumps({**state, "step": "two"}))
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json, "--steps", "3"))
    assert_one_line_error(code, err, str(trainer), "step must be an integer")
    trainer.write_text(json.dumps({**state, "optimizer": {**state["optimizer"], "param_groups": [{"lr": 1}]}}))
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json, "--steps", "3"))
    assert_one_line_error(code, err, "optimizer or RNG state does not fit this run")
    (run / "checkpoints" / "latest").write_bytes(b"step_\xff\n")
    code, _, err = run_cli(monkeypatch, capsys, *train_args(data_dir, run, micro_json, "--steps", "3"))
    assert_one_line_error(code, err, "latest: points at")


# -- sizes that reach an allocation, and the progress flags ----------------------------------------


@pytest.mark.parametrize("option, value, needle", [
    ("--size", 100000, "--size must be between 16 and 2048"),
    ("--count", 10**9, "--count must be between 1 and 10000000"),
    ("--workers", 100000, "--workers must be between 1 and 256"),
])
def test_synth_fonts_bounds_every_size_before_allocating(monkeypatch, capsys, tmp_path, option, value, needle):
    code, _, err = run_cli(monkeypatch, capsys, "synth-fonts", tmp_path / "out", option, value)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_sampling_settings_have_upper_bounds(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "sample", "hi", "-o", tmp_path / "x.png", "--candidates", 100000)
    assert_one_line_error(code, err, "--candidates 100000 is more than the sane maximum")
    code, _, err = run_cli(monkeypatch, capsys, "sample", "hi", "-o", tmp_path / "x.png", "--steps", 10**7)
    assert_one_line_error(code, err, "--steps")


@pytest.mark.parametrize("command", ["synth-fonts", "train-base", "train-sr", "sample", "eval", "ocr-rank"])
def test_every_long_running_command_takes_no_progress(command):
    result = CliRunner().invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--no-progress" in result.output


def test_synth_fonts_no_progress_prints_no_bar(monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, "synth-fonts", tmp_path / "out", "--count", 3, "--size", 32, "--no-progress")
    assert code == 0 and "wrote 3 images" in out + err
    assert "━" not in out + err
