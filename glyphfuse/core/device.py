"""Device policy: the only place that decides where tensors live.

``resolve_device("auto")`` picks CUDA, then Apple MPS, then the CPU. An explicit request for a
device this machine does not have is an error, never a silent fallback.
"""

from __future__ import annotations

import re

import torch

from glyphfuse.core.errors import GlyphfuseError

DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps  (auto: CUDA, then MPS, then CPU)"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn a user's device string into a ``torch.device`` that exists on this machine."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise GlyphfuseError("--device mps was requested but Apple MPS is not available on this machine; use --device cpu or auto")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match:
        if not torch.cuda.is_available():
            raise GlyphfuseError(
                f"--device {spec} was requested but CUDA is not available on this machine "
                f"(torch {torch.__version__}, built without CUDA or no GPU visible); use --device cpu or auto"
            )
        index = int(match.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise GlyphfuseError(f"--device {spec} was requested but this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    raise GlyphfuseError(f"unknown device {spec!r}; expected {DEVICE_HELP}")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for this device: bf16 on CUDA, none (fp32) elsewhere."""
    if device.type == "cuda":
        return torch.bfloat16
    return None
