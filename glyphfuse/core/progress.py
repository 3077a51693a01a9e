"""The one progress bar of glyphfuse: sampling, OCR, synth-fonts and training all show this.

    with ProgressBar("OCR", total=len(images), unit="images") as bar:
        for image in images:
            ...
            bar.advance()

It draws on stderr (stdout stays clean for results) and only when ``shown``; a hidden bar costs
nothing and its methods do nothing, so callers never branch on it. ``advance`` is thread-safe
(rich's tasks are locked), so worker threads may call it. ``fields`` adds a live text column,
e.g. ``ProgressBar("train", 1000, fields="loss {loss:.4f}", loss=float("nan"))`` and
``bar.update(completed=10, loss=0.12)``. ``print`` writes a line above a running bar.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def stderr_console() -> Console:
    """Where glyphfuse talks to the user while it works (results go to stdout)."""
    return Console(stderr=True)


class ProgressBar:
    """A labelled bar on stderr: done/total, elapsed, ETA and optional live ``fields``."""

    def __init__(self, label: str, total: int, *, unit: str = "", completed: int = 0, shown: bool = True,
                 fields: str | None = None, console: Console | None = None, **initial_fields) -> None:
        self.console = console or stderr_console()
        self._bar: Progress | None = None
        self._fields, self._values = fields or "", dict(initial_fields)
        if not shown:
            return
        columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn()]
        if unit:
            columns.append(TextColumn(unit))
        if fields:
            columns.append(TextColumn("{task.fields[text]}"))
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        self._bar = Progress(*columns, console=self.console, transient=False)
        self._task = self._bar.add_task(label, total=total, completed=completed, text=self._text())

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def _text(self) -> str:
        try:
            return self._fields.format(**self._values)
        except (KeyError, ValueError):
            return ""

    def start(self) -> "ProgressBar":
        if self._bar is not None:
            self._bar.start()
        return self

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, steps)

    def update(self, completed: int | None = None, **fields) -> None:
        """Set the count (when given) and the live fields."""
        if self._bar is None:
            return
        changes: dict = {}
        if completed is not None:
            changes["completed"] = completed
        if fields:
            self._values.update(fields)
            changes["text"] = self._text()
        self._bar.update(self._task, **changes)

    def print(self, message: str) -> None:
        """One line above the bar (or plainly on stderr when hidden). Not read as rich markup:
        messages hold file names, and "[/]" in a name must stay text."""
        console = self._bar.console if self._bar is not None else self.console
        console.print(message, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> "ProgressBar":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
