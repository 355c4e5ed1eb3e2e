"""What every parallel run loop shares (the pool loop of :mod:`.parallel`, the Dask graph run of
:mod:`.dask_graph`): Ctrl-C deferred to a safe point of the loop, the first failure kept with the later ones
noted on it, and that failure raised at the end with the user's traceback."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from .runstate import note_failure
from .tracebacks import user_traceback

__all__ = ["RunLoop"]


class RunLoop:
    """Mixed into a run: it sets ``interrupt_requested``, ``failure``, ``events``, ``steps``, ``finished`` and
    ``scheduled`` in its ``__init__``."""

    interrupt_requested: bool
    failure: tuple[str, BaseException] | None
    events: Any
    steps: dict[str, Any]
    finished: int
    scheduled: Any

    @contextlib.contextmanager
    def _deferred_ctrl_c(self) -> Iterator[None]:
        """Turn Ctrl-C (SIGINT, or a notebook's stop button) into a KeyboardInterrupt raised at a safe point
        of the loop, never halfway through submitting a step or recording a result. A second Ctrl-C is
        raised at once (it abandons the steps still running)."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signals are only delivered to the main thread
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:
            yield  # somebody else handles Ctrl-C: leave it to them
            return

        def note_it(signum: int, frame: Any) -> None:
            self.interrupt_requested = True
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, note_it)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _check_interrupt(self) -> None:
        if self.interrupt_requested:
            self.interrupt_requested = False
            raise KeyboardInterrupt

    def _fail(self, name: str, exc: BaseException) -> None:
        """Keep the first failure; a later one is noted on it."""
        if self.failure is None:
            self.failure = (name, exc)
        else:
            first = self.failure[1]
            first.add_note(f"job-orchestra: step {name!r} failed too: {type(exc).__name__}: {exc}")
        if self.events:
            self.events.emit("step_fail", name, exc)

    def _raise_failure(self) -> None:
        """At the end of the run: raise its first failure (if any) with the user's part of its traceback."""
        __tracebackhide__ = True
        if self.failure is not None:
            name, exc = self.failure
            note_failure(exc, name, self.steps[name], self.finished, len(self.scheduled))
            raise exc.with_traceback(user_traceback(exc.__traceback__))
