"""Run the steps a plan schedules, serially or on an executor, writing each result to its Context at once.

The scheduler keeps its state in one place: the steps that must run, a ready queue ordered by plan
position, the running set, and for each result how many scheduled steps still wait for it (it is released
when that count reaches zero). The serial loop walks the plan order, which is exactly the order the ready
queue yields with one worker; the parallel loop keeps the ready queue itself (the prepare / get_ready / done
protocol of :class:`graphlib.TopologicalSorter`, without its cycle check: ``collect()`` already validated the
graph) and runs on a backend from :mod:`job_orchestra.executors`. Progress is reported through
:mod:`job_orchestra.events`, always from the coordinating thread.
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .attrdict import as_attrdict
from .checks import check_declarations, check_runnable, refuse_one_shot
from .events import Callback, Dispatcher, gather
from .graph import collect
from .plan import ExecutionPlan

if TYPE_CHECKING:
    from .executors import Backend
    from .step import Step

__all__ = ["check_runnable", "materialize"]


def _note_failure(exc: BaseException, name: str, step: Step, finished: int) -> None:
    kind = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    exc.add_note(
        f"job-orchestra: step {name!r} ({type(step).__name__}) {kind}. {finished} step(s) finished in this "
        "run; those with a Context kept their results, so the next materialize() runs only what is left."
    )


def _note_interrupt(exc: BaseException, running: list[str], finished: int, abandoned: bool) -> None:
    what = ", ".join(map(repr, running)) or "no step"
    after = (
        "was interrupted again and left them running"
        if abandoned
        else "let them finish and kept their results in their Contexts"
    )
    exc.add_note(
        f"job-orchestra: interrupted while running {what}; it started no new step and {after}. "
        f"{finished} step(s) finished in this run; the next materialize() runs only what is left."
    )


def _consumer_counts(to_run: list[str], deps: dict[str, tuple[str, ...]], scheduled: set[str]) -> dict[str, int]:
    """For each scheduled step, how many scheduled steps take its result (it is released after the last)."""
    waiting: dict[str, int] = {}
    for name in to_run:
        for d in deps[name]:
            if d in scheduled:
                waiting[d] = waiting.get(d, 0) + 1
    return waiting


def materialize(
    head: Step,
    executor: Any = None,
    max_workers: int | None = None,
    callbacks: Callback | Iterable[Callback] | None = None,
) -> Any:
    """Run what ``head`` needs and return its output (see :meth:`Step.materialize`)."""
    graph = collect(head)
    check_declarations(graph)
    plan = ExecutionPlan.from_graph(head, graph)
    to_run = plan.to_run
    check_runnable(graph, to_run)
    events = gather(callbacks)
    if executor is None or not to_run:
        return _reporting(plan, events, lambda: _run_serial(plan, to_run, events))
    from .executors import resolve  # imports concurrent.futures: only for parallel runs

    with resolve(executor, max_workers) as backend:
        return _reporting(plan, events, lambda: _ParallelRun(plan, to_run, events, backend).run())


def _reporting(plan: ExecutionPlan, events: Dispatcher, run: Any) -> Any:
    """Call ``run()`` between the ``start`` and ``finish`` events."""
    if events:
        events.emit("start", plan)
    error: BaseException | None = None
    try:
        return run()
    except BaseException as exc:
        error = exc
        raise
    finally:
        if events:
            events.emit("finish", plan, error)


def record_result(plan: ExecutionPlan, step: Step, name: str, output: Any) -> Any:
    """Normalize a step's output (dicts get attribute access) and write it to the step's Context.

    Every executor calls this as soon as a step finishes, so a later failure cannot lose the result.
    """
    output = as_attrdict(output)
    ctx = step.ctx
    if ctx is not None and output is not None:
        refuse_one_shot(name, step, output)
        ctx._put_result(name, output, plan.fingerprint(name))
    return output


def _run_serial(plan: ExecutionPlan, to_run: list[str], events: Dispatcher) -> Any:
    graph = plan.graph
    steps, deps, head = graph.steps, graph.deps, graph.head
    if not to_run:  # the head's own result is cached
        if events:
            events.emit("step_cached", head)
        return steps[head].ctx[head]  # type: ignore[index]

    scheduled = set(to_run)
    waiting = _consumer_counts(to_run, deps, scheduled)  # results still needed by this many scheduled steps
    results: dict[str, Any] = {}
    taken_from_context: set[str] = set()
    finished = 0
    clock = time.perf_counter

    for name in to_run:
        step = steps[name]
        inputs = []
        for d in deps[name]:
            if d in scheduled:
                inputs.append(results[d])
                left = waiting[d] - 1
                waiting[d] = left
                if left == 0:
                    del results[d]
            else:
                inputs.append(steps[d].ctx[d])  # type: ignore[index]
                if events and d not in taken_from_context:
                    taken_from_context.add(d)
                    events.emit("step_cached", d)
        if events:
            events.emit("step_start", name)
        started = clock()
        try:
            output = step.run(*inputs)
        except BaseException as exc:
            del inputs
            _note_failure(exc, name, step, finished)
            if events:
                events.emit("step_fail", name, exc)
            raise
        del inputs
        output = record_result(plan, step, name, output)
        finished += 1
        if events:
            events.emit("step_finish", name, clock() - started)
        if name in waiting or name == head:
            results[name] = output
        del output
    return results[head]


class _ParallelRun:
    """One parallel ``materialize()``: submits ready steps in plan order, records each result as it comes.

    Only this (coordinating) thread touches the state and emits events; worker threads merely put finished
    handles on a queue. On a failure or an interrupt no new step starts and running steps are waited for.
    """

    _POLL = 0.1  # seconds between checks for Ctrl-C while waiting (a blocked queue.get() would hide it)

    def __init__(self, plan: ExecutionPlan, to_run: list[str], events: Dispatcher, backend: Backend) -> None:
        graph = plan.graph
        self.plan, self.events, self.backend = plan, events, backend
        self.steps, self.deps, self.head = graph.steps, graph.deps, graph.head
        self.scheduled = scheduled = set(to_run)
        self.waiting = _consumer_counts(to_run, self.deps, scheduled)
        self.results: dict[str, Any] = {}  # refs of finished results that scheduled steps still wait for
        self.from_context: dict[str, Any] = {}  # refs of results taken from a Context
        self.position = {name: i for i, name in enumerate(to_run)}
        # The ready queue: how many scheduled inputs each step still waits for, and who waits for each step.
        self.blocked: dict[str, int] = {}
        self.consumers: dict[str, list[str]] = {}
        self.ready: list[tuple[int, str]] = []  # heap of (plan position, name)
        for i, name in enumerate(to_run):
            inputs = [d for d in self.deps[name] if d in scheduled]
            for d in dict.fromkeys(inputs):
                self.consumers.setdefault(d, []).append(name)
            self.blocked[name] = len(set(inputs))
            if not inputs:
                self.ready.append((i, name))
        self.running: dict[str, float] = {}  # name -> when it was submitted
        import queue

        self.done: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._empty = queue.Empty
        self.limit = backend.limit or len(to_run)
        self.local = backend.local_results
        self.finished = 0
        self.failure: tuple[str, BaseException] | None = None
        self.head_output: Any = None
        self.interrupt_requested = False

    def run(self) -> Any:
        with self._deferred_ctrl_c():
            try:
                while True:
                    if self.failure is None:
                        self._submit_ready()
                    if not self.running:
                        break
                    self._collect_next(self._next_done())
                    while self.running and not self.done.empty():  # everything else finished meanwhile
                        self._collect_next(self.done.get())
            except KeyboardInterrupt as exc:
                self._drain_after_interrupt(exc)
                raise
        if self.failure is not None:
            name, exc = self.failure
            _note_failure(exc, name, self.steps[name], self.finished)
            raise exc
        return self.head_output

    @contextlib.contextmanager
    def _deferred_ctrl_c(self) -> Iterator[None]:
        """Turn Ctrl-C (SIGINT, or a notebook's stop button) into a KeyboardInterrupt raised at a safe point
        of the loop, never halfway through submitting a step or recording a result. A second Ctrl-C is
        raised at once (it abandons the steps still running)."""
        import signal
        import threading

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

    # -- submitting ----------------------------------------------------------------------------------
    def _submit_ready(self) -> None:
        ready, events = self.ready, self.events
        while ready and len(self.running) < self.limit:
            self._check_interrupt()
            _, name = heapq.heappop(ready)
            step = self.steps[name]
            inputs = self._take_inputs(name)
            if events:
                events.emit("step_start", name)
            started = time.perf_counter()
            try:
                handle = self.backend.submit(name, step, inputs)
            except Exception as exc:  # e.g. the step cannot be serialized for another process
                self._fail(name, exc)
                return
            del inputs
            self.running[name] = started
            handle.add_done_callback(lambda fut, name=name: self.done.put((name, fut)))

    def _take_inputs(self, name: str) -> list[Any]:
        """The inputs of ``name``; a result is released once its last consumer has taken it."""
        inputs = []
        results, waiting = self.results, self.waiting
        for d in self.deps[name]:
            if d in self.scheduled:
                inputs.append(results[d])
                left = waiting[d] - 1
                waiting[d] = left
                if left == 0:
                    del results[d]
            else:
                ref = self.from_context.get(d, _MISSING)
                if ref is _MISSING:
                    ref = self.backend.cached_input(d, self.steps[d].ctx[d])  # type: ignore[index]
                    self.from_context[d] = ref
                    if self.events:
                        self.events.emit("step_cached", d)
                inputs.append(ref)
        return inputs

    # -- collecting ----------------------------------------------------------------------------------
    def _next_done(self) -> tuple[str, Any]:
        while True:
            self._check_interrupt()
            try:
                return self.done.get(timeout=self._POLL)
            except self._empty:
                continue

    def _collect_next(self, item: tuple[str, Any]) -> None:
        name, handle = item
        started = self.running.pop(name)
        step = self.steps[name]
        is_head = name == self.head
        try:
            ref, value = self.backend.collect(handle, is_head or step.ctx is not None)
            del handle
            if self.local or value is not None:
                value = record_result(self.plan, step, name, value)
                if self.local:
                    ref = value
        except BaseException as exc:
            self._fail(name, exc)
            return
        self.finished += 1
        if self.events:
            self.events.emit("step_finish", name, time.perf_counter() - started)
        blocked, position, ready = self.blocked, self.position, self.ready
        for consumer in self.consumers.get(name, ()):
            left = blocked[consumer] - 1
            blocked[consumer] = left
            if left == 0:
                heapq.heappush(ready, (position[consumer], consumer))
        if is_head:
            self.head_output = value
        if name in self.waiting:
            self.results[name] = ref

    def _fail(self, name: str, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = (name, exc)
        else:
            first = self.failure[1]
            first.add_note(f"job-orchestra: step {name!r} failed too: {type(exc).__name__}: {exc}")
        if self.events:
            self.events.emit("step_fail", name, exc)

    def _drain_after_interrupt(self, exc: KeyboardInterrupt) -> None:
        running = list(self.running)
        abandoned = False
        try:
            while self.running:
                self._collect_next(self._next_done())
        except KeyboardInterrupt:
            abandoned = True
        _note_interrupt(exc, running, self.finished, abandoned)


_MISSING = object()
