"""The parallel ``materialize()``: ready steps submitted in plan order, each result recorded as it comes.

It keeps the ready queue itself (the prepare / get_ready / done protocol of :class:`graphlib.TopologicalSorter`,
without its cycle check: ``collect()`` already validated the graph) and runs on a backend from
:mod:`job_orchestra.executors`. A step another run is computing (:mod:`job_orchestra.inflight`) is not
submitted: its entry is one more handle this run waits for, so this loop never blocks on another run.

A thread pool, or a caller's process pool while its steps are quick, takes steps ahead of its free workers,
so a worker finds its next step queued instead of waiting for this thread (the round trip dominates a short
step). On threads the queue is the run's own (:mod:`job_orchestra.thread_queue`): at most ``limit`` pool
threads drain it, without a Future per step. A gate shared with the workers
(:class:`~job_orchestra.shipping.Gate`) keeps what the one-per-free-worker loop guaranteed: a queued step does
not start once a step failed or Ctrl-C came, and at most ``limit`` steps are announced (``step_start``) as
running, a queued one when it is known to have begun.
"""

from __future__ import annotations

import heapq
import queue
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from . import inflight
from .run_loop import RunLoop
from .runstate import consumer_counts, note_interrupt, record_result
from .worker_writes import adopt, reader_for, writer_for

if TYPE_CHECKING:
    from .events import Dispatcher
    from .executors import Backend
    from .plan import ExecutionPlan

__all__ = ["ParallelRun"]


