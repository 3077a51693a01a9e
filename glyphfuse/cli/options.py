"""Command-line options that several commands share, declared once, and their checks."""

from __future__ import annotations

import math
from typing import Optional

import typer

from glyphfuse.core.config import MAX_SEED
from glyphfuse.core.errors import GlyphfuseError


def finite(param: typer.CallbackParam, value: Optional[float]) -> Optional[float]:
    """Option callback: NaN and infinity are refused while the command line is parsed."""
    if value is not None and not math.isfinite(value):
        raise GlyphfuseError(f"{param.opts[0]} must be a finite number, got {value}")
    return value


def seed_range(param: typer.CallbackParam, value: Optional[int]) -> Optional[int]:
    """Option callback: a seed is 0 .. 2^63 - 1 (torch generators take 64-bit seeds)."""
    if value is not None and not 0 <= value <= MAX_SEED:
        raise GlyphfuseError(f"{param.opts[0]} must be between 0 and {MAX_SEED}, got {value}")
    return value
