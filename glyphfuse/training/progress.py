"""What a training run shows while it trains: the loss and speed of its recent steps.

On rank 0 (``shown``) this is a :class:`glyphfuse.core.progress.ProgressBar` when ``config.progress``
is on and stderr is a terminal, else one plain line every ``log_every`` steps (logs, CI, pipes).
The same window of steps gives the rows of metrics.jsonl (:meth:`TrainProgress.end_window`).
"""

from __future__ import annotations

from glyphfuse.core.progress import ProgressBar, stderr_console
from glyphfuse.training.config import TrainConfig


class TrainProgress:
    """The loss and speed of the steps since the last metrics row; shown on rank 0 (``shown``)
    as a ProgressBar when config.progress is on and stderr is a terminal, else as one line every
    log_every steps. ``bar.print`` writes a message above it."""

    def __init__(self, shown: bool, config: TrainConfig, start: int, images_per_step: int) -> None:
        console = stderr_console()
        self.shown, self.total, self.log_every, self.images_per_step = shown, config.max_steps, config.log_every, images_per_step
        self.bar = ProgressBar("train", config.max_steps, completed=start, shown=shown and config.progress and console.is_terminal,
                               fields="loss {loss:.4f}  {ips:.1f} img/s", console=console, loss=float("nan"), ips=0.0).start()
        self.window_losses: list[float] = []
        self.window_seconds = 0.0
        self.smoothed: float | None = None  # exponential moving average of the loss (shown)

    def step_done(self, step: int, loss: float, seconds: float) -> float:
        """Count a finished step; returns the images/s of the window."""
        self.window_losses.append(loss)
        self.window_seconds += seconds
        self.smoothed = loss if self.smoothed is None else 0.9 * self.smoothed + 0.1 * loss
        images_per_s = self.images_per_step * len(self.window_losses) / max(self.window_seconds, 1e-9)
        if self.bar.shown:
            self.bar.update(completed=step, loss=self.smoothed, ips=images_per_s)
        elif self.shown and (step % self.log_every == 0 or step == self.total):
            eta = format_seconds((self.total - step) * self.window_seconds / len(self.window_losses))
            self.bar.print(f"step {step}/{self.total}  loss {self.smoothed:.4f}  {images_per_s:.1f} img/s  ETA {eta}")
        return images_per_s

    def end_window(self) -> float:
        """The mean loss of the window (for a metrics row); starts the next window."""
        mean = sum(self.window_losses) / len(self.window_losses)
        self.window_losses, self.window_seconds = [], 0.0
        return mean


def format_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
