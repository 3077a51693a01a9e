"""Weight files: safetensors read with one-line errors, and weights split over size-limited shards.

A checkpoint folder holds its weights either in one file, ``model.safetensors``, or in shards::

    model-00001-of-00002.safetensors   the tensors, in state-dict order, each file <= the limit
    model-00002-of-00002.safetensors
    model.safetensors.index.json       {"metadata": {"total_size": N, "format": "glyphfuse-shards-1"},
                                        "weight_map": {tensor name: shard file name}}

(the names and index layout other safetensors tools use). Shards exist for transfers that cap the
size of a file (e.g. 16 MiB a file from a rented GPU machine): ``glyphfuse export --max-shard-mb``.
Reading them checks that the index names every shard by its canonical name, that each shard
exists and holds exactly the tensors the index maps to it, and that no file is truncated; any
problem is a one-line :class:`GlyphfuseError` naming the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import json_bytes, read_json

INDEX_NAME = "model.safetensors.index.json"
INDEX_FORMAT = "glyphfuse-shards-1"
SHARD_NAME = re.compile(r"model-(\d{5})-of-(\d{5})\.safetensors")
MAX_SHARDS = 99_999  # five digits in the file names
# bytes a safetensors header may need per tensor beyond its name and shape digits (quotes, keys,
# dtype, offsets), and per file (length prefix, braces, padding to 8 bytes; metadata apart)
HEADER_BYTES_PER_TENSOR = 96
HEADER_BYTES_PER_FILE = 64


def load_safetensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or corrupt file is a GlyphfuseError naming it."""
    path = Path(path)
    if not path.is_file():
        raise GlyphfuseError(f"{path}: file is missing")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise GlyphfuseError(f"{path}: truncated or corrupt safetensors file ({exc})") from None


def storable(tensors: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors refuses tensors that share memory);
    floating-point tensors are cast to ``dtype`` when given. A finite value that the cast turns
    into infinity (beyond float16's 65504) is a GlyphfuseError naming the tensor."""
    out = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach()
        if dtype is not None and tensor.is_floating_point():
            cast = tensor.to(dtype)
            if not torch.isfinite(cast).all() and torch.isfinite(tensor).all():
                largest = tensor.abs().max().item()
                raise GlyphfuseError(f"tensor {name} holds values up to {largest:.4g}, beyond the range of {str(dtype).replace('torch.', '')}; store it as bfloat16 or float32")
            tensor = cast
        out[name] = tensor.to("cpu", copy=True).contiguous()
    return out


def shard_name(number: int, count: int) -> str:
    """``model-0000{number}-of-0000{count}.safetensors`` (1-based)."""
    return f"model-{number:05d}-of-{count:05d}.safetensors"


def _stored_bytes(name: str, tensor: torch.Tensor) -> int:
    """An upper bound of what ``tensor`` adds to a safetensors file: its data and header entry."""
    shape_digits = sum(len(str(size)) + 1 for size in tensor.shape)
    return tensor.numel() * tensor.element_size() + len(name.encode("utf-8")) + shape_digits + HEADER_BYTES_PER_TENSOR


def plan_shards(tensors: Mapping[str, torch.Tensor], max_bytes: int, reserved: int = 0) -> list[list[str]]:
    """Tensor names grouped into shards of at most ``max_bytes`` bytes each (header included,
    ``reserved`` bytes of it for the file's metadata), in the given order, each shard filled
    before the next is started."""
    room = max_bytes - HEADER_BYTES_PER_FILE - reserved
    shards: list[list[str]] = [[]]
    used = 0
    for name, tensor in tensors.items():
        size = _stored_bytes(name, tensor)
        if size > room:
            raise GlyphfuseError(
                f"tensor {name} {tuple(tensor.shape)} needs {size / 2**20:.2f} MiB, more than the shard limit of {max_bytes / 2**20:.2f} MiB; raise the limit"
            )
        if shards[-1] and used + size > room:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += size
    if len(shards) > MAX_SHARDS:
        raise GlyphfuseError(f"{len(shards)} shards are more than {MAX_SHARDS}; raise the shard limit")
    return shards


def shard_files(tensors: Mapping[str, torch.Tensor], max_bytes: int, metadata: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """The files of a sharded checkpoint's weights: file name -> bytes, the shards and the index.
    ``tensors`` must already be storable (CPU, contiguous, the storage dtype)."""
    metadata = {str(key): str(value) for key, value in (metadata or {}).items()}
    plan = plan_shards(tensors, max_bytes, reserved=len(json.dumps(metadata)) + 16)
    files: dict[str, bytes] = {}
    weight_map: dict[str, str] = {}
    for number, names in enumerate(plan, start=1):
        file_name = shard_name(number, len(plan))
        data = safetensors_bytes({name: tensors[name] for name in names}, metadata=metadata or None)
        if len(data) > max_bytes:  # the header bound above is meant to make this impossible
            raise GlyphfuseError(f"{file_name}: {len(data)} bytes, more than the shard limit {max_bytes}")
        files[file_name] = data
        weight_map.update(dict.fromkeys(names, file_name))
    total = sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())
    index = {"metadata": {"total_size": total, "format": INDEX_FORMAT}, "weight_map": weight_map}
    files[INDEX_NAME] = json_bytes(index)
    return files


def read_index(folder: str | Path) -> dict[str, str]:
    """The index's tensor name -> shard file name map, checked: a JSON object whose shard names
    are the canonical ``model-NNNNN-of-MMMMM.safetensors`` for one count M, each number 1..M used."""
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        raise GlyphfuseError(f"{path}: file is missing")
    index = read_json(path, "shard index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise GlyphfuseError(f"{path}: expected a JSON object with a non-empty \"weight_map\" of tensor name -> shard file name")
    numbers = set()
    counts = set()
    for file_name in set(weight_map.values()):
        match = SHARD_NAME.fullmatch(file_name)
        if match is None:
            raise GlyphfuseError(f"{path}: {file_name!r} is not a shard name (model-NNNNN-of-MMMMM.safetensors)")
        numbers.add(int(match.group(1)))
        counts.add(int(match.group(2)))
    count = max(counts)
    if len(counts) != 1 or numbers != set(range(1, count + 1)):
        raise GlyphfuseError(f"{path}: the shards listed are not model-00001 .. model-{count:05d} of one set of {count}")
    return weight_map


def load_sharded(folder: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a sharded checkpoint folder; each shard must hold exactly the tensors that
    the index maps to it."""
    folder = Path(folder)
    weight_map = read_index(folder)
    tensors: dict[str, torch.Tensor] = {}
    for file_name in sorted(set(weight_map.values())):
        path = folder / file_name
        if not path.is_file():
            raise GlyphfuseError(f"{path}: file is missing (listed in {INDEX_NAME}); the checkpoint is incomplete")
        found = load_safetensors(path, device)
        listed = {name for name, owner in weight_map.items() if owner == file_name}
        if set(found) != listed:
            missing, extra = sorted(listed - set(found)), sorted(set(found) - listed)
            detail = f"lacks {missing[0]}" if missing else f"holds {extra[0]}, which the index does not map to it"
            raise GlyphfuseError(f"{path}: does not match {INDEX_NAME}: it {detail}")
        tensors.update(found)
    return tensors
