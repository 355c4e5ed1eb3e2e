"""The steps being computed right now, shared by every ``materialize()`` of this process.

Two runs at once never compute one step twice. Before it runs a step, a run *claims* it here: if another
run is computing it, the claim returns that run's entry and this run awaits its result (the same object);
if another run has just recorded it in the shared Context, the claim returns the stored result.

A step is identified by where its result goes (its Context and name, or the step object when it has no
Context) and by the planned hash of its code, parameters and inputs, so a run whose inputs differ computes
its own. A finished result is kept here only while another run that planned to compute it has not claimed
it yet (a run registers before it plans, then narrows to what its plan runs); failures are never kept.

Deadlock-free by construction: a serial run blocks on an entry only while it computes nothing itself, a
parallel run never blocks (a foreign entry is one more handle it waits for), and a step whose own ``run()``
needs its own result (a nested ``materialize()``) is refused instead of waiting for itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .context import Context
from .errors import ConcurrentStepError, InvalidStepError

if TYPE_CHECKING:
    from .graph import PipelineGraph
    from .plan import ExecutionPlan

__all__ = ["Claim", "Entry", "RunTicket", "enter", "running_here"]

_LOCK = threading.Lock()
_KEPT: dict[tuple, Entry] = {}  # (anchor id, name) -> a finished result another run still plans to compute
_ACTIVE: set[RunTicket] = set()  # the runs going on, each with the keys it plans to compute and has not claimed
_RUNNING_HERE = threading.local()  # .keys: the keys whose run() this thread is executing


class Entry:
    """One step being computed by one run; others wait on it (``result()``) or subscribe (``add_done_callback``)."""

    __slots__ = ("_callbacks", "_done", "_event", "anchor", "error", "fetch", "key", "name", "value")

    def __init__(self, key: tuple, name: str, anchor: Any) -> None:
        self.key = key
        self.name = name
        self.anchor = anchor  # keeps the Context (or step) whose id is in the key alive
        self.value: Any = None
        self.fetch: Callable[[], Any] | None = None  # set when the value stays remote (Dask)
        self.error: BaseException | None = None
        self._done = False
        self._event: threading.Event | None = None  # made only when somebody waits
        self._callbacks: list[Callable[[], None]] | None = None

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once the entry is done (at once if it is), from whichever thread finishes it."""
        with _LOCK:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn()

    def _settle(self) -> None:
        """Mark done, then wake whoever waits."""
        with _LOCK:
            self._done = True
            event, callbacks = self._event, self._callbacks
            self._callbacks = None
        if event is not None:
            event.set()
        for fn in callbacks or ():
            fn()

    def result(self) -> Any:
        """The result computed by the owning run (waiting for it), or ConcurrentStepError if it failed."""
        if not self._done:
            with _LOCK:
                if not self._done and self._event is None:
                    self._event = threading.Event()
                event = self._event
            if event is not None:
                event.wait()
        if self.error is not None:
            what = "was interrupted" if not isinstance(self.error, Exception) else "failed"
            raise ConcurrentStepError(
                f"Step {self.name!r} {what} in another materialize() running at the same time, whose result "
                f"this one was waiting for ({type(self.error).__name__}: {self.error}). Fix the cause and "
                "call materialize() again: results already in Contexts are kept.",
                self.name,
            ) from self.error
        if self.fetch is not None:
            return self.fetch()
        return self.value


class Claim:
    """The result of a step another run computes (or has recorded): ``result()`` and ``add_done_callback``."""

    __slots__ = ("entry", "stored")

    def __init__(self, entry: Entry | None, stored: Any = None) -> None:
        self.entry = entry
        self.stored = stored

    def add_done_callback(self, fn: Callable[[], None]) -> None:
        if self.entry is None:
            fn()
        else:
            self.entry.add_done_callback(fn)

    def result(self) -> Any:
        return self.stored if self.entry is None else self.entry.result()


def _same(a: tuple, b: tuple) -> bool:
    """Keys of one result: same Context (or step) and name, and the same planned fingerprint when both runs
    have one (a pipeline without any Context has none: its steps' inputs all come from its own steps)."""
    return a[0] == b[0] and a[1] == b[1] and (a[2] == b[2] or a[2] is None or b[2] is None)


def _wanted(key: tuple, by: RunTicket | None) -> bool:
    """Whether a run other than ``by`` plans to compute ``key`` and has not claimed it yet (call with _LOCK)."""
    name = key[1]
    for ticket in _ACTIVE:
        if ticket is not by and name in ticket.pending and _same(ticket.key(name), key):
            return True
    return False


