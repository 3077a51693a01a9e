"""Checkpoint I/O: a checkpoint is a folder holding

* ``model.safetensors`` – the model weights (fp32, or fp16/bf16 when saved that way), or the
  same weights split over size-limited shards plus an index (:mod:`glyphfuse.core.shards`), and
* ``config.json``      – ``{"model": <ModelConfig dict>, "glyphfuse": {"version", "created",
  "weights_dtype", "metadata": {...}}}``: everything needed to rebuild the exact model.
* ``card.json``        – optional model card: domain, recipe, measured scores.

Weights are only ever stored as safetensors and metadata as JSON (never pickle). Every file is
written atomically: a whole checkpoint is written into a temporary sibling folder and renamed
into place, so a crash never leaves a half-written checkpoint under the real name; a write that
fails (disk full, read-only file system ...) leaves the previous file or checkpoint as it was and
raises a one-line :class:`GlyphfuseError` naming the path and the cause. Loading
checks everything it can and raises a one-line :class:`GlyphfuseError` naming the file and the
first offending tensors when something does not fit.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save as safetensors_bytes

from glyphfuse import __version__
from glyphfuse.core.config import ModelConfig
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import fsync_dir, json_bytes, output_error, read_json, umask, write_bytes_atomic
from glyphfuse.core.model import GlyphModel, count_parameters
from glyphfuse.core.shards import INDEX_NAME, load_safetensors, load_sharded, shard_files, storable

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
TRAINING_STATE_NAME = "training_state.safetensors"  # what the trainer adds to its checkpoints (glyphfuse.training.run_folder)
CARD_NAME = "card.json"  # optional model card: recipe and measured scores (the packaged model has one)
FORMAT_VERSION = 1
STORAGE_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def save_safetensors_atomic(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Save a name -> tensor dict as safetensors, atomically. ``metadata`` values must be strings."""
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    write_bytes_atomic(path, safetensors_bytes(storable(tensors), metadata=meta or None))


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def _looks_like_checkpoint(path: Path) -> bool:
    return any((path / name).exists() for name in (CONFIG_NAME, WEIGHTS_NAME, INDEX_NAME)) or not any(path.iterdir())


def _storage_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in STORAGE_DTYPES:
        raise GlyphfuseError(f"unknown weight dtype {dtype!r}; choose one of: float32, float16, bfloat16")
    return STORAGE_DTYPES[dtype]


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    config: ModelConfig,
    metadata: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    dtype: str | torch.dtype | None = None,
    max_shard_bytes: int | None = None,
) -> Path:
    """Write ``model`` + ``config`` as a checkpoint folder at ``path``, atomically.

    The folder is assembled as ``path.tmp-XXXX`` next to ``path`` and renamed into place; an
    existing checkpoint at ``path`` is replaced only once the new one is complete. A folder at
    ``path`` that does not look like a checkpoint is never deleted (GlyphfuseError instead).

    metadata: JSON-serialisable dict stored under config.json's "glyphfuse" section.
    extra_files: additional files (name -> bytes) written into the folder (e.g. trainer state).
    dtype: store floating-point weights as "float16"/"bfloat16" to halve the file (loaded back as fp32).
    max_shard_bytes: split the weights over shards of at most this many bytes each, plus an
        index (glyphfuse.core.shards), instead of one model.safetensors.
    """
    path = Path(path)
    storage = _storage_dtype(dtype)
    if path.exists() and not path.is_dir():
        raise GlyphfuseError(f"{path}: exists and is not a folder; cannot write a checkpoint there")
    if path.is_dir() and not _looks_like_checkpoint(path):
        raise GlyphfuseError(f"{path}: folder exists and is not a glyphfuse checkpoint; refusing to replace it")

    try:
        state = storable(model.state_dict(), storage)
    except GlyphfuseError as exc:
        raise GlyphfuseError(f"{path}: {exc}") from None
    header = {
        "model": config.to_dict(),
        "glyphfuse": {
            "format": FORMAT_VERSION,
            "version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "weights_dtype": str(storage or torch.float32).replace("torch.", ""),
            "metadata": dict(metadata or {}),
        },
    }
    try:
        config_bytes = json_bytes(header)
    except TypeError as exc:
        raise GlyphfuseError(f"{path}: checkpoint metadata is not JSON-serialisable ({exc})") from None
    weights_metadata = {"format": "pt", "glyphfuse_version": __version__}
    if max_shard_bytes is None:
        files = {WEIGHTS_NAME: safetensors_bytes(state, metadata=weights_metadata)}
    else:
        try:
            files = shard_files(state, max_shard_bytes, weights_metadata)
        except GlyphfuseError as exc:
            raise GlyphfuseError(f"{path}: {exc}") from None
    files[CONFIG_NAME] = config_bytes
    for name, data in (extra_files or {}).items():
        if Path(name).name != name or name in files:
            raise GlyphfuseError(f"{path}: invalid extra checkpoint file name {name!r}")
        files[name] = data
    _write_folder_atomic(path, files)
    return path


