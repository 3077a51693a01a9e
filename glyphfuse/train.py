"""The training loop: one loop for base models and super-resolution models.

``train(config, run_dir)`` trains a :class:`~glyphfuse.core.model.GlyphModel` on an image folder
(``name.png`` + ``name.txt`` pairs and/or ``metadata.jsonl``) and leaves a run folder::

    RUN_DIR/
      .lock                         held by the one trainer using the folder (pid, host, start time)
      run.json                      the resolved TrainConfig (model config inline)
      metrics.jsonl                 {"step", "loss", "lr", "images_per_s", "time"} every log_every steps
      data_problems.txt             files skipped (if any): unreadable, corrupt, too small or too large
                                    images, missing, empty or too long transcripts
      samples/step_N.png            EMA samples for the fixed prompts, every sample_every steps
      checkpoints/latest            text "step_N": the newest COMPLETE checkpoint
      checkpoints/step_N/           a checkpoint folder (glyphfuse.core.checkpoint.load_checkpoint):
        model.safetensors             EMA weights (what gets sampled)
        config.json                   the ModelConfig
        training_state.safetensors    raw weights ("model.*"), AdamW tensors ("optimizer.*"),
                                      RNG states ("rng.*", uint8)
        trainer.json                  step, data position (epoch, index), optimizer hyper-parameters
                                      and scalar state, the TrainConfig

Guarantees:

* **Exact resume.** The data order is a per-epoch permutation from a generator seeded by
  (seed, epoch); batches are taken by position, so a resumed run continues at the same
  (epoch, index). All per-step randomness (text dropout, timesteps, noise, dropout layers) comes
  from generators seeded by (seed, step, rank, micro-batch), and the learning rate and EMA decay
  are functions of the step. A resumed run therefore reproduces the uninterrupted one.
* **Crash safety.** A step folder is written under a temporary name and renamed when complete;
  ``latest`` is replaced atomically only afterwards; old step folders are pruned last. A kill at
  any moment leaves ``latest`` pointing at a loadable checkpoint; leftover temporary folders are
  removed at the next start.
* **One trainer per run folder.** A second one is refused (:class:`RunLock`); the lock dies with
  its process, and one left by a killed trainer is reported and taken over.
* **Failed writes** (disk full, read-only) stop with a one-line GlyphfuseError naming the file;
  the previous checkpoint and ``latest`` stay intact.
* **SIGINT / SIGTERM** finish the current step, write a checkpoint and return
  (``TrainResult.interrupted``; the CLI exits 130 / 143). DataLoader workers ignore both, so the
  message is printed once.
* **NaN / inf loss** stops with a GlyphfuseError naming the step, before the optimizer applies
  the bad gradients; no checkpoint is written from that state.
* **Multi-GPU / multi-node**: run the same command under ``torchrun``; each rank trains on its
  shard of every epoch's permutation (``rank::world_size``, equal lengths) with
  DistributedDataParallel; rank 0 writes checkpoints, logs and samples.

Super-resolution: when the model config has ``low_res_size``, :func:`prepare_super_resolution_batch`
makes the conditioning image from each target (area downsampling, optional light blur, noise
augmentation with a per-sample level ~ U(0, low_res_noise_max)). Warm-starting from a base model is
done by passing ``init_model`` to :func:`train`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import errno
import hashlib
import io
import json
import math
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from glyphfuse.core.checkpoint import TRAINING_STATE_NAME, parameter_counts
from glyphfuse.core.files import output_error, write_bytes_atomic
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.data import ImageTextDataset, problem_summary
from glyphfuse.prompts import DEFAULT_SAMPLE_PROMPTS
from glyphfuse.train_config import TrainConfig, build_train_config

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Batch",
    "build_train_config",
    "config_for_run",
    "train",
    "epoch_shard",
    "find_latest_checkpoint",
    "run_config_path",
]

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STEP_PREFIX = "step_"
TRAINING_STATE = TRAINING_STATE_NAME
TRAINER_JSON = "trainer.json"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
PROBLEMS = "data_problems.txt"
LOCK = ".lock"
# Larger models are refused before anything is allocated (a mistyped or hostile model config):
# 2e9 parameters are 8 GB of fp32 weights plus 16 GB of AdamW state.
MAX_PARAMETERS = 2_000_000_000
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    step: int  # optimizer steps done in total
    checkpoint: Path | None  # the newest complete checkpoint folder
    interrupted: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run
    stopped_early: bool = False  # stop_after ended the run (no checkpoint written for it)
    last_loss: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) of this call, rank 0
    model: torch.nn.Module | None = field(default=None, repr=False)  # the raw (non-EMA) model
    ema: torch.nn.Module | None = field(default=None, repr=False)  # the EMA model (what is sampled)

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_CODES.get(self.interrupted or "", 0)


def run_config_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RUN_JSON


def config_for_run(
    data: str | Path | None,
    run_dir: str | Path,
    *,
    config_file: str | Path | None = None,
    model: str | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool | None = None,
) -> TrainConfig:
    """The TrainConfig for a (new or resumed) run folder, as the CLI builds it: a resumed run
    starts from its saved run.json, so only the options given again change anything (e.g. a
    larger --steps); a new run starts from the defaults. Then ``config_file``, ``model`` and the
    non-None ``overrides`` apply (see build_train_config)."""
    saved = run_config_path(run_dir)
    base = None
    if resume is not False and saved.is_file() and find_latest_checkpoint(run_dir) is not None:
        base = TrainConfig.load(saved)
    return build_train_config(data, base=base, config_file=config_file, model=model, overrides=overrides)


# ---------------------------------------------------------------------------------------------
# Distributed context
# ---------------------------------------------------------------------------------------------


@dataclass
class _Dist:
    """Process-group facts. Single process: rank 0 of 1, nothing initialised."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False  # we called init_process_group (and must destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor


