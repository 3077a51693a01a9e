"""The ``glyphfuse`` command line: one thin function per subcommand.

Each function only parses its arguments and calls the core package; all logic lives there.
A :class:`~glyphfuse.core.errors.GlyphfuseError` becomes a one-line message and exit status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from glyphfuse import __version__
from glyphfuse.core.errors import GlyphfuseError

app = typer.Typer(
    name="glyphfuse",
    help="Train and sample diffusion models that write a given text legibly into images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        print(f"glyphfuse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
) -> None:
    """Train and sample diffusion models that write a given text legibly into images."""


# ---------------------------------------------------------------------------------------------
# Subcommands. Each is a thin wrapper: parse, call the core, print. Keep logic out of here.
# ---------------------------------------------------------------------------------------------


# (subcommands are added below, one block each)


def main() -> None:
    """Console-script entry point: user-facing errors become one line and exit status 1."""
    try:
        app()
    except GlyphfuseError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
