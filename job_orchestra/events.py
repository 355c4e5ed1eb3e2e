"""Callbacks: how progress bars and live displays follow a ``materialize()``.

Like ``dask.callbacks.Callback``: pass hooks (or subclass and override them), then either use the
callback as a context manager, ``register()`` it globally, or pass it to ``materialize(callbacks=...)``.
Hooks are called from the thread that called ``materialize()``, one at a time, in event order.

>>> done = []
>>> with Callback(step_finish=lambda name, seconds: done.append(name)):
...     pass
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .plan import ExecutionPlan

__all__ = ["Callback"]

_HOOKS = ("start", "step_start", "step_finish", "step_cached", "step_fail", "finish")


class Callback:
    """Hooks called during ``materialize()``.

    - ``start(plan)``: before anything runs, with the :class:`~job_orchestra.plan.ExecutionPlan`.
    - ``step_start(name)``: a step's ``run()`` is about to be called.
    - ``step_finish(name, seconds)``: it returned, after ``seconds``; its result is already in its Context.
    - ``step_cached(name)``: a result was taken from a Context instead of running the step.
    - ``step_fail(name, error)``: ``run()`` raised ``error`` (an exception or a KeyboardInterrupt).
    - ``finish(plan, error)``: the run is over; ``error`` is None on success.
    """

    active: ClassVar[set[Callback]] = set()
    _active_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        start: Callable[[ExecutionPlan], Any] | None = None,
        step_start: Callable[[str], Any] | None = None,
        step_finish: Callable[[str, float], Any] | None = None,
        step_cached: Callable[[str], Any] | None = None,
        step_fail: Callable[[str, BaseException], Any] | None = None,
        finish: Callable[[ExecutionPlan, BaseException | None], Any] | None = None,
    ) -> None:
        given = dict(
            start=start,
            step_start=step_start,
            step_finish=step_finish,
            step_cached=step_cached,
            step_fail=step_fail,
            finish=finish,
        )
        for hook, fn in given.items():
            if fn is not None:
                setattr(self, hook, fn)

    # Default hooks do nothing; subclasses override the ones they need.
    def start(self, plan: ExecutionPlan) -> None: ...
    def step_start(self, name: str) -> None: ...
    def step_finish(self, name: str, seconds: float) -> None: ...
    def step_cached(self, name: str) -> None: ...
    def step_fail(self, name: str, error: BaseException) -> None: ...
    def finish(self, plan: ExecutionPlan, error: BaseException | None) -> None: ...

    def register(self) -> None:
        """Call this callback's hooks during every ``materialize()`` until :meth:`unregister`."""
        with Callback._active_lock:
            Callback.active.add(self)

    def unregister(self) -> None:
        """Stop calling this callback's hooks (after :meth:`register`; ``with callback:`` does both)."""
        with Callback._active_lock:
            Callback.active.discard(self)

    def __enter__(self) -> Callback:
        """``with callback:`` registers it for the block (see :meth:`register`)."""
        self.register()
        return self

    def __exit__(self, *exc: object) -> None:
        """Unregister at the end of the ``with`` block, also when it raises."""
        self.unregister()


class Dispatcher:
    """Delivers events to a set of callbacks, one at a time; a failing hook is reported, not raised."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)
        self._lock = threading.RLock()

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def emit(self, hook: str, *args: Any) -> None:
        with self._lock:
            for cb in self.callbacks:
                fn = getattr(cb, hook)
                try:
                    fn(*args)
                except Exception as exc:  # a broken progress display must not break the pipeline
                    warnings.warn(
                        f"job-orchestra: callback {cb!r} failed in {hook}: {type(exc).__name__}: {exc}",
                        RuntimeWarning,
                        stacklevel=3,
                    )


def gather(callbacks: Callback | Iterable[Callback] | None) -> Dispatcher:
    """The registered callbacks plus those passed to ``materialize()``."""
    chosen = list(Callback.active)
    if isinstance(callbacks, Callback):
        chosen.append(callbacks)
    elif callbacks is not None:
        if not isinstance(callbacks, Iterable):
            raise TypeError(f"callbacks= takes a Callback or a list of Callbacks, got {type(callbacks).__name__}")
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks= takes job_orchestra.Callback objects, got {type(cb).__name__}")
            chosen.append(cb)
    return Dispatcher(dict.fromkeys(chosen))