def _write_folder_atomic(path: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (name -> bytes) as the folder ``path``: into a temporary sibling first,
    then renamed into place; a previous folder there is moved aside and removed only after."""
    tmp: Path | None = None
    old: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.tmp-"))
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700 folders; use the usual permissions
        for name, data in files.items():
            with open(tmp / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        fsync_dir(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.old-"))
            old.rmdir()
            os.replace(path, old)  # move the previous checkpoint aside ...
        os.replace(tmp, path)  # ... and put the complete new one in its place
        fsync_dir(path.parent)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not path.exists():
            os.replace(old, path)  # roll back
        if isinstance(exc, OSError):  # disk full, read-only ...: one line; the old checkpoint is intact
            raise output_error(path, exc) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_checkpoint_output(path: str | Path, *, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> None:
    """GlyphfuseError unless a new checkpoint may be written at ``path``: never onto (or around)
    one of ``inputs``, never onto a training checkpoint (its training state would be lost), and
    onto any other non-empty folder only with ``overwrite`` (and then only a checkpoint folder:
    :func:`save_checkpoint` refuses anything else)."""
    path = Path(path)
    target = path.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if target == source or target in source.parents:
            raise GlyphfuseError(f"{path}: is (or holds) the input checkpoint {source}; write the output to another folder")
    if path.exists() and not path.is_dir():
        raise GlyphfuseError(f"{path}: exists and is a file; give a new folder for the checkpoint")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if (path / TRAINING_STATE_NAME).exists():
        raise GlyphfuseError(f"{path}: is a training checkpoint ({TRAINING_STATE_NAME}); refusing to replace it, even with --overwrite")
    if not overwrite:
        raise GlyphfuseError(f"{path}: folder is not empty; choose a new folder or pass --overwrite to replace the checkpoint there")


def _read_header(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise GlyphfuseError(f"{path}: checkpoint folder does not exist")
    if not path.is_dir():
        raise GlyphfuseError(f"{path}: a checkpoint is a folder (with {WEIGHTS_NAME} and {CONFIG_NAME}), not a file")
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise GlyphfuseError(f"{config_path}: file is missing; {path} is not a complete glyphfuse checkpoint")
    header = read_json(config_path, "checkpoint config")
    if not isinstance(header, dict) or not isinstance(header.get("model"), dict):
        raise GlyphfuseError(f"{config_path}: expected a JSON object with a \"model\" section")
    return header


def load_checkpoint_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored in a checkpoint folder."""
    path = Path(path)
    header = _read_header(path)
    return ModelConfig.from_dict(header["model"], where=f"{path / CONFIG_NAME}: model")


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The "glyphfuse" section of a checkpoint's config.json (version, created, metadata ...)."""
    info = _read_header(Path(path)).get("glyphfuse") or {}
    if not isinstance(info, dict) or not isinstance(info.get("metadata") or {}, dict):
        raise GlyphfuseError(f"{Path(path) / CONFIG_NAME}: the \"glyphfuse\" section and its \"metadata\" must be JSON objects")
    return dict(info)


def read_model_card(path: str | Path) -> dict[str, Any] | None:
    """The model card (``card.json``: recipe, training figures, eval scores) of a checkpoint
    folder, or None when it has none."""
    card_path = Path(path) / CARD_NAME
    if not card_path.is_file():
        return None
    card = read_json(card_path, "model card")
    if not isinstance(card, dict):
        raise GlyphfuseError(f"{card_path}: expected a JSON object")
    scores = card.get("scores") or []
    if not isinstance(scores, list) or not all(isinstance(row, dict) for row in scores):
        raise GlyphfuseError(f"{card_path}: \"scores\" must be a list of JSON objects")
    return card


def _first(names, limit: int = 3) -> str:
    names = sorted(names)
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_state_dict(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], where: str) -> None:
    """GlyphfuseError naming the first missing / unexpected / wrong-shape tensors, if any."""
    missing = set(expected) - set(found)
    unexpected = set(found) - set(expected)
    wrong = [f"{n} {tuple(found[n].shape)} vs {tuple(expected[n].shape)}" for n in sorted(set(expected) & set(found)) if found[n].shape != expected[n].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {_first(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {_first(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) (file vs config): {'; '.join(wrong[:3])}" + (" ..." if len(wrong) > 3 else ""))
    if problems:
        raise GlyphfuseError(f"{where}: weights do not match the model config: " + "; ".join(problems))


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The stored tensors of the checkpoint folder ``path`` (``model.safetensors``, or shards and
    their index) and the file that names them, for messages. Exactly one of the two must be there."""
    path = Path(path)
    single, index = path / WEIGHTS_NAME, path / INDEX_NAME
    if single.is_file() and index.is_file():
        raise GlyphfuseError(f"{path}: holds both {WEIGHTS_NAME} and {INDEX_NAME}; keep one of them")
    if index.is_file():
        return load_sharded(path), index
    if not single.is_file():
        raise GlyphfuseError(f"{single}: file is missing (and no {INDEX_NAME}); {path} is not a complete glyphfuse checkpoint")
    return load_safetensors(single), single


def load_weights_into(model: torch.nn.Module, path: str | Path) -> None:
    """Copy the weights of the checkpoint folder ``path`` (one file or shards) into ``model``,
    whose config must match them (GlyphfuseError naming the first mismatching tensors)."""
    tensors, source = load_weights(path)
    expected = model.state_dict()
    check_state_dict(expected, tensors, str(source))
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(tensors[name])


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the exact model stored at ``path``: returns (GlyphModel in eval mode, ModelConfig).
    Weights stored in fp16/bf16 are loaded back into the model's fp32 parameters."""
    path = Path(path)
    config = load_checkpoint_config(path)
    tensors, weights_path = load_weights(path)
    try:
        with torch.device("meta"):  # shapes only: a config that does not fit the file allocates nothing
            expected = GlyphModel(config).state_dict()
    except GlyphfuseError as exc:
        raise GlyphfuseError(f"{path / CONFIG_NAME}: {exc}") from None
    check_state_dict(expected, tensors, str(weights_path))
    non_finite = [name for name in expected if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all()]
    if non_finite:
        raise GlyphfuseError(f"{weights_path}: {len(non_finite)} tensor(s) hold NaN or infinite values ({_first(non_finite)}); the checkpoint is unusable")
    model = GlyphModel(config)
    model.load_state_dict({name: tensors[name].to(expected[name].dtype) for name in expected}, strict=True)
    return model.to(device).eval(), config


def export_checkpoint(source: str | Path, out: str | Path, *, dtype: str = "float16", max_shard_bytes: int | None = None,
                      card: str | Path | None = None, overwrite: bool = False) -> Path:
    """Copy the weights of the checkpoint folder ``source`` (a training checkpoint's EMA weights;
    never its training state) to the new checkpoint folder ``out``, stored as ``dtype`` and split
    over shards of at most ``max_shard_bytes`` (None: one file). ``card``: a model card JSON file
    to store as card.json; without it, the source's card (if any) is kept. ``out`` must be new or
    empty (with ``overwrite``: or a checkpoint, which is replaced) and is never the source."""
    source, out = Path(source), Path(out)
    check_checkpoint_output(out, overwrite=overwrite, inputs=(source,))
    model, config = load_checkpoint(source)
    card_data = read_json(card, "model card") if card is not None else read_model_card(source)
    if card_data is not None and not isinstance(card_data, dict):
        raise GlyphfuseError(f"{card}: a model card must be a JSON object")
    extra = {}
    if card_data is not None:
        extra[CARD_NAME] = json_bytes(card_data, sort_keys=False)
    info = read_checkpoint_info(source)
    # the source folder by name only: a shipped config must not carry a machine path
    metadata = {**(info.get("metadata") or {}), "exported_from": source.resolve().name}
    return save_checkpoint(out, model, config, metadata=metadata, extra_files=extra, dtype=dtype, max_shard_bytes=max_shard_bytes)


# ---------------------------------------------------------------------------------------------
# Summaries (used by `glyphfuse info`)
# ---------------------------------------------------------------------------------------------


def parameter_counts(config: ModelConfig) -> dict[str, int]:
    """Parameter counts of the model a config describes (built on the meta device: no memory)."""
    try:
        with torch.device("meta"):
            model = GlyphModel(config)
    except Exception:  # a module that cannot be built on "meta": fall back to the CPU
        model = GlyphModel(config)
    return count_parameters(model)


def config_rows(config: ModelConfig) -> list[tuple[str, str]]:
    """Flattened (key, value) rows of a config, e.g. ("unet.base_channels", "64")."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else key, sub)
        else:
            if isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            rows.append((prefix, "-" if value is None else str(value)))

    walk("", config.to_dict())
    return rows