def _setup_distributed(device_spec: str) -> tuple[_Dist, torch.device]:
    """Read RANK/WORLD_SIZE/LOCAL_RANK (set by torchrun), init the process group (nccl on CUDA,
    gloo otherwise) and pick this process's device."""
    from glyphfuse.core.device import resolve_device

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist = _Dist(rank=rank, world_size=world_size, local_rank=local_rank)
    if world_size > 1:
        if not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
            dist.initialized = True
    return dist, device


# ---------------------------------------------------------------------------------------------
# Data order: per-epoch permutations, sharded by rank, taken by position
# ---------------------------------------------------------------------------------------------


def _seed_from(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across processes and Python versions)."""
    digest = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def epoch_shard(num_examples: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's example indices for ``epoch``: the epoch's permutation (a torch.Generator seeded
    by (seed, epoch)) strided by rank, cut to the same length on every rank."""
    generator = torch.Generator().manual_seed(_seed_from(seed, epoch, 0x5EED))
    order = torch.randperm(num_examples, generator=generator)
    per_rank = num_examples // world_size
    return order[rank::world_size][:per_rank].tolist()


class _ReportingView(torch.utils.data.Dataset):
    """What the DataLoader reads: each item also carries the problems that loading it found (and
    the error when no example at all is usable), because the dataset's ``problems`` list in a
    worker process is a copy the trainer never sees."""

    def __init__(self, dataset: ImageTextDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        known = len(self.dataset.problems)
        try:
            image, text = self.dataset[index]
        except GlyphfuseError as exc:
            return None, None, self.dataset.problems[known:], str(exc)
        return image, text, self.dataset.problems[known:], None


def _collate(items: list) -> tuple[torch.Tensor | None, list[str], list[str], str | None]:
    """(images (B, C, H, W), texts, problems found, error or None) from _ReportingView items."""
    problems = [problem for _, _, found, _ in items for problem in found]
    errors = [error for *_, error in items if error is not None]
    if errors:
        return None, [], problems, errors[0]
    return torch.stack([image for image, *_ in items]), [text for _, text, *_ in items], problems, None


def _worker_init(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the trainer: Ctrl-C reaches the whole process
    group, and a worker that inherited the trainer's handler would print its message again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _batch_stream(dataset: ImageTextDataset, config: TrainConfig, dist: _Dist, epoch: int, index: int, device: torch.device) -> Iterator[tuple[torch.Tensor, list[str], int, int]]:
    """Yield (images, texts, epoch, index) forever, where (epoch, index) is the data position
    AFTER the batch (index = examples of this rank's shard consumed in that epoch). Incomplete
    final batches are dropped so every step has the same shape on every rank. Problems found
    while loading (in worker processes too) are added to ``dataset.problems``."""
    from torch.utils.data import DataLoader

    batch_size = config.batch_size
    while True:
        shard = epoch_shard(len(dataset), config.seed, epoch, dist.rank, dist.world_size)
        usable = len(shard) // batch_size * batch_size
        batches = [shard[i : i + batch_size] for i in range(index, usable - batch_size + 1, batch_size)]
        if batches:
            loader = DataLoader(
                _ReportingView(dataset),
                batch_sampler=batches,
                num_workers=config.num_workers,
                collate_fn=_collate,
                worker_init_fn=_worker_init,
                pin_memory=device.type == "cuda",
            )
            for images, texts, problems, error in loader:
                dataset.add_problems(problems)
                if error is not None:
                    raise GlyphfuseError(error)
                index += batch_size
                if index + batch_size > usable:  # nothing more in this epoch: normalise the position
                    yield images, texts, epoch + 1, 0
                else:
                    yield images, texts, epoch, index
        epoch, index = epoch + 1, 0


# ---------------------------------------------------------------------------------------------
# Batches and super-resolution preparation
# ---------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """One micro-batch on the training device."""

    images: torch.Tensor  # (B, C, H, W) targets in [-1, 1]
    texts: list[str | None]  # transcripts; None = guidance null input (text dropout)
    low_res: torch.Tensor | None = None  # (B, C, h, w) SR conditioning
    low_res_noise_level: torch.Tensor | None = None  # (B,) in [0, 1]


def _make_batch(images: torch.Tensor, texts: list[str], config: TrainConfig, model_config, generator: torch.Generator, device: torch.device) -> Batch:
    """Move a loaded batch to ``device``, apply text dropout and (for SR models) build low_res.
    All draws come from the CPU ``generator`` in a fixed order."""
    images = images.to(device, non_blocking=True)
    drop = torch.rand(len(texts), generator=generator) < config.text_dropout
    dropped: list[str | None] = [None if d else t for d, t in zip(drop.tolist(), texts)]
    batch = Batch(images=images, texts=dropped)
    if model_config.low_res_size is not None:
        from glyphfuse.sr_train import prepare_super_resolution_batch  # until the trainer takes model inputs from outside

        batch.low_res, batch.low_res_noise_level = prepare_super_resolution_batch(
            images, model_config.low_res_size, model_config.low_res_noise_max, generator, blur=config.sr_blur
        )
    return batch


# ---------------------------------------------------------------------------------------------
# Training state <-> safetensors + JSON
# ---------------------------------------------------------------------------------------------


def _training_state_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Raw weights, optimizer tensors and RNG states as flat tensors; optimizer scalars as JSON."""
    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        tensors[f"model.{name}"] = value.detach().cpu().contiguous()
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
    optimizer_json = {"param_groups": state["param_groups"], "state_scalars": scalars}
    return tensors, optimizer_json


def _restore_training_state(tensors: dict[str, torch.Tensor], optimizer_json: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, where: Path) -> None:
    weights = {name[len("model.") :]: t for name, t in tensors.items() if name.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:2]
        raise GlyphfuseError(f"{where}: training state does not match the model ({' '.join(first)})") from None
    try:
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = value
        for name, value in optimizer_json.get("state_scalars", {}).items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = value
        optimizer.load_state_dict({"state": state, "param_groups": optimizer_json["param_groups"]})
        if "rng.torch_cpu" in tensors:
            torch.set_rng_state(tensors["rng.torch_cpu"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GlyphfuseError(f"{where}: optimizer or RNG state does not fit this run ({first})") from None


# ---------------------------------------------------------------------------------------------
# Run folder: checkpoints, the latest pointer, pruning
# ---------------------------------------------------------------------------------------------


def _step_name(step: int) -> str:
    return f"{STEP_PREFIX}{step}"


def _step_of(path: Path) -> int | None:
    name = path.name
    if name.startswith(STEP_PREFIX) and name[len(STEP_PREFIX) :].isdigit():
        return int(name[len(STEP_PREFIX) :])
    return None


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
    if _step_of(target) is None or not target.is_dir():
        raise GlyphfuseError(f"{pointer}: points at {name!r}, which is not a checkpoint folder in {checkpoints}")
    return target


def _write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


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


def _clean_temporaries(checkpoints: Path) -> list[Path]:
    """Remove folders/files left by a write that was killed ('.tmp' / '.old-' in the name). Call
    after find_latest_checkpoint, which may need an '.old-' folder."""
    removed = []
    if checkpoints.is_dir():
        for entry in checkpoints.iterdir():
            if ".tmp" in entry.name or ".old-" in entry.name:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _prune(checkpoints: Path, keep_last: int, protect: Path) -> None:
    """Delete all but the newest ``keep_last`` step folders (never ``protect``)."""
    if keep_last <= 0:
        return
    steps = sorted((p for p in checkpoints.iterdir() if p.is_dir() and _step_of(p) is not None), key=_step_of)
    for old in steps[:-keep_last]:
        if old.resolve() != protect.resolve():
            shutil.rmtree(old, ignore_errors=True)


def _write_checkpoint(run_dir: Path, step: int, ema: torch.nn.Module, model: torch.nn.Module, optimizer, model_config, config: TrainConfig, position: tuple[int, int], device: torch.device) -> Path:
    """Write checkpoints/step_N completely (temp folder + rename, done by save_checkpoint), then
    move ``latest`` to it, then prune old step folders."""
    from safetensors.torch import save as safetensors_bytes

    from glyphfuse.core import checkpoint as ckpt

    checkpoints = run_dir / CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    tensors, optimizer_json = _training_state_tensors(model, optimizer, device)
    trainer = {
        "step": step,
        "epoch": position[0],
        "index": position[1],
        "optimizer": optimizer_json,
        "config": config.to_dict(),
    }
    target = checkpoints / _step_name(step)
    ckpt.save_checkpoint(
        target,
        ema,
        model_config,
        metadata={"step": step, "weights": "ema", "run": str(run_dir)},
        extra_files={
            TRAINING_STATE: safetensors_bytes(tensors, metadata={"step": str(step)}),
            TRAINER_JSON: (json.dumps(trainer, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        },
    )
    _write_text_atomic(checkpoints / LATEST, target.name + "\n")
    _prune(checkpoints, config.keep_last, protect=target)
    return target


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state_file, trainer_file = path / TRAINING_STATE, path / TRAINER_JSON
    for needed in (state_file, trainer_file):
        if not needed.is_file():
            raise GlyphfuseError(f"{needed}: missing; {path} is not a resumable training checkpoint")
    try:
        tensors = load_file(str(state_file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GlyphfuseError(f"{state_file}: unreadable training state ({exc})") from None
    try:
        trainer = json.loads(trainer_file.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise GlyphfuseError(f"{trainer_file}: not valid JSON ({exc})") from None
    if not isinstance(trainer, dict):
        raise GlyphfuseError(f"{trainer_file}: expected a JSON object")
    for key in ("step", "epoch", "index"):
        if type(trainer.get(key)) is not int or trainer[key] < 0:
            raise GlyphfuseError(f"{trainer_file}: {key} must be an integer >= 0, got {trainer.get(key)!r}")
    optimizer = trainer.get("optimizer")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("param_groups"), list) or not isinstance(optimizer.get("state_scalars", {}), dict):
        raise GlyphfuseError(f"{trainer_file}: \"optimizer\" must be an object with a \"param_groups\" list")
    return tensors, trainer


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics rows logged after ``step`` (steps a killed run did after its last checkpoint)."""
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
    _write_text_atomic(path, "".join(line + "\n" for line in kept))


# ---------------------------------------------------------------------------------------------
# EMA, signals, progress
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def _update_ema(ema_params: list[torch.Tensor], model_params: list[torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * param, for all parameters at once."""
    torch._foreach_lerp_(ema_params, model_params, 1.0 - decay)


class _StopSignals:
    """While active, SIGINT/SIGTERM set ``self.received`` instead of killing the process; the loop
    finishes its step and checkpoints. A second SIGINT raises KeyboardInterrupt (hard stop)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = name
        print(f"\nglyphfuse: {name} received; finishing this step and writing a checkpoint (send SIGINT again to abort)", file=sys.stderr, flush=True)

    def __enter__(self) -> "_StopSignals":
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


class _Progress:
    """Rank-0 progress (``enabled``): a rich bar when ``bar`` is asked for and stderr is a
    terminal, else one line every log_every steps."""

    def __init__(self, enabled: bool, total: int, start: int, log_every: int, bar: bool = True) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self.log_every = log_every
        self.total = total
        self.bar = None
        if enabled and bar and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:.1f} img/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.bar.add_task("train", total=total, completed=start, loss=float("nan"), ips=0.0)
            self.bar.start()

    def update(self, step: int, loss: float, images_per_s: float, seconds_per_step: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=loss, ips=images_per_s)
        elif step % self.log_every == 0 or step == self.total:
            eta = (self.total - step) * seconds_per_step
            self.console.print(
                f"step {step}/{self.total}  loss {loss:.4f}  {images_per_s:.1f} img/s  ETA {_format_seconds(eta)}",
                highlight=False,
                soft_wrap=True,
            )

    def print(self, message: str) -> None:
        # markup=False: messages hold file names, and "[/]" in a name must not be read as markup
        (self.bar.console if self.bar is not None else self.console).print(message, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _format_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _write_samples(path: Path, ema, model_config, prompts: Sequence[str], config: TrainConfig, device: torch.device, dataset) -> None:
    """samples/step_N.png from the EMA model: the fixed prompts for a base model; for an SR model
    the first training examples (as many as there are prompts) as rows of low-res | SR output |
    ground truth (glyphfuse.sr)."""
    from glyphfuse.core.images import make_grid, tensor_to_pil

    if model_config.is_super_resolution:
        from glyphfuse.sr_train import sr_sample_examples, sr_sample_grid

        truth, texts = sr_sample_examples(dataset, len(prompts))
        grid = sr_sample_grid(ema, model_config, truth, texts, steps=config.sample_steps, guidance=config.sample_guidance, seed=config.seed, blur=config.sr_blur, device=device)
    else:
        from glyphfuse.sampling import generate

        images = generate(ema, model_config, list(prompts), steps=config.sample_steps, guidance=config.sample_guidance, seed=config.seed, device=device)
        grid = make_grid([tensor_to_pil(image) for image in images], columns=min(4, len(prompts)))
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def _report_problems(run_dir: Path, dataset: ImageTextDataset) -> None:
    """Keep data_problems.txt in step with the files the dataset skipped (at scan time, and at
    load time in this process or in DataLoader workers)."""
    problems = list(dataset.problems)
    path = run_dir / PROBLEMS
    if problems and (not path.is_file() or len(path.read_text(encoding="utf-8", errors="replace").splitlines()) != len(problems)):
        _write_text_atomic(path, "".join(p + "\n" for p in problems))


def _open_dataset(config: TrainConfig, model_config) -> ImageTextDataset:
    root = Path(config.data)
    if not config.data or not root.is_dir():
        raise GlyphfuseError(f"{root}: training data folder not found")
    # transcripts longer than the text encoder reads are skipped: truncated, they would not match their images
    return ImageTextDataset(root, model_config.image_size, model_config.channels, max_text_tokens=model_config.text.max_length, log=False)


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    stop_after: int | None = None,
    init_model: Callable[[torch.nn.Module], None] | None = None,
    nan_at_step: int | None = None,
) -> TrainResult:
    """Train ``config`` into ``run_dir`` until ``config.max_steps`` optimizer steps are done.

    resume: None = continue from ``checkpoints/latest`` when there is one (the usual case);
        True = require one; False = refuse a run folder that already has checkpoints.
    on_step(step, metrics): called on every rank after every optimizer step (metrics: loss, lr).
    stop_after: return after this many optimizer steps of THIS call without writing a checkpoint,
        as if the process had been killed (for tests of resuming).
    init_model(model): called once on a fresh run before the EMA copy is taken (warm start).
    nan_at_step: testing hook: the loss of this step (1-based) is replaced by NaN.
    """
    from glyphfuse.core.checkpoint import load_checkpoint, load_checkpoint_config
    from glyphfuse.core.device import autocast_dtype
    from glyphfuse.core.diffusion import GaussianDiffusion
    from glyphfuse.core.model import GlyphModel
    from glyphfuse.core.tokenizer import tokenize

    config.validate()
    run_dir = Path(run_dir)
    model_config = config.model_config()
    parameters = parameter_counts(model_config)["total"]
    if parameters > MAX_PARAMETERS:
        raise GlyphfuseError(f"model {model_config.name!r} has {parameters / 1e9:.1f}B parameters, more than glyphfuse trains ({MAX_PARAMETERS / 1e9:.0f}B); check its config")
    dist, device = _setup_distributed(config.device)
    progress: _Progress | None = None
    lock = RunLock(run_dir) if dist.is_main else None  # one trainer per run folder (rank 0 holds it)
    try:
        if lock is not None:
            lock.acquire()
        checkpoints = run_dir / CHECKPOINTS
        if dist.is_main:
            find_latest_checkpoint(run_dir, repair=True)
        dist.barrier()
        latest = find_latest_checkpoint(run_dir, repair=False)
        if latest is None and resume is True:
            raise GlyphfuseError(f"{run_dir}: nothing to resume (no {CHECKPOINTS}/{LATEST})")
        if latest is not None and resume is False:
            raise GlyphfuseError(f"{run_dir}: already holds checkpoints ({latest.name}); resume it or choose another output folder")
        dataset = _open_dataset(config, model_config)
        shard_size = len(dataset) // dist.world_size
        if shard_size < config.batch_size:
            raise GlyphfuseError(
                f"{config.data}: {len(dataset)} usable example(s) is fewer than batch size {config.batch_size} x {dist.world_size} process(es)"
            )
        if dist.is_main:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                _clean_temporaries(checkpoints)
            except OSError as exc:
                raise output_error(run_dir, exc) from None
            _report_problems(run_dir, dataset)
        dist.barrier()

        # -- model, EMA, optimizer ------------------------------------------------------------
        torch.manual_seed(config.seed)
        model = GlyphModel(model_config).to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.weight_decay
        )
        step, epoch, index = 0, 0, 0
        if latest is not None:
            if load_checkpoint_config(latest).to_dict() != model_config.to_dict():
                raise GlyphfuseError(f"{latest}: the checkpoint's model config differs from this run's model ({model_config.name}); use another output folder")
            tensors, trainer = _read_checkpoint(latest)
            _restore_training_state(tensors, trainer["optimizer"], model, optimizer, device, latest)
            ema, _ = load_checkpoint(latest, device=device)
            step, epoch, index = int(trainer["step"]), int(trainer["epoch"]), int(trainer["index"])
        else:
            if init_model is not None:
                init_model(model)
            ema = copy.deepcopy(model)
        ema.eval().requires_grad_(False)
        ema_params = list(ema.parameters())
        model_params = list(model.parameters())

        net: torch.nn.Module = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if config.compile:
            net = torch.compile(net)
        diffusion = GaussianDiffusion(model_config.diffusion)
        amp_dtype = autocast_dtype(device)
        prompts = list(config.sample_prompts) if config.sample_prompts else list(DEFAULT_SAMPLE_PROMPTS)
        if not model_config.is_super_resolution and config.sample_every:
            from glyphfuse.sampling import check_prompt_lengths

            check_prompt_lengths(prompts, model_config)  # now, not at the first sample grid hours later

        if dist.is_main:
            _write_text_atomic(run_dir / RUN_JSON, config.to_json() + "\n")
            if latest is not None:
                _truncate_metrics(run_dir / METRICS, step)
        progress = _Progress(dist.is_main, config.max_steps, step, config.log_every, bar=config.progress)
        if dist.is_main:
            if lock.stale:
                progress.print(f"note: the previous trainer of {run_dir} ({lock.stale}) did not exit cleanly (crashed or killed); took over its stale lock")
            if lock.unlocked:
                progress.print(f"warning: {lock.unlocked}; nothing stops a second trainer on {run_dir}")
            if latest is not None:
                progress.print(f"resuming {run_dir} from step {step} ({latest})")
            problems = dataset.problems
            if problems:
                progress.print(
                    f"skipped {len(problems)} unusable file(s) in {config.data} ({problem_summary(problems)}; listed in {run_dir / PROBLEMS}); first: {problems[0]}"
                )
            progress.print(
                f"training {model_config.name} on {len(dataset)} examples, {dist.world_size} process(es) on {device}, "
                f"{config.batch_size * config.grad_accum * dist.world_size} images/step, steps {step}->{config.max_steps}"
            )

        problems_at_start = problems_shown = len(dataset.problems)
        images_per_step = config.batch_size * config.grad_accum * dist.world_size
        stream = _batch_stream(dataset, config, dist, epoch, index, device)
        position = (epoch, index)
        result = TrainResult(run_dir=run_dir, step=step, checkpoint=latest, model=model, ema=ema)
        metrics_file = run_dir / METRICS
        window_losses: list[float] = []
        window_time = 0.0
        smoothed: float | None = None
        steps_this_call = 0
        checkpoint_step = step if latest is not None else -1

        def report_load_problems() -> None:
            found = dataset.problems[problems_at_start:]
            if found:
                progress.print(f"skipped {len(found)} unusable image(s) while training ({problem_summary(found)}; listed in {run_dir / PROBLEMS})")

        def save(at_step: int) -> None:
            nonlocal checkpoint_step
            dist.barrier()
            if dist.is_main:
                try:
                    result.checkpoint = _write_checkpoint(run_dir, at_step, ema, model, optimizer, model_config, config, position, device)
                    _report_problems(run_dir, dataset)
                except GlyphfuseError as exc:  # disk full, read-only ...: the previous checkpoint is intact
                    good = find_latest_checkpoint(run_dir, repair=False)
                    kept = f"the last complete checkpoint is {good}" if good else "no checkpoint was written yet"
                    raise GlyphfuseError(f"{exc}; training stopped at step {at_step}; {kept}") from None
            checkpoint_step = at_step
            dist.barrier()

        with _StopSignals() as signals:
            model.train()
            while step < config.max_steps:
                started = time.perf_counter()
                lr = config.lr_at(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                loss_sum = torch.zeros((), device=device)
                for micro in range(config.grad_accum):
                    images, texts, *next_position = next(stream)
                    generator = torch.Generator().manual_seed(_seed_from(config.seed, step, dist.rank, micro, 1))
                    noise_generator = torch.Generator(device=device).manual_seed(_seed_from(config.seed, step, dist.rank, micro, 2))
                    torch.manual_seed(_seed_from(config.seed, step, dist.rank, micro, 3))  # dropout layers
                    batch = _make_batch(images, texts, config, model_config, generator, device)
                    text = tokenize(batch.texts, model_config.text.max_length, max_lines=model_config.text.max_lines).to(device)

                    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                        return net(x_t, t, text, low_res=batch.low_res, low_res_noise_level=batch.low_res_noise_level)

                    sync = contextlib.nullcontext()
                    if dist.enabled and micro < config.grad_accum - 1:
                        sync = net.no_sync() if hasattr(net, "no_sync") else sync
                    with sync:
                        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                            loss = diffusion.training_loss(model_fn, batch.images, generator=noise_generator).mean()
                        (loss / config.grad_accum).backward()
                    loss_sum += loss.detach().float() / config.grad_accum
                    position = tuple(next_position)

                # One small all-reduce: the mean loss (NaN check on every rank) and the stop flag.
                if nan_at_step is not None and step + 1 == nan_at_step:
                    loss_sum = loss_sum * float("nan")
                stats = torch.stack([loss_sum, torch.tensor(1.0 if signals.received else 0.0, device=device)])
                stats = dist.all_reduce_sum(stats).tolist()
                step_loss = stats[0] / dist.world_size
                if not math.isfinite(step_loss):
                    good = find_latest_checkpoint(run_dir)
                    kept = f"the last good checkpoint is {good}" if good else "no checkpoint was written yet"
                    raise GlyphfuseError(f"training loss became {step_loss} at step {step + 1} in {run_dir}; stopped without saving this state; {kept}")
                stop_signal = stats[1] > 0

                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model_params, config.grad_clip)
                optimizer.step()
                _update_ema(ema_params, model_params, config.ema_decay_at(step))
                step += 1
                steps_this_call += 1
                elapsed = time.perf_counter() - started

                # -- bookkeeping (rank 0) ---------------------------------------------------------
                result.step, result.last_loss = step, step_loss
                window_losses.append(step_loss)
                window_time += elapsed
                smoothed = step_loss if smoothed is None else 0.9 * smoothed + 0.1 * step_loss
                images_per_s = images_per_step * len(window_losses) / max(window_time, 1e-9)
                if dist.is_main:
                    result.losses.append((step, step_loss))
                    progress.update(step, smoothed, images_per_s, window_time / len(window_losses))
                    if problems_shown == problems_at_start and len(dataset.problems) > problems_at_start:
                        problems_shown = len(dataset.problems)
                        progress.print(f"skipping unusable images found while loading (first: {dataset.problems[problems_at_start]}); the count follows at the end")
                    if step % config.log_every == 0 or step == config.max_steps:
                        row = {"step": step, "loss": sum(window_losses) / len(window_losses), "lr": lr, "images_per_s": images_per_s, "time": time.time()}
                        try:
                            with open(metrics_file, "a", encoding="utf-8") as handle:
                                handle.write(json.dumps(row) + "\n")
                        except OSError as exc:
                            raise output_error(metrics_file, exc) from None
                        window_losses, window_time = [], 0.0
                if on_step is not None:
                    on_step(step, {"loss": step_loss, "lr": lr})
                if stop_after is not None and steps_this_call >= stop_after and step < config.max_steps:
                    result.stopped_early = True
                    return result
                # single process: also honour a signal that arrived during this step's bookkeeping
                # (with several ranks only the all-reduced flag is safe: all ranks must agree)
                if stop_signal or (not dist.enabled and signals.received):
                    save(step)
                    result.interrupted = signals.received or "SIGTERM"
                    if dist.is_main:
                        report_load_problems()
                        progress.print(f"stopped by {result.interrupted} at step {step}; checkpoint {result.checkpoint}; run the same command again to resume")
                    return result
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.max_steps:
                    save(step)
                if dist.is_main and config.sample_every and step % config.sample_every == 0:
                    _write_samples(run_dir / "samples" / f"{_step_name(step)}.png", ema, model_config, prompts, config, device, dataset)
                    model.train()

        if checkpoint_step != step:
            save(step)
        if dist.is_main:
            report_load_problems()
            progress.print(f"done: step {step}, checkpoint {result.checkpoint}")
        return result
    finally:
        if progress is not None:
            progress.close()
        if lock is not None:
            lock.release()
        if dist.initialized:
            torch.distributed.destroy_process_group()
