"""A training run's folder: what the trainer leaves on disk, and how it stays consistent::

    RUN_DIR/
      .lock                         held by the one trainer using the folder (pid, host, start time)
      run.json                      the resolved TrainConfig (model config inline)
      metrics.jsonl                 {"step", "loss", "lr", "images_per_s", "time"} every log_every steps
      data_problems.txt             files skipped (if any): unreadable, corrupt, too small or too large
                                    images, missing, empty or too long transcripts
      samples/step_N.png            EMA sample grids, every sample_every steps
      checkpoints/latest            text "step_N": the newest COMPLETE checkpoint
      checkpoints/step_N/           a checkpoint folder (glyphfuse.core.checkpoint.load_checkpoint):
        model.safetensors             EMA weights (what gets sampled)
        config.json                   the ModelConfig
        training_state.safetensors    raw weights ("model.*"), AdamW tensors ("optimizer.*"),
                                      RNG states ("rng.*", uint8)
        trainer.json                  step, data position (epoch, index), optimizer hyper-parameters
                                      and scalar state, the TrainConfig

* **Crash safety.** A step folder is written under a temporary name and renamed when complete;
  ``latest`` is replaced atomically only afterwards; old step folders are pruned last. A kill at
  any moment leaves ``latest`` pointing at a loadable checkpoint; leftover temporary folders are
  removed at the next start (:func:`make_run_dir`).
* **One trainer per run folder** (:class:`RunLock`): the lock dies with its process, and one
  left by a killed trainer is reported and taken over.
* **Failed writes** (disk full, read-only) are one-line GlyphfuseErrors naming the file.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import save as safetensors_bytes

from glyphfuse.core import checkpoint as checkpoint_folder
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import json_bytes, output_error, read_json, write_bytes_atomic, write_text_atomic
from glyphfuse.core.shards import load_safetensors
from glyphfuse.data.imagefolder import encode_png
from glyphfuse.training.config import TrainConfig

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked
    fcntl = None  # type: ignore[assignment]

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STEP_PREFIX = "step_"
TRAINING_STATE = checkpoint_folder.TRAINING_STATE_NAME
TRAINER_JSON = "trainer.json"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
PROBLEMS = "data_problems.txt"
SAMPLES = "samples"
LOCK = ".lock"


def step_name(step: int) -> str:
    return f"{STEP_PREFIX}{step}"


def step_of(path: Path) -> int | None:
    """N for a folder named step_N, else None."""
    name = path.name
    if name.startswith(STEP_PREFIX) and name[len(STEP_PREFIX) :].isdigit():
        return int(name[len(STEP_PREFIX) :])
    return None


def run_config_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RUN_JSON


# ---------------------------------------------------------------------------------------------
# The latest pointer, the lock, temporaries and pruning
# ---------------------------------------------------------------------------------------------


def find_latest_checkpoint(run_dir: str | Path, repair: bool = True) -> Path | None:
    """The checkpoint folder ``checkpoints/latest`` points at, or None for a fresh run folder.
    A pointer to a missing folder is an error (something deleted it by hand). ``repair``: put
    back a checkpoint that a killed overwrite left moved aside (one process only)."""
    checkpoints = Path(run_dir) / CHECKPOINTS
    pointer = checkpoints / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    target = checkpoints / name
    if repair and not target.exists():
        # save_checkpoint replacing an existing step folder moves it aside as NAME.old-XXXX first;
        # a kill at that moment leaves the pointer's checkpoint only there: put it back.
        aside = sorted(checkpoints.glob(f"{name}.old-*"))
        if aside and (aside[0] / "config.json").is_file():
            os.replace(aside[0], target)
    if step_of(target) is None or not target.is_dir():
        raise GlyphfuseError(f"{pointer}: points at {name!r}, which is not a checkpoint folder in {checkpoints}")
    return target


def resume_checkpoint(run_dir: Path, resume: bool | None) -> Path | None:
    """The checkpoint a run continues from (None: a fresh run). ``resume``: None = the latest
    if there is one; True = there must be one; False = there must be none."""
    latest = find_latest_checkpoint(run_dir, repair=False)
    if latest is None and resume is True:
        raise GlyphfuseError(f"{run_dir}: nothing to resume (no {CHECKPOINTS}/{LATEST})")
    if latest is not None and resume is False:
        raise GlyphfuseError(f"{run_dir}: already holds checkpoints ({latest.name}); resume it or choose another output folder")
    return latest


class RunLock:
    """An exclusive lock on a run folder while one trainer uses it (``RUN_DIR/.lock``).

    A POSIX record lock (lockf): the kernel drops it when its process ends in any way, kill -9
    included, and forked DataLoader workers do not inherit it, so a dead trainer never leaves the
    folder locked. The holder writes its pid, host and start time into the file and empties it
    on a clean release: a lock file found unlocked but not empty means that the previous trainer
    crashed or was killed (``stale`` then describes it). Not held across threads of one process.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self.stale: str | None = None  # the crashed previous holder, if any
        self.unlocked: str | None = None  # why the folder could not be locked, if it could not
        self._handle = None

    @staticmethod
    def _describe(text: str) -> str:
        try:
            holder = json.loads(text)
            return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
        except (ValueError, TypeError, KeyError):
            return "holder unknown"

    def acquire(self) -> "RunLock":
        """Take the lock; GlyphfuseError when another process holds it."""
        if fcntl is None:
            self.unlocked = "this platform has no file locks"
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), "r+", encoding="utf-8")
        except OSError as exc:
            raise output_error(self.path, exc) from None
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = handle.read().strip()
            handle.close()
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise GlyphfuseError(
                    f"{self.path.parent}: another trainer is using this run folder ({self._describe(holder)}); "
                    "wait for it to finish or choose another --out"
                ) from None
            self.unlocked = f"cannot lock {self.path} ({exc.strerror or exc})"  # e.g. a file system without locks
            return self
        previous = handle.read().strip()
        if previous:
            self.stale = self._describe(previous)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(me) + "\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        """Empty the lock file (a clean exit) and unlock it."""
        if self._handle is None:
            return
        try:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.flush()
        except OSError:
            pass  # the lock goes anyway; the next trainer will call this exit a crash
        finally:
            self._handle.close()  # closing drops the lock
            self._handle = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def make_run_dir(run_dir: Path) -> list[Path]:
    """Create ``run_dir`` if it is new, and remove what a killed write left in its checkpoints
    ('.tmp' / '.old-' in the name; returned). Call after find_latest_checkpoint, which may need
    an '.old-' folder."""
    checkpoints = run_dir / CHECKPOINTS
    removed = []
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if checkpoints.is_dir():
            for entry in checkpoints.iterdir():
                if ".tmp" in entry.name or ".old-" in entry.name:
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                    removed.append(entry)
    except OSError as exc:
        raise output_error(run_dir, exc) from None
    return removed


def prune(checkpoints: Path, keep_last: int, protect: Path) -> None:
    """Delete all but the newest ``keep_last`` step folders (never ``protect``)."""
    if keep_last <= 0:
        return
    steps = sorted((p for p in checkpoints.iterdir() if p.is_dir() and step_of(p) is not None), key=step_of)
    for old in steps[:-keep_last]:
        if old.resolve() != protect.resolve():
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Training checkpoints: the EMA checkpoint plus the trainer's state
# ---------------------------------------------------------------------------------------------


def _training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Raw weights, optimizer tensors and RNG states as flat tensors; optimizer scalars as JSON."""
    tensors = {f"model.{name}": value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    state = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return tensors, {"param_groups": state["param_groups"], "state_scalars": scalars}


def write_checkpoint(run_dir: Path, step: int, position: tuple[int, int], ema: torch.nn.Module, model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer, model_config: ModelConfig, config: TrainConfig, device: torch.device,
                     loop_state: dict[str, Any] | None = None) -> Path:
    """Write checkpoints/step_N completely (temp folder + rename, done by save_checkpoint), then
    move ``latest`` to it, then prune old step folders. ``position``: the data position (epoch,
    index) after step N; ``loop_state``: the loop's own scalars (the spike guard's statistics)."""
    checkpoints = run_dir / CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    tensors, optimizer_json = _training_state(model, optimizer, device)
    trainer = {"step": step, "epoch": position[0], "index": position[1], "optimizer": optimizer_json, "config": config.to_dict(),
               "loop": loop_state or {}}
    target = checkpoints / step_name(step)
    checkpoint_folder.save_checkpoint(
        target,
        ema,
        model_config,
        metadata={"step": step, "weights": "ema", "run": str(run_dir)},
        extra_files={
            TRAINING_STATE: safetensors_bytes(tensors, metadata={"step": str(step)}),
            TRAINER_JSON: json_bytes(trainer),
        },
    )
    write_text_atomic(checkpoints / LATEST, target.name + "\n")
    prune(checkpoints, config.keep_last, protect=target)
    return target


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(training-state tensors, trainer.json) of a training checkpoint, checked."""
    state_file, trainer_file = path / TRAINING_STATE, path / TRAINER_JSON
    for needed in (state_file, trainer_file):
        if not needed.is_file():
            raise GlyphfuseError(f"{needed}: missing; {path} is not a resumable training checkpoint")
    tensors = load_safetensors(state_file)
    trainer = read_json(trainer_file, "trainer state")
    if not isinstance(trainer, dict):
        raise GlyphfuseError(f"{trainer_file}: expected a JSON object")
    for key in ("step", "epoch", "index"):
        if type(trainer.get(key)) is not int or trainer[key] < 0:
            raise GlyphfuseError(f"{trainer_file}: {key} must be an integer >= 0, got {trainer.get(key)!r}")
    optimizer = trainer.get("optimizer")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("param_groups"), list) or not isinstance(optimizer.get("state_scalars", {}), dict):
        raise GlyphfuseError(f"{trainer_file}: \"optimizer\" must be an object with a \"param_groups\" list")
    loop = trainer.setdefault("loop", {})  # absent in checkpoints written before the spike guard
    if not isinstance(loop, dict) or not all(isinstance(value, (int, float)) and math.isfinite(value) for value in loop.values()):
        raise GlyphfuseError(f"{trainer_file}: \"loop\" must be an object of finite numbers")
    return tensors, trainer


def restore_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           device: torch.device) -> tuple[int, int, int, dict[str, Any]]:
    """Load a training checkpoint's raw weights, optimizer state and RNG states into ``model``,
    ``optimizer`` and torch; returns its (step, epoch, index, loop state)."""
    tensors, trainer = read_checkpoint(path)
    weights = {name[len("model.") :]: t for name, t in tensors.items() if name.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:2]
        raise GlyphfuseError(f"{path}: training state does not match the model ({' '.join(first)})") from None
    try:
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = value
        for name, value in trainer["optimizer"].get("state_scalars", {}).items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = value
        optimizer.load_state_dict({"state": state, "param_groups": trainer["optimizer"]["param_groups"]})
        if "rng.torch_cpu" in tensors:
            torch.set_rng_state(tensors["rng.torch_cpu"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GlyphfuseError(f"{path}: optimizer or RNG state does not fit this run ({first})") from None
    return int(trainer["step"]), int(trainer["epoch"]), int(trainer["index"]), trainer["loop"]


# ---------------------------------------------------------------------------------------------
# run.json, metrics.jsonl, data_problems.txt, samples/
# ---------------------------------------------------------------------------------------------


def write_run_config(run_dir: Path, config: TrainConfig) -> None:
    write_text_atomic(run_config_path(run_dir), config.to_json() + "\n")


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    """Add one JSON row to metrics.jsonl."""
    path = run_dir / METRICS
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
    except OSError as exc:
        raise output_error(path, exc) from None


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics rows logged after ``step`` (steps a killed run did after its last checkpoint)."""
    path = run_dir / METRICS
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a half-written last line (a full disk, a kill)
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def write_problems(run_dir: Path, problems: list[str]) -> None:
    """Keep data_problems.txt in step with the files the dataset skipped so far."""
    path = run_dir / PROBLEMS
    if problems and (not path.is_file() or len(path.read_text(encoding="utf-8", errors="replace").splitlines()) != len(problems)):
        write_text_atomic(path, "".join(p + "\n" for p in problems))


def write_sample_grid(run_dir: Path, step: int, grid: Image.Image) -> Path:
    """samples/step_N.png."""
    path = run_dir / SAMPLES / f"{step_name(step)}.png"
    write_bytes_atomic(path, encode_png(grid))
    return path
