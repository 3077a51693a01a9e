"""One sampling thread and its bounded queue: the server draws one request at a time.

    worker = SamplingWorker(draw, queue_size=8)   # draw(job) -> the answer (a dict)
    worker.start()
    future = worker.submit(Job(text, settings))   # QueueFull when queue_size jobs already wait
    answer = future.result()                      # or the exception draw raised
    worker.stop()                                 # waiting jobs are cancelled

The model is not shared between threads: only this thread runs it, so answers cannot mix (each
job carries its own prompt and settings, and its own future). Edits (``POST /api/edit``) are jobs
of the same queue (``job.edit`` set), so a sampling and an edit never run at once either. A job whose future is cancelled
while it waits (its client went away) gives its place in the queue back at once and is never
drawn. An exception in ``draw`` fails that job only;
the thread goes on with the next.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from glyphfuse.sampling.settings import SamplingSettings


class QueueFull(Exception):
    """``queue_size`` jobs wait already (or the worker is stopping)."""


@dataclass
class Job:
    text: str
    settings: SamplingSettings
    edit: Any = field(default=None, repr=False)  # an edit's picture and box (glyphfuse.serve.app.EditJob); None: a sampling
    future: Future = field(default_factory=Future, repr=False)
    queued_at: float = field(default_factory=time.perf_counter)


class SamplingWorker:
    """Runs ``draw(job)`` for each submitted job, one at a time, on one daemon thread. At most
    ``queue_size`` jobs wait; a cancelled job gives its place back at once."""

    def __init__(self, draw: Callable[[Job], dict], queue_size: int = 8):
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.draw, self.queue_size = draw, queue_size
        self._jobs: deque[Job] = deque()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.served = 0  # jobs drawn (for the tests)

    def start(self) -> None:
        """Start the thread (again after stop); a no-op while it runs."""
        with self._changed:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="glyphfuse-sampler", daemon=True)
            self._thread.start()

    def _drop_cancelled(self) -> None:  # the lock held
        if any(job.future.cancelled() for job in self._jobs):
            self._jobs = deque(job for job in self._jobs if not job.future.cancelled())

    @property
    def waiting(self) -> int:
        """Jobs queued and not cancelled (the one being drawn not counted)."""
        with self._changed:
            self._drop_cancelled()
            return len(self._jobs)

    def submit(self, job: Job) -> Future:
        """Queue ``job``; its future gets draw's answer. QueueFull when ``queue_size`` wait."""
        if self._thread is None:
            self.start()  # first use without start(); after stop() it stays stopped
        with self._changed:
            self._check_room()
            self._jobs.append(job)
            self._changed.notify()
        return job.future

    def check_room(self) -> None:
        """QueueFull now if a job submitted now would be refused (e.g. before reading a large upload)."""
        with self._changed:
            self._check_room()

    def _check_room(self) -> None:  # the lock held
        if self._stopping:
            raise QueueFull("the server is stopping")
        self._drop_cancelled()
        if len(self._jobs) >= self.queue_size:
            raise QueueFull(f"the server is busy: {self.queue_size} requests are waiting already; try again shortly")

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the waiting jobs, let the running one finish (up to ``timeout`` s), end the thread."""
        with self._changed:
            self._stopping = True
            for job in self._jobs:
                job.future.cancel()
            self._jobs.clear()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _next(self) -> Job | None:
        """The next job, waiting for one; None when stopping."""
        with self._changed:
            while not self._jobs and not self._stopping:
                self._changed.wait()
            return None if self._stopping else self._jobs.popleft()

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue  # cancelled while it waited: nobody wants the answer
            try:
                answer = self.draw(job)
            except Exception as exc:  # noqa: BLE001 - the job fails, the worker goes on
                job.future.set_exception(exc)
            else:
                job.future.set_result(answer)
            self.served += 1
