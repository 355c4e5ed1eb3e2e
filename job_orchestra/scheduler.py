"""Run the steps a plan schedules, serially or on an executor, writing each result to its Context at once.

The scheduler keeps its state in one place: the steps that must run, a ready queue ordered by plan
position, the running set, and for each result how many scheduled steps still wait for it (it is released
when that count reaches zero). The serial loop walks the plan order, which is exactly the order the ready
queue yields with one worker; the parallel loop (:mod:`job_orchestra.parallel`) keeps the ready queue itself
and runs on a backend from :mod:`job_orchestra.executors`. Progress is reported through
:mod:`job_orchestra.events`, always from the coordinating thread.

Runs at once share the work (:mod:`job_orchestra.inflight`): a step another run is computing is awaited,
never computed twice. A result taken from a Context is read once per run, so every consumer of it gets
the same value even if another thread changes the Context meanwhile.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import inflight, map_plan
from .cache_gone import forget_gone
from .checks import check_declarations, check_runnable
from .errors import CachedResultGoneError
from .events import Callback, Dispatcher, gather
from .graph import collect
from .plan import ExecutionPlan
from .redefined import refuse_redefined
from .runstate import note_failure, record_result

if TYPE_CHECKING:
    from .step import Step

__all__ = ["check_runnable", "materialize", "record_result"]


def materialize(
    head: Step,
    executor: Any = None,
    max_workers: int | None = None,
    callbacks: Callback | Iterable[Callback] | None = None,
) -> Any:
    """Run what ``head`` needs and return its output (see :meth:`Step.materialize`)."""
    __tracebackhide__ = True  # user-facing tracebacks start at the step's own code (IPython, the CLI)
    gone: set[Any] = set()
    while True:
        try:
            return _materialize(head, executor, max_workers, callbacks)
        except CachedResultGoneError as exc:  # pruned by another process: run its step again (cache_gone)
            if exc.key in gone or not forget_gone(head, exc):
                raise
            gone.add(exc.key)


def _materialize(head: Step, executor: Any, max_workers: int | None, callbacks: Any) -> Any:
    __tracebackhide__ = True
    ran_first: set[str] = set()
    if map_plan.DYNAMIC:
        ran_first = _run_map_sources(head, executor, max_workers, callbacks)
    graph = collect(head)
    check_declarations(graph)
    ticket = inflight.enter(graph)  # before planning: a step another run finishes meanwhile is not lost
    try:
        plan = ExecutionPlan.from_graph(head, graph)
        to_run = plan.to_run
        if ran_first:
            map_plan.warn_run_twice(graph, to_run, ran_first)
        refuse_redefined(graph, plan.redefined)
        run_at = plan.run_at
        check_runnable(graph, run_at)
        events = gather(callbacks)
        if executor is None or not to_run:
            ticket.planned(plan, to_run, serial=True)
            return _reporting(plan, events, functools.partial(_run_serial, plan, to_run, run_at, events, ticket))
        from .executors import resolve  # concurrent.futures and cloudpickle: paid by the first parallel run
        from .parallel import ParallelRun  # (and so is the parallel loop)

        ticket.planned(plan, to_run, serial=False)
        with resolve(executor, max_workers) as backend:
            runner = getattr(backend, "runner", None) or ParallelRun  # Dask: the whole graph submitted ahead
            return _reporting(plan, events, runner(plan, to_run, events, backend, ticket).run)
    finally:
        ticket.leave()


def _run_map_sources(head: Step, executor: Any, max_workers: int | None, callbacks: Any) -> set[str]:
    """Dynamic fan-out: run (or find cached) the steps whose output gives a map's items, then expand them.

    Each source runs in a pass of its own and writes its result to its Context, so the pass that follows
    plans the items with the source cached: a failed item leaves the source kept. Returns the names of the
    steps these passes ran.
    """
    __tracebackhide__ = True
    map_plan.refresh(head, ExecutionPlan.of)
    ran: set[str] = set()
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    seen = [*(callbacks or ()), Callback(step_start=ran.add)]
    for _ in range(len(map_plan.DYNAMIC) + 1):
        pending = map_plan.pending_groups(head)
        if not pending:
            return ran
        for group in pending:
            map_plan.refuse_without_context(group)
            materialize(group.source, executor=executor, max_workers=max_workers, callbacks=seen)
        map_plan.refresh(head, ExecutionPlan.of)
    for group in map_plan.pending_groups(head):  # a source that ran but whose result is not fresh in its Context
        raise map_plan.stuck(group)
    return ran


def _reporting(plan: ExecutionPlan, events: Dispatcher, run: Any) -> Any:
    """Call ``run()`` between the ``start`` and ``finish`` events."""
    __tracebackhide__ = True
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


def _run_serial(
    plan: ExecutionPlan, to_run: list[str], run_at: list[int], events: Dispatcher, ticket: inflight.RunTicket
) -> Any:
    __tracebackhide__ = True
    graph = plan.graph
    steps, head = graph.steps, graph.head
    if not to_run:  # the head's own result is cached
        if events:
            events.emit("step_cached", head)
        return steps[head].ctx[head]  # type: ignore[index]
    return _SerialRun(plan, to_run, run_at, events, ticket).run()


class _SerialRun:
    """One serial ``materialize()``: each step in plan order, or the result another run computes for it.

    Its state is kept by position in the plan (lists and a bytearray, not dicts by name): on 100,000 steps,
    each lookup by name would miss the CPU cache."""

    def __init__(
        self,
        plan: ExecutionPlan,
        to_run: list[str],
        run_at: list[int],
        events: Dispatcher,
        ticket: inflight.RunTicket,
    ):
        self.plan, self.to_run, self.run_at, self.events, self.ticket = plan, to_run, run_at, events, ticket
        graph = plan.graph
        size = len(graph.names)
        self.scheduled = scheduled = bytearray(size)
        for p in self.run_at:
            scheduled[p] = 1
        self.waiting = waiting = [0] * size  # how many scheduled steps still need each result
        inputs = graph.inputs
        for p in self.run_at:
            for d in inputs[p]:
                if scheduled[d]:
                    waiting[d] += 1
        self.results: list[Any] = [None] * size
        self.from_context: dict[int, Any] = {}  # read once per run: every consumer gets the same value
        self.finished = 0

    def run(self) -> Any:
        __tracebackhide__ = True
        graph, ticket, clock, plan = self.plan.graph, self.ticket, time.perf_counter, self.plan
        names, nodes, inputs_at = graph.names, graph.nodes, graph.inputs
        events = self.events if self.events else None
        results, waiting, scheduled, from_context = self.results, self.waiting, self.scheduled, self.from_context
        head = len(names) - 1
        for p in self.run_at:
            name, step = names[p], nodes[p]
            inputs = []
            for d in inputs_at[p]:
                if scheduled[d]:
                    inputs.append(results[d])
                    left = waiting[d] - 1
                    waiting[d] = left
                    if left == 0:
                        results[d] = None
                else:
                    value = from_context.get(d, _MISSING)
                    if value is _MISSING:
                        value = from_context[d] = nodes[d].ctx[names[d]]  # type: ignore[index]
                        if events:
                            events.emit("step_cached", names[d])
                    inputs.append(value)
            claim = ticket.claim(name, step)
            if claim is not None:  # another run computes it (or has just recorded it): take its result
                del inputs
                try:
                    output = claim.result()
                except BaseException as exc:
                    note_failure(exc, name, step, self.finished, len(self.to_run))
                    if events:
                        events.emit("step_fail", name, exc)
                    raise
                if events:
                    events.emit("step_cached", name)
            else:
                if events:
                    events.emit("step_start", name)
                started = clock()
                try:
                    output = step.run(*inputs)
                    del inputs
                    seconds = clock() - started
                    output = record_result(plan, step, name, output, seconds)
                except BaseException as exc:
                    inputs = None
                    ticket.fail(name, exc)
                    note_failure(exc, name, step, self.finished, len(self.to_run))
                    if events:
                        events.emit("step_fail", name, exc)
                    raise
                ticket.finish(name, output)
                self.finished += 1
                if events:
                    events.emit("step_finish", name, seconds)
            if waiting[p] or p == head:
                results[p] = output
            del output
        return results[head]


_MISSING = object()
