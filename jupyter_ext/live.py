"""Live views: plans, graphs and widgets that update in place while steps run and after every cell.

How it works (no change to the core is needed):

- :func:`activate` registers :data:`~jupyter_ext.runs.TRACKER` as a global ``job_orchestra.Callback``
  and an IPython ``post_run_cell`` hook. It runs once per kernel, when ``jupyter_ext`` is imported
  (the core loads it through its entry point on the first rich display or ``materialize()`` in a kernel).
- Each live view remembers its head step (weakly), its display handle and a key of what it last showed.
- During a run, the tracker's events refresh every view (throttled); after each cell, the hook refreshes
  them again, so a plan shown in an earlier cell follows later ``materialize()``, ``invalidate()`` or a
  snapshot load. A view is re-rendered and sent only when its key changed.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from job_orchestra import ExecutionPlan, PipelineError

from . import follow, runs
from .bundles import render
from .progress import RunProgress
from .storage_view import storage_key

if TYPE_CHECKING:
    from .bundles import Kind
    from .runs import Run

__all__ = [
    "COST_FACTOR",
    "MAX_VIEWS",
    "MIN_INTERVAL",
    "SHOW_PROGRESS",
    "activate",
    "attach_observer",
    "deactivate",
    "in_kernel",
    "no_progress_bar",
    "refresh_all",
    "register_view",
    "register_widget",
]

#: Only the most recent live views are kept; older ones stay as they were last drawn.
MAX_VIEWS = 200
#: Seconds between two refreshes of the live views while steps run.
MIN_INTERVAL = 0.25
#: After a refresh that took t seconds, the next unforced one waits at least COST_FACTOR * t (huge pipelines).
COST_FACTOR = 4
#: Show a progress bar for each ``materialize()`` run in a notebook (set it to False to turn them off).
SHOW_PROGRESS = True


class Refreshable(Protocol):
    def refresh(self, force: bool = False) -> None: ...


def state_key(kind: str, plan: ExecutionPlan, statuses: dict[str, str]) -> tuple:
    """Everything a view shows, cheaply: when it is unchanged the view is not redrawn."""
    rows = []
    for row in plan.rows:
        step = plan.graph.steps[row.name]
        ctx = step.ctx
        raw = dict.get(ctx, row.name) if ctx is not None else None
        rows.append(
            (
                row.name,
                row.step_class,
                str(getattr(row.availability, "value", row.availability)),
                str(getattr(row.schedule, "value", row.schedule)),
                getattr(row, "reason", None),
                statuses.get(row.name),
                runs.last_duration(step, row.name) if kind != "graph" else None,
                runs.last_failure(step),
                id(raw) if kind != "graph" else None,
            )
        )
    storage = storage_key(plan) if kind != "graph" else ()
    redefined = tuple(getattr(plan, "redefined", {}).items())
    return (kind, tuple(plan.graph.deps.items()), tuple(rows), redefined, storage)


class LiveView:
    """One displayed plan, graph or step, redrawn through its display handle."""

    __slots__ = ("expand", "handle", "head", "key", "kind", "last", "names", "step_name")

    def __init__(
        self,
        kind: Kind,
        plan: ExecutionPlan,
        handle: Any,
        statuses: dict[str, str],
        bundle: dict | None = None,
        expand: Any = None,
    ) -> None:
        self.kind = kind
        self.expand = expand
        self.head = weakref.ref(plan.head)
        self.handle = handle
        self.key = state_key(kind, plan, statuses)
        self.last = bundle  # the last picture sent (kept to show it "out of date" once its pipeline is gone)
        self.names = follow.names_of(plan.head)
        self.step_name = plan.graph.head

    def follow(self, namespace: dict[str, Any]) -> None:
        """Move to the pipeline that replaced this one under the same variable and step name, if any."""
        head = self.head()
        new = follow.successor(self.names, self.step_name, head, namespace)
        if new is not None:
            self.head = weakref.ref(new)
            self.key = None  # redraw

    def mark_gone(self) -> None:
        """The pipeline is gone and nothing replaced it: say so over the last picture."""
        self.handle.update(follow.out_of_date(self.last, self.step_name), raw=True)

    @property
    def alive(self) -> bool:
        return self.head() is not None

    def refresh(self, force: bool = False) -> None:
        """Redraw if what the view shows has changed (``force`` is accepted for symmetry with widgets)."""
        head = self.head()
        if head is None:
            return
        try:
            plan = ExecutionPlan.of(head)
        except PipelineError:  # e.g. a cycle added since: keep the last good drawing
            return
        statuses = runs.statuses(plan)
        key = state_key(self.kind, plan, statuses)
        if key == self.key:
            return
        self.key = key
        self.last = render(self.kind, plan, statuses, expand=self.expand)
        self.handle.update(self.last, raw=True)


_views: deque[LiveView] = deque(maxlen=MAX_VIEWS)
_widgets: weakref.WeakSet[Any] = weakref.WeakSet()
_next_refresh = 0.0
_refresh_lock = threading.RLock()
_timer: threading.Timer | None = None
_progress: dict[int, Any] = {}
_state: dict[str, Any] = {"shell": None}


def register_view(
    kind: Kind,
    plan: ExecutionPlan,
    handle: Any,
    statuses: dict[str, str],
    bundle: dict | None = None,
    expand: Any = None,
) -> LiveView:
    """Keep ``handle`` (from ``display(..., display_id=True)``) up to date with ``plan.head``."""
    view = LiveView(kind, plan, handle, statuses, bundle, expand)
    _views.append(view)
    return view


def register_widget(widget: Refreshable) -> None:
    """Refresh ``widget`` (weakly held) with the live views."""
    _widgets.add(widget)


def views() -> list[LiveView]:
    """The live views whose pipeline still exists."""
    return [v for v in _views if v.alive]


def refresh_all(force: bool = True) -> None:
    """Redraw every live view and widget whose pipeline changed.

    Unforced calls (one per step event) are throttled: at most one refresh per :data:`MIN_INTERVAL`, or
    per :data:`COST_FACTOR` times the last refresh's cost for huge pipelines, plus one trailing refresh (from a timer)
    so that the last state, e.g. a long step just started, is always shown.
    """
    global _next_refresh
    now = time.monotonic()
    if not force and now < _next_refresh:
        _schedule_trailing_refresh(_next_refresh - now)
        return
    with _refresh_lock:
        for view in list(_views):
            if not view.alive:
                _views.remove(view)
                view.mark_gone()
                continue
            view.refresh(force)
        for widget in list(_widgets):
            widget.refresh(force)
        spent = time.monotonic() - now
        _next_refresh = now + max(MIN_INTERVAL, COST_FACTOR * spent)


def _schedule_trailing_refresh(delay: float) -> None:
    global _timer
    with _refresh_lock:
        if _timer is not None and _timer.is_alive():
            return
        _timer = threading.Timer(delay, refresh_all)
        _timer.daemon = True
        _timer.start()


_quiet = threading.local()


@contextmanager
def no_progress_bar() -> Iterator[None]:
    """Runs started inside this block show no progress bar (e.g. the widget shows progress itself)."""
    before = getattr(_quiet, "on", False)
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = before


def _on_run_event(run: Run, event: str) -> None:
    """Tracker observer: progress bar for the outermost run, and live views."""
    if event == "start":
        nested = len(runs.TRACKER._stack()) > 1  # the outer run's bar is enough
        if SHOW_PROGRESS and run.total > 0 and not nested and not getattr(_quiet, "on", False) and in_kernel():
            _start_progress(run)
    else:
        bar = _progress.get(id(run))
        if bar is not None:
            if event == "finish":
                del _progress[id(run)]
                bar.finalize(run)
            else:
                bar.update(run, force=event == "step_fail")
    refresh_all(force=event in ("start", "step_fail", "finish"))


def _start_progress(run: Run) -> None:
    bar = RunProgress(run)
    _progress[id(run)] = bar
    bar.show()


def _after_cell(result: Any = None) -> None:
    """IPython ``post_run_cell`` hook: bring every live view up to date with what the cell changed (and
    move views whose pipeline was rebuilt or loaded under the same name to the new one)."""
    namespace = follow.user_namespace()
    if namespace:
        for view in list(_views):
            view.follow(namespace)
        for widget in list(_widgets):
            getattr(widget, "follow", lambda ns: None)(namespace)
    refresh_all(force=True)


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where displays can be updated in place)."""
    try:
        from IPython import get_ipython  # only called inside IPython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def activate(shell: Any = None) -> bool:
    """Start live views in the running IPython session (idempotent); False outside IPython."""
    if shell is None:
        try:
            from IPython import get_ipython  # only called inside IPython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    if _state["shell"] is not shell:
        if _state["shell"] is not None:  # a new shell in the same process (tests): move the hook
            deactivate()
        shell.events.register("post_run_cell", _after_cell)
        _state["shell"] = shell
    attach_observer()
    runs.TRACKER.register()
    return True


def deactivate() -> None:
    """Stop live updates and progress bars (``%unload_ext jupyter_ext``)."""
    shell = _state["shell"]
    if shell is not None:
        try:
            shell.events.unregister("post_run_cell", _after_cell)
        except ValueError:
            pass
    runs.TRACKER.unregister()
    if _on_run_event in runs.TRACKER.observers:
        runs.TRACKER.observers.remove(_on_run_event)
    _views.clear()
    _state["shell"] = None


def attach_observer() -> None:
    """Let the tracker refresh live widgets even outside IPython (a widget passes it to ``materialize``)."""
    if _on_run_event not in runs.TRACKER.observers:
        runs.TRACKER.observers.append(_on_run_event)