class ParallelRun(RunLoop):
    """One parallel ``materialize()``: submits ready steps in plan order, records each result as it comes.

    Only this (coordinating) thread touches the state and emits events; worker threads merely put finished
    handles on a queue (and note in the gate when they begin a queued step). On a failure or an interrupt no
    new step starts and running steps are waited for.
    """

    _POLL = 0.1  # seconds between checks for Ctrl-C while waiting (a blocked queue.get() would hide it)

    def __init__(
        self, plan: ExecutionPlan, to_run: list[str], events: Dispatcher, backend: Backend, ticket: inflight.RunTicket
    ) -> None:
        graph = plan.graph
        self.plan, self.events, self.backend = plan, events, backend
        self.steps, self.deps, self.head = graph.steps, graph.deps, graph.head
        self.scheduled = scheduled = set(to_run)
        self.waiting = consumer_counts(to_run, self.deps, scheduled)
        self.results: dict[str, Any] = {}  # refs of finished results that scheduled steps still wait for
        self.from_context: dict[str, Any] = {}  # refs of results taken from a Context
        self.position = {name: i for i, name in enumerate(to_run)}
        # The ready queue: how many scheduled inputs each step still waits for, and who waits for each step.
        blocked: dict[str, int] = dict.fromkeys(to_run, 0)
        consumers: dict[str, list[str]] = {}
        ready: list[tuple[int, str]] = []  # heap of (plan position, name); plan order is already a heap
        self.blocked, self.consumers, self.ready = blocked, consumers, ready
        deps = self.deps
        for i, name in enumerate(to_run):
            own = deps[name]
            if own:
                inputs = {d: None for d in own if d in scheduled}  # once each, in order
                for d in inputs:
                    waiters = consumers.get(d)
                    if waiters is None:
                        consumers[d] = [name]
                    else:
                        waiters.append(name)
                if inputs:
                    blocked[name] = len(inputs)
                    continue
            ready.append((i, name))
        self.running: dict[str, float] = {}  # name -> when it was submitted
        self.foreign: dict[str, inflight.Claim] = {}  # running steps another run computes for this one
        self.ticket = ticket
        self.done: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.limit = backend.limit or len(to_run)
        # Thread pools take more steps than they have threads (each thread finds its next one queued);
        # only `limit` are announced as started at a time, a queued one once its thread has begun it.
        self.gate = backend.gate
        self.window = self.limit + backend.ahead if self.gate is not None and not self.gate.adaptive else self.limit
        self.quick = 0  # steps in a row that ran for less than _QUICK (see _adapt)
        self.announced = 0  # steps of this run announced as running (step_start) and not yet collected
        self.queued: deque[str] = deque()  # submitted ahead, not announced yet (in the pool's queue order)
        self.skipped: set[str] = set()  # queued steps that never started: the run had stopped
        self.local = backend.local_results
        self.finished = 0
        self.failure: tuple[str, BaseException] | None = None
        self.head_output: Any = None
        self.written: set[str] = set()  # running steps whose worker writes the result into the cache
        self.interrupt_requested = False

    def run(self) -> Any:
        __tracebackhide__ = True
        with self._deferred_ctrl_c():
            try:
                while True:
                    if self.failure is None:
                        self._submit_ready()
                    if not self.running:
                        break
                    self._collect_next(self._next_done())
                    self._collect_finished()
                    if self.queued:
                        self._announce_begun()
            except KeyboardInterrupt as exc:
                if self.gate is not None:
                    self.gate.stop()  # queued steps do not start
                self._drain_after_interrupt(exc)
                raise
        self._raise_failure()
        return self.head_output

    def _collect_finished(self) -> None:
        """Collect every step that has finished meanwhile, without waiting."""
        done = self.done
        while self.running and not done.empty():
            self._collect_next(done.get())

    def _announce_begun(self) -> None:
        """Announce (``step_start``) queued steps their pool thread has begun, while fewer than ``limit`` are
        announced. The pool takes its queue in order; a thread begins its next step only after its last one
        finished, so collecting what has finished first keeps the announced steps at most ``limit``."""
        queued, began = self.queued, self.gate.began  # type: ignore[union-attr]
        while queued and self.announced < self.limit and queued[0] in began and self.failure is None:
            self._collect_finished()
            if not queued or self.announced >= self.limit or self.failure is not None:
                return
            name = queued.popleft()
            self.announced += 1
            if self.events:
                self.events.emit("step_start", name)

    # -- submitting ----------------------------------------------------------------------------------
    def _submit_ready(self) -> None:
        ready, events, gate = self.ready, self.events, self.gate
        while ready and len(self.running) < self.window:
            self._check_interrupt()
            _, name = heapq.heappop(ready)
            step = self.steps[name]
            inputs = self._take_inputs(name)
            try:
                claim = self.ticket.claim(name)
            except Exception as exc:  # a step whose run() needs its own result
                self._fail(name, exc)
                return
            started = time.perf_counter()
            if claim is not None:  # another run computes it, or has just recorded it
                del inputs
                self.running[name] = started
                self.foreign[name] = claim
                claim.add_done_callback(lambda name=name, claim=claim: self.done.put((name, claim)))
                continue
            announce = gate is None or (self.announced < self.limit and not self.queued)
            if announce:
                if gate is not None:
                    self.announced += 1
                if events:
                    events.emit("step_start", name)
            try:
                writer = None if self.local else writer_for(step, name, self.plan.fingerprint(name))
                if gate is not None:  # a queued step is held back if the run stops before a thread takes it
                    handle = self.backend.submit(name, step, inputs, self.ticket.key(name), gated=not announce)
                    if not announce:
                        self.queued.append(name)
                elif writer is None:
                    handle = self.backend.submit(name, step, inputs, self.ticket.key(name))
                else:  # the worker writes the result into the cache itself
                    handle = self.backend.submit(name, step, inputs, self.ticket.key(name), writer=writer)
                    self.written.add(name)
            except Exception as exc:  # e.g. the step cannot be serialized for another process
                if announce and gate is not None:
                    self.announced -= 1
                self.ticket.fail(name, exc)
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
                    ctx = self.steps[d].ctx
                    reader = None if self.local else reader_for(ctx, d)
                    if reader is not None:  # the workers read it from the cache: it never comes here
                        ref = self.backend.stored_input(d, reader)  # type: ignore[attr-defined]
                    else:
                        ref = self.backend.cached_input(d, ctx[d])  # type: ignore[index]
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
            except queue.Empty:
                continue

    def _collect_next(self, item: tuple[str, Any]) -> None:
        name, handle = item
        started = self.running.pop(name)
        step = self.steps[name]
        is_head = name == self.head
        if self.foreign.pop(name, None) is not None:
            try:
                value = handle.result()
                ref = value if self.local else self.backend.cached_input(name, value)
            except BaseException as exc:
                self._fail(name, exc)
                return
            if self.events:
                self.events.emit("step_cached", name)
        else:
            if self.gate is not None:
                began = self.gate.began.pop(name, None)
                if not self._account(name, handle):
                    return
                if began is not None:
                    started = began
            try:
                if name in self.written:  # the worker wrote it into the cache: only a reference came back
                    self.written.discard(name)
                    keep = self.ticket.wanted(name)
                    ref, value = self._collect_written(name, step, handle, keep, is_head)
                    del handle
                else:
                    keep = is_head or step.ctx is not None or self.ticket.wanted(name)
                    ref, value = self.backend.collect(handle, keep)
                    del handle
                    seconds = time.perf_counter() - started
                    if self.gate is not None and self.gate.seconds:  # measured in the worker process
                        seconds = self.gate.seconds.pop(name, seconds)
                        self._adapt(seconds)
                    if self.local or keep:
                        value = record_result(self.plan, step, name, value, seconds)
                        if self.local:
                            ref = value
            except BaseException as exc:
                self.ticket.fail(name, exc)
                self._fail(name, exc)
                return
            self.ticket.finish(name, value, None if self.local or keep else ref.result)
            self.finished += 1
            if self.events:
                self.events.emit("step_finish", name, seconds if self.local else time.perf_counter() - started)
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

    def _adapt(self, seconds: float) -> None:
        """Where a queued step is announced only when it finishes (a process pool): queue ahead only while
        steps are quick, so that a long step is announced when it starts."""
        if seconds < _QUICK:
            self.quick += 1
            if self.quick >= self.limit:
                self.window = self.limit + self.backend.ahead
        else:
            self.quick = 0
            self.window = self.limit

    def _account(self, name: str, handle: Any) -> bool:
        """Bookkeeping of a gated step's announcement when it is collected; False if it never started."""
        if self.queued and name in self.queued:  # finished before it was announced
            self.queued.remove(name)
            gate = self.gate
            if (gate.stopped or gate.adaptive) and gate.not_started(handle):  # type: ignore[union-attr]
                self.skipped.add(name)
                self.ticket.fail(name, _NOT_STARTED_ERROR)
                return False
            if self.events:
                self.events.emit("step_start", name)
        else:
            self.announced -= 1
        return True

    def _collect_written(self, name: str, step: Any, handle: Any, keep: bool, is_head: bool) -> tuple[Any, Any]:
        """A result the worker wrote into the step's cache: the Context shows it lazily from the small
        reference; the value is fetched only for the head (read once, from the cache) or another run. If
        the worker's write cannot be used, the value comes here and is recorded as on other executors."""
        ref, written, value = self.backend.collect_written(handle, keep)  # type: ignore[attr-defined]
        if not adopt(step, name, self.plan.fingerprint(name), written):
            value = ref.result() if value is None else value
            return ref, record_result(self.plan, step, name, value, written.seconds)
        if is_head and not keep and written.written:
            value = step.ctx[name]
        return ref, value

    def _fail(self, name: str, exc: BaseException) -> None:
        if self.gate is not None:
            self.gate.stop()  # queued steps do not start
        super()._fail(name, exc)

    def _drain_after_interrupt(self, exc: KeyboardInterrupt) -> None:
        running = list(self.running)
        abandoned = False
        try:
            while self.running:
                self._collect_next(self._next_done())
        except KeyboardInterrupt:
            abandoned = True
        running = [name for name in running if name not in self.skipped]
        note_interrupt(exc, running, self.finished, abandoned)


_MISSING = object()
_QUICK = 0.005  # seconds: a step this short costs less than handing it to a process pool's worker
_NOT_STARTED_ERROR = KeyboardInterrupt("the run that was to compute it stopped before starting it")
