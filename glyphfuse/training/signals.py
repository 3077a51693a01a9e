"""Stopping a training run cleanly: SIGINT / SIGTERM finish the step and write a checkpoint."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


class StopSignals:
    """While active, SIGINT/SIGTERM set ``self.received`` instead of killing the process; the loop
    finishes its step and checkpoints. A second SIGINT raises KeyboardInterrupt (hard stop).
    DataLoader workers ignore both (glyphfuse.training.batches), so the message is printed once; a
    worker forked a moment before it could ignore them leaves the signal to the trainer."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}
        self._owner = os.getpid()  # forked DataLoader workers inherit the handler; only this process acts on it

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._owner:
            return
        name = signal.Signals(signum).name
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = name
        print(f"\nglyphfuse: {name} received; finishing this step and writing a checkpoint (send SIGINT again to abort)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
