"""The typer application that every ``glyphfuse`` subcommand registers itself on."""

from __future__ import annotations

import typer
from rich.console import Console

from glyphfuse import __version__

app = typer.Typer(
    name="glyphfuse",
    help="Train and sample diffusion models that write a given text legibly into images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(stderr=True)  # messages and warnings; results go to stdout


def _version_callback(value: bool) -> None:
    if value:
        print(f"glyphfuse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
) -> None:
    """Train and sample diffusion models that write a given text legibly into images."""
