"""The ``glyphfuse`` command line: one thin function per subcommand.

Each command only parses its arguments and calls the core package; all logic lives there. The
commands live by stage (data, training, sampling, scoring) and register on one typer ``app``.
A :class:`~glyphfuse.core.errors.GlyphfuseError` becomes a one-line message and exit status 1.
"""

from __future__ import annotations

import os
import sys

from rich.markup import escape

# Importing a command module registers its commands; the order is the order of `glyphfuse --help`.
from glyphfuse.cli import data_commands, train_commands, sample_commands, edit_commands, score_commands, export_commands, serve_commands  # noqa: F401, I001
from glyphfuse.cli.app import app, console
from glyphfuse.core.errors import GlyphfuseError

__all__ = ["app", "main"]

def _print_error(message: str) -> None:
    """``error: <message>`` on one line of stderr (line breaks inside the message are flattened)."""
    console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point: user-facing errors (and file-system errors: disk full,
    read-only ...) become one line and exit status 1."""
    try:
        app()
    except GlyphfuseError as exc:
        _print_error(str(exc))
        sys.exit(1)
    except BrokenPipeError:  # e.g. `glyphfuse info | head -1`: the reader is gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(1)
    except OSError as exc:  # a file or disk problem that no code path turned into a GlyphfuseError
        where = f"{exc.filename}: " if exc.filename else ""
        _print_error(f"{where}{exc.strerror or exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
