"""Steps on a thread pool: one run's own queue, drained by at most ``limit`` of the pool's threads.

A ``concurrent.futures`` submit costs a Future, a work item, a condition variable and a wake-up of a pool
thread per step: for a trivial step this is most of the cost (about 10 µs on a 2-thread pool). Here the run
puts its steps in a plain queue, and a pool thread started on it (a *drainer*) runs them one after the
other until the queue is empty, handing each finished step back on the run's callback. The run never holds
more than ``limit`` threads, steps are taken in the order they were put (what the gate's announcements
rely on, see :mod:`job_orchestra.parallel`), and a drainer that has run ``_TURN`` steps hands its thread
back to the pool and queues a fresh drainer behind the pool's other work, so two runs sharing a pool both
progress.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from .shipping import Gate, call_gated

__all__ = ["Job", "ThreadQueue"]

_TURN = 64  # steps a drainer runs before it hands its pool thread back


class Job:
    """One step in a :class:`ThreadQueue`: the handle the run collects (``result``, ``add_done_callback``)."""

    __slots__ = ("args", "callback", "error", "finished", "lock", "value")

    def __init__(self, args: tuple, lock: threading.Lock) -> None:
        self.args = args
        self.lock = lock
        self.callback: Callable[[Job], Any] | None = None
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None

    def add_done_callback(self, fn: Callable[[Job], Any]) -> None:
        """Call ``fn(job)`` once the step has finished (at once if it has)."""
        with self.lock:
            if not self.finished:
                self.callback = fn
                return
        fn(self)

    def result(self) -> Any:
        """The step's output; raises its exception if it failed."""
        if self.error is not None:
            raise self.error
        return self.value

    def exception(self) -> BaseException | None:
        return self.error

    def cancelled(self) -> bool:
        return False


class ThreadQueue:
    """The steps of one run waiting for a thread of ``executor``; at most ``limit`` threads run them."""

    def __init__(self, executor: Executor, limit: int, gate: Gate) -> None:
        self.executor, self.limit, self.gate = executor, limit, gate
        self.lock = threading.Lock()
        self.jobs: deque[Job] = deque()
        self.active = 0  # drainers started (queued in the pool or running), not yet returned

    def put(self, name: str, run: Callable[..., Any], inputs: list[Any], key: tuple | None, gated: bool) -> Job:
        """Queue ``run(*inputs)`` (see :func:`~job_orchestra.shipping.call_gated`); a drainer is started
        if fewer than ``limit`` are. Raises what the pool's ``submit`` raises (e.g. after its shutdown)."""
        job = Job((self.gate, name, gated, run, inputs, key), self.lock)
        with self.lock:
            self.jobs.append(job)
            start = self.active < self.limit
            if start:
                self.active += 1
        if start:
            try:
                self.executor.submit(self._drain)
            except BaseException:
                with self.lock:
                    self.active -= 1
                    try:
                        self.jobs.remove(job)
                    except ValueError:  # another drainer has already taken it: it runs as usual
                        return job
                raise
        return job

    def _drain(self) -> None:
        """Run queued steps until the queue is empty (or this drainer's turn is over)."""
        jobs, lock = self.jobs, self.lock
        while True:
            for _ in range(_TURN):
                with lock:
                    if not jobs:
                        self.active -= 1
                        return
                    job = jobs.popleft()
                try:
                    job.value = call_gated(*job.args)
                except BaseException as exc:  # the step's own failure, kept for the run that collects it
                    job.error = exc
                job.args = ()
                with lock:
                    job.finished = True
                    callback = job.callback
                if callback is not None:
                    callback(job)
            try:
                self.executor.submit(self._drain)  # queued behind the pool's other work; keeps this slot
                return
            except BaseException:  # the pool no longer takes work (shut down): this drainer goes on
                continue
