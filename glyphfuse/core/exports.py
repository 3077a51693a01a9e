"""Lazy re-exports for a subpackage's ``__init__``: ``from glyphfuse.sampling import generate``
works, but importing ``glyphfuse.sampling`` (which the CLI does to build ``--help``) loads no
module until one of its names is used (PEP 562 module ``__getattr__``)."""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, homes: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``name`` lives in the submodule
    ``homes[name]`` (a module name relative to the package)."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{homes[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__