class RunTicket:
    """One run's dealings with the registry: what it plans to compute, claims, finishes and abandons.

    Cheap when no other run is going on: a set of the planned names, and per step one dict item while it
    runs; the :class:`Entry` others wait on is made only when somebody asks for it.
    """

    __slots__ = ("inflight", "pending", "plan", "steps", "thread")

    def __init__(self, graph: PipelineGraph) -> None:
        self.plan: ExecutionPlan | None = None
        self.thread: int | None = None  # where a serial run's steps run
        self.steps = graph.steps
        self.pending = set(graph.steps)  # until the plan is made, every step might be planned
        self.inflight: dict[str, Entry | None] = {}  # what this run computes now (an Entry once awaited)
        with _LOCK:
            _ACTIVE.add(self)

    def planned(self, plan: ExecutionPlan, names: Iterable[str], serial: bool) -> None:
        """The plan is made: only ``names`` are still to compute (results kept for the others are dropped)."""
        with _LOCK:
            self.plan = plan
            self.thread = threading.get_ident() if serial else None
            dropped = self.pending
            self.pending = set(names)
            if _KEPT:
                self._drop_kept(dropped - self.pending)

    def _drop_kept(self, names: Iterable[str]) -> None:
        """Forget results kept for ``names`` that no run wants any more (call with _LOCK)."""
        for name in names:
            kept = _KEPT.get(self.key(name)[:2])
            if kept is not None and not _wanted(kept.key, None):
                del _KEPT[kept.key[:2]]

    def key(self, name: str) -> tuple:
        """Where ``name``'s result goes (its Context, or the step) and what it is planned to be computed from
        (None until the plan is made: matches any)."""
        step = self.steps[name]
        anchor = step.ctx
        plan = self.plan
        return (id(step if anchor is None else anchor), name, None if plan is None else plan.planned_key(name))

    def _anchor(self, name: str) -> Any:
        step = self.steps[name]
        return step if step.ctx is None else step.ctx

    def claim(self, name: str, step: Any = None) -> Claim | None:
        """None: this run computes ``name`` (then :meth:`finish` or :meth:`fail` it). Otherwise a
        :class:`Claim` on the result another run computes or has just recorded. ``step``: the step of that
        name, when the caller has it at hand (saves a lookup by name)."""
        anchor = (self.steps[name] if step is None else step).ctx
        with _LOCK:
            self.pending.discard(name)
            if not _KEPT and len(_ACTIVE) == 1:  # alone: only a Context may hold a newer result
                if anchor is not None:
                    planned = self.plan.planned_key(name)  # type: ignore[union-attr]
                    if planned is not None:
                        stored = _recorded(anchor, name, planned)
                        if stored is not _NOTHING:
                            return Claim(None, stored)
                self.inflight[name] = None
                return None
            key = self.key(name)
            owner_thread = None
            entry = _KEPT.get(key[:2]) if _KEPT else None
            if entry is not None and not _same(entry.key, key):
                entry = None
            if entry is not None:
                if not _wanted(key, None):
                    del _KEPT[key[:2]]
            else:
                for ticket in _ACTIVE:
                    if ticket is not self and name in ticket.inflight and _same(ticket.key(name), key):
                        entry = ticket.inflight[name]
                        if entry is None:
                            entry = ticket.inflight[name] = Entry(key, name, self._anchor(name))
                        owner_thread = ticket.thread
                        break
            if entry is None:
                if anchor is not None and key[2] is not None:
                    stored = _recorded(anchor, name, key[2])
                    if stored is not _NOTHING:
                        return Claim(None, stored)
                self.inflight[name] = None
                return None
        here = getattr(_RUNNING_HERE, "keys", ())
        if owner_thread == threading.get_ident() or any(_same(k, key) for k in here):
            raise InvalidStepError(
                f"Step {name!r}'s run() calls materialize() on a pipeline that needs {name!r} itself, which would "
                "wait for its own result forever. Materialize only what the step depends on, or pass the "
                "value in as a dependency."
            )
        return Claim(entry)

    def wanted(self, name: str) -> bool:
        """True when another run plans to compute ``name`` and has not claimed it yet (keep its value)."""
        if len(_ACTIVE) == 1:
            return False
        with _LOCK:
            return _wanted(self.key(name), self)

    def finish(self, name: str, value: Any, fetch: Callable[[], Any] | None = None) -> None:
        """Publish the result of a step this run computed; it is kept only for runs that still plan it."""
        with _LOCK:
            entry = self.inflight.pop(name)
            if len(_ACTIVE) > 1:
                key = self.key(name)
                if _wanted(key, self):
                    if entry is None:
                        entry = Entry(key, name, self._anchor(name))
                    _KEPT[key[:2]] = entry
        if entry is not None:
            entry.value, entry.fetch = value, fetch
            entry._settle()

    def fail(self, name: str, error: BaseException) -> None:
        """The step failed (or was interrupted): waiters get the error; a later claim computes it afresh."""
        with _LOCK:
            entry = self.inflight.pop(name, None)
        if entry is not None:
            entry.error = error
            entry._settle()

    def leave(self) -> None:
        """The run is over: withdraw its plans, and fail what it still owns (abandoned after an interrupt)."""
        with _LOCK:
            _ACTIVE.discard(self)
            pending, self.pending = self.pending, set()
            if _KEPT:  # results kept for this run alone are dropped
                self._drop_kept(pending)
            owned = list(self.inflight.values())
            self.inflight = {}
        interrupted = KeyboardInterrupt("the run computing it was interrupted and left it running")
        for entry in owned:
            if entry is not None:
                entry.error = interrupted
                entry._settle()


def _recorded(anchor: Any, name: str, planned: str | None) -> Any:
    """The result another run recorded in the Context since this run's plan, if computed from the same
    code, parameters and inputs; else ``_NOTHING``."""
    if planned is None or not isinstance(anchor, Context):
        return _NOTHING
    recorded = anchor._fingerprints.get(name)
    if recorded is None or not recorded.startswith(planned.partition(":")[0] + ":"):
        return _NOTHING
    return anchor.get(name, _NOTHING)


def running_here() -> set[tuple]:
    """The keys of the steps whose ``run()`` this pool thread is executing (add a key around the call), so
    a nested ``materialize()`` that needs one of them is refused instead of waiting for itself. (A serial
    run's steps run in the run's own thread, which its ticket knows.)"""
    try:
        return _RUNNING_HERE.keys
    except AttributeError:
        keys = _RUNNING_HERE.keys = set()
        return keys


def enter(graph: PipelineGraph) -> RunTicket:
    """Register a run of ``graph`` before it is planned, so that nothing another run finishes meanwhile is
    lost to it; then call :meth:`RunTicket.planned`, and :meth:`RunTicket.leave` when the run is over."""
    return RunTicket(graph)


_NOTHING = object()
