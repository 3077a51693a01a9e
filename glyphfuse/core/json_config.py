"""Typed JSON for dataclass configs: what ModelConfig, TrainConfig and SamplingSettings share.

A config is a dataclass of plain fields (bool, int, float, str, dicts, unions, tuples, lists).
:func:`check_type` checks one JSON value against a field's type and names the field in a
one-line GlyphfuseError; :class:`JsonConfig` gives a dataclass its JSON round trip on top of it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.files import read_json

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", dict: "a JSON object"}


def check_type(value: Any, expected: Any, where: str) -> Any:
    """``value`` checked against a dataclass field type (bool, int, float, str, dict, X | Y,
    X | None, tuple[X, ...], list[X]); a JSON list becomes a tuple for a tuple field. A JSON
    number is accepted for a float (not NaN or infinite), never a bool for a number."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        options = [option for option in options if option is not type(None)]
        if len(options) == 1:
            return check_type(value, options[0], where)
        for option in options:
            try:
                return check_type(value, option, where)
            except GlyphfuseError:
                pass
        names = " or ".join(_TYPE_NAMES.get(option, getattr(option, "__name__", str(option))) for option in options)
        raise GlyphfuseError(f"{where}: expected {names}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise GlyphfuseError(f"{where}: expected a list, got {value!r}")
        item_type = typing.get_args(expected)[0]
        items = [check_type(item, item_type, f"{where}[{index}]") for index, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = number and math.isfinite(value) and float(value).is_integer()
        value = int(value) if ok else value
    elif expected is float:
        ok = number and math.isfinite(value)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise GlyphfuseError(f"{where}: expected {_TYPE_NAMES.get(expected, getattr(expected, '__name__', str(expected)))}, got {value!r}")
    return value


class JsonConfig:
    """What every glyphfuse config dataclass shares: a JSON round trip with one-line errors.

    ``from_dict`` refuses unknown keys, checks every value against the field's type (naming the
    field, after ``where``: e.g. the file) and then calls the class's ``validate(where)``.
    ``KIND`` names the config in messages. Nested configs (ModelConfig) override ``from_dict``."""

    KIND = "config"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def validate(self, where: str = "") -> None:  # overridden by configs with ranges to check
        pass

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = None):
        where = cls.KIND if where is None else where
        if not isinstance(data, dict):
            raise GlyphfuseError(f"{where}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise GlyphfuseError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
        hints = typing.get_type_hints(cls)
        config = cls(**{name: check_type(value, hints[name], f"{where}: {name}" if where else name) for name, value in data.items()})
        config.validate(where)
        return config

    @classmethod
    def from_json(cls, text: str, where: str | None = None):
        where = cls.KIND if where is None else where
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise GlyphfuseError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_dict(data, where)

    @classmethod
    def load(cls, path: str | Path):
        """Read and check a JSON file of this config (a missing file, bad UTF-8 or bad JSON is a
        one-line error naming it)."""
        return cls.from_dict(read_json(path, f"{cls.KIND} file"), where=str(path))
