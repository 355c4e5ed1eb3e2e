"""What is happening to each step: running now, failed last time, how long its last run took.

One :class:`RunTracker` (a :class:`job_orchestra.Callback`) records the events of every ``materialize()``
into the tables below; the displays only read them. Steps are keys (weakly), so a pipeline that the user
drops is not kept alive by the display layer.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from job_orchestra import Callback

if TYPE_CHECKING:
    from job_orchestra import ExecutionPlan, Step

__all__ = ["TRACKER", "Run", "RunTracker", "last_duration", "last_failure", "statuses"]

#: Seconds taken by each step's last successful run.
DURATIONS: weakref.WeakKeyDictionary[Step, float] = weakref.WeakKeyDictionary()
#: The error of each step whose last run failed ("TypeError: ..."); cleared when it is scheduled again.
FAILURES: weakref.WeakKeyDictionary[Step, str] = weakref.WeakKeyDictionary()
#: How many runs are executing each step right now (several at once with parallel executors).
RUNNING: weakref.WeakKeyDictionary[Step, int] = weakref.WeakKeyDictionary()
_lock = threading.RLock()


@dataclass
class Run:
    """The progress of one ``materialize()``: steps done out of total, the running ones, elapsed time."""

    plan: ExecutionPlan
    total: int
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    running: list[str] = field(default_factory=list)
    failed: str | None = None
    error: BaseException | None = None
    finished: bool = False
    ended: float | None = None
    group_of: dict[str, str] = field(default_factory=dict)
    """``{item name: group name}`` for the items of mapped steps this run is to run."""
    group_total: dict[str, int] = field(default_factory=dict)
    """Items to run per mapped step, and done so far (the progress bar counts items)."""
    group_done: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups = getattr(self.plan, "groups", None)
        if groups:
            to_run = set(self.plan.to_run)
            self.group_of = {r.name: r.group for r in self.plan.rows if r.group in groups and r.name in to_run}
            for group in self.group_of.values():
                self.group_total[group] = self.group_total.get(group, 0) + 1
            self.group_done = dict.fromkeys(self.group_total, 0)

    @property
    def head(self) -> str:
        return self.plan.graph.head

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started


Observer = Callable[[Run, str], None]


class RunTracker(Callback):
    """Records every run's events and tells observers (progress bars, live views) what changed.

    Observers are called as ``observer(run, event)`` with event ``start``, ``step_start``,
    ``step_finish``, ``step_fail`` or ``finish``. Runs nest (a step may call ``materialize()``): each
    thread keeps its own stack of runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.observers: list[Observer] = []
        self._local = threading.local()

    def _stack(self) -> list[Run]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _notify(self, run: Run, event: str) -> None:
        for observer in list(self.observers):
            observer(run, event)

    def _step(self, run: Run, name: str) -> Step:
        return run.plan.graph.steps[name]

    def start(self, plan: ExecutionPlan) -> None:
        run = Run(plan, total=len(plan.to_run))
        with _lock:
            for name in plan.to_run:
                FAILURES.pop(plan.graph.steps[name], None)
        self._stack().append(run)
        self._notify(run, "start")

    def step_start(self, name: str) -> None:
        run = self._stack()[-1]
        with _lock:
            step = self._step(run, name)
            RUNNING[step] = RUNNING.get(step, 0) + 1
            run.running.append(name)
        self._notify(run, "step_start")

    def _stop(self, run: Run, name: str) -> Step:
        step = self._step(run, name)
        left = RUNNING.get(step, 1) - 1
        if left > 0:
            RUNNING[step] = left
        else:
            RUNNING.pop(step, None)
        if name in run.running:
            run.running.remove(name)
        return step

    def step_finish(self, name: str, seconds: float) -> None:
        run = self._stack()[-1]
        with _lock:
            step = self._stop(run, name)
            DURATIONS[step] = seconds
            run.done += 1
            group = run.group_of.get(name)
            if group is not None:
                run.group_done[group] += 1
        self._notify(run, "step_finish")

    def step_fail(self, name: str, error: BaseException) -> None:
        run = self._stack()[-1]
        with _lock:
            step = self._stop(run, name)
            if not isinstance(error, KeyboardInterrupt):  # an interrupted step did not fail: it just runs again
                FAILURES[step] = f"{type(error).__name__}: {error}"
                run.failed = name
        self._notify(run, "step_fail")

    def finish(self, plan: ExecutionPlan, error: BaseException | None) -> None:
        stack = self._stack()
        run = stack[-1] if stack else Run(plan, total=len(plan.to_run))
        with _lock:
            for name in list(run.running):  # a step interrupted without a step_fail event
                self._stop(run, name)
        run.error, run.finished, run.ended = error, True, time.perf_counter()
        try:
            self._notify(run, "finish")  # observers still see the run as current() while it ends
        finally:
            if stack:
                stack.pop()

    def current(self) -> Run | None:
        """The innermost run in progress in this thread, if any."""
        stack = self._stack()
        return stack[-1] if stack else None


#: The tracker the display layer registers (once) in an IPython session.
TRACKER = RunTracker()


def statuses(plan: ExecutionPlan) -> dict[str, str]:
    """``{name: "running" | "failed"}`` for the steps of ``plan`` that are running or failed last time."""
    found: dict[str, str] = {}
    with _lock:
        for name, step in plan.graph.steps.items():
            if step in RUNNING:
                found[name] = "running"
            elif step in FAILURES:
                found[name] = "failed"
    return found


def last_duration(step: Step, name: str | None = None) -> float | None:
    """Seconds taken by the step's last successful run: seen by the tracker, else the one recorded with its
    result in its Context (so a rebuilt or loaded pipeline still shows it); None if neither knows."""
    seconds = DURATIONS.get(step)
    if seconds is None and name is not None and step.ctx is not None:
        recorded = getattr(step.ctx, "last_duration", None)
        seconds = recorded(name) if recorded is not None else None
    return seconds


def last_failure(step: Step) -> str | None:
    """The error of the step's last run if it failed, else None."""
    return FAILURES.get(step)
