"""The typer application that every ``glyphfuse`` subcommand registers itself on."""

from __future__ import annotations

import typer
from rich.console import Console

from glyphfuse import __version__

HELP = """Train and sample diffusion models that write a given text legibly into images.

The pipeline: [bold]synth-fonts[/] renders training images -> [bold]train-base[/] trains a model -> [bold]warm-start[/] + [bold]train-sr[/] add a super-resolution stage -> [bold]sample[/] draws images (best of N by OCR) -> [bold]eval[/] scores how legibly a model writes held-out prompts. [bold]edit[/] writes a text into a box of your own picture (an inpainting model from [bold]warm-start --inpaint[/] + [bold]train-inpaint[/]). [bold]serve[/] answers a local web page and HTTP API from a model loaded once. [bold]export[/] packages weights; [bold]info[/] describes models; [bold]ocr-rank[/] reads any images.

[bold]Examples[/]

  glyphfuse sample "hello\\nworld" -o hello.png --candidates 8

  glyphfuse synth-fonts data/lines64 --recipe lines64 --count 100000 -j 2

  glyphfuse train-base data/lines64 -o runs/mine -m lines64 --lr 2e-3

  glyphfuse eval -c runs/mine/checkpoints/step_2500 -p words -n 2

  glyphfuse edit photo.jpg "OPEN\\n24 h" --box 120,80,300,140 -o open.png

  glyphfuse serve        # then open http://127.0.0.1:7860/

Run glyphfuse COMMAND --help for a command's options and examples."""

app = typer.Typer(
    name="glyphfuse",
    help=HELP,
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
