"""``materialize(executor=client)``: the whole plan submitted ahead to Dask as one graph, the client keeping books.

Each scheduled step becomes a Dask task whose arguments are its inputs' tasks, so the scheduler orders the
steps and moves results between workers, and no step waits for a round trip through this process. The
graph goes to the scheduler in one message per batch (plan order, :mod:`job_orchestra.dask_submit`), not
one per step. A step travels as its class (cloudpickled once per run, with its notebook cell sources) plus its
state (plain pickle where it can, cloudpickle where it must); a worker loads each class once.

The client only keeps books as tasks finish: results go to their Contexts (gathered in batches; a worker
that writes into a shared cache sends only a small reference, :mod:`job_orchestra.worker_writes`), the
in-flight registry (:mod:`job_orchestra.inflight`) and the progress events. On Dask, ``step_start`` means
the step's inputs are done and it is queued on the cluster: Dask decides the moment it starts. A step
another run of this process computes is waited for, never submitted again: the steps that need it are
submitted once its result is there. On a failure or a Ctrl-C, the steps running on the cluster finish and
keep their results, and everything else is cancelled there; a failed step's dependents never run.
"""

from __future__ import annotations

import queue
import time
import uuid
from typing import TYPE_CHECKING, Any

from .dask_submit import GraphSubmission
from .dask_tasks import Shipper, cancel_not_started
from .run_loop import RunLoop
from .runstate import note_interrupt, record_result
from .shipping import RemoteFailure
from .worker_writes import adopt

if TYPE_CHECKING:
    from . import inflight
    from .events import Dispatcher
    from .plan import ExecutionPlan

__all__ = ["DaskGraphRun"]

_POLL = 0.1  # seconds between checks for Ctrl-C (and for steps another run computes) while waiting
_SWEEP = 0.05  # seconds between polls of the steps not awaited one by one (see DaskGraphRun.lean)


# -- the run ---------------------------------------------------------------------------------------------
class DaskGraphRun(GraphSubmission, RunLoop):
    """One ``materialize()`` on a Dask client with the whole plan submitted ahead (see the module doc).

    Invariant that keeps cancelling safe: the client holds the Future of every task of this run that is not
    finished yet (Dask's cancel walks a task's dependents, which must all be wanted by someone); a Future is
    dropped once its task has finished and no step left to submit needs its value.
    """

    def __init__(
        self, plan: ExecutionPlan, to_run: list[str], events: Dispatcher, backend: Any, ticket: inflight.RunTicket
    ) -> None:
        from dask._expr import LLGExpr  # Dask is there: the backend was made from its Client
        from dask._task_spec import Task, TaskRef  # (and so are these)

        self.Task, self.TaskRef, self.LLGExpr = Task, TaskRef, LLGExpr
        graph = plan.graph
        self.plan, self.events, self.ticket = plan, events, ticket
        self.client = backend.client
        self.steps, self.deps, self.head = graph.steps, graph.deps, graph.head
        self.to_run = to_run
        self.scheduled = scheduled = set(to_run)
        self.run_id = uuid.uuid4().hex[:8]
        self.position = {name: i for i, name in enumerate(to_run)}
        self.task_keys: dict[str, tuple] = {}  # step -> its (value, out, ref) task keys, when it has several
        self.shipper = Shipper()
        self.inputs: dict[str, tuple[str, ...]] = {}  # each step's distinct scheduled inputs
        self.unsubmitted: dict[str, int] = {}  # how many consumers of each step are not submitted yet
        for name in to_run:
            own = tuple(d for d in dict.fromkeys(self.deps[name]) if d in scheduled)
            self.inputs[name] = own
            for d in own:
                self.unsubmitted[d] = self.unsubmitted.get(d, 0) + 1
        self.refs: dict[str, Any] = {}  # step -> TaskRef of the task holding its value
        self.value_key: dict[str, Any] = {}
        self.futures: dict[Any, Any] = {}  # key -> Future the client holds (see the invariant)
        self.watch: dict[Any, tuple[str, str]] = {}  # key -> (step, role) of the futures awaited
        self.key_name: dict[Any, str] = {}
        self.consumers: dict[str, list[str]] = {}  # submitted consumers of each step
        self.waiting_for: dict[str, int] = {}  # submitted step -> inputs not finished yet
        self.started: dict[str, float] = {}  # step -> when its inputs were done (step_finish's seconds)
        self.from_context: dict[str, Any] = {}
        self.foreign: dict[str, Any] = {}  # step another run computes (or has recorded) -> its Claim
        self.held: list[str] = []  # steps waiting for such a result (plan order)
        self.open: set[str] = set()  # steps this run claimed and has not finished
        self.done: set[str] = set()  # steps whose result is known
        self.failed: set[str] = set()  # steps that failed, or whose inputs did
        self.finished = 0
        self.failure: tuple[str, BaseException] | None = None
        self.stopping = False
        self.head_output: Any = None
        self.interrupt_requested = False
        self.completed: Any = None
        self.lean = not events
        """No progress to report: the steps whose value nobody here needs (no Context, not the head) are not
        awaited one by one (that costs this process, where a LocalCluster's scheduler also runs, about as
        much as Dask's own work per task); their futures are polled a few times a second instead."""
        self.polled: dict[Any, Any] = {}  # key -> future, checked by _sweep
        self.swept = 0.0

    # -- the loop -----------------------------------------------------------------------------------------
    def run(self) -> Any:
        __tracebackhide__ = True
        from distributed import as_completed  # Dask is there: the backend was made from its Client

        self.completed = as_completed([], loop=self.client.loop)
        with self._deferred_ctrl_c():
            try:
                self._claim_all()
                self._resolve_foreign()
                if self.failure is None:
                    self._submit([n for n in self.to_run if n in self.open])
                while self.failure is None and (self.watch or self.foreign):
                    self._collect(self._next_batch())
                if self.failure is not None:
                    self._stop()
                    while self.watch:
                        self._collect(self._next_batch())
            except KeyboardInterrupt as exc:
                self._after_interrupt(exc)
                raise
            finally:
                self._release_all()
        self._raise_failure()
        return self.head_output

    def _next_batch(self) -> list[Any]:
        """The futures finished since the last call (waiting for at least one, or for another run)."""
        ready = self.completed.queue
        while True:
            self._check_interrupt()
            polled = self.polled
            if self.foreign and not self.stopping:
                if self._resolve_foreign():
                    return []
                timeout = 0.01
            elif not self.watch:
                return []
            elif polled:
                if time.perf_counter() - self.swept > _SWEEP:
                    batch = self._sweep()
                    if batch:
                        return batch
                timeout = _SWEEP if len(polled) < len(self.watch) else _SWEEP / 5
            else:
                timeout = _POLL
            try:
                first = ready.get(timeout=timeout)
            except queue.Empty:
                continue
            batch = [first]
            while not ready.empty():
                batch.append(ready.get_nowait())
            if polled and any(self.key_name.get(f.key) == self.head for f in batch):  # the others are over
                batch = [*self._sweep(), *batch]
            return batch

    def _sweep(self) -> list[Any]:
        """The polled futures (see :attr:`lean`) that are not pending any more, in plan order."""
        self.swept = time.perf_counter()
        polled = self.polled
        done = [f for f in polled.values() if f.status != "pending"]
        for future in done:
            del polled[future.key]
        return done

    # -- claiming, and results other runs compute ---------------------------------------------------------
    def _claim_all(self) -> None:
        """Claim every step before submitting any: a step another run computes is awaited, not submitted."""
        for name in self.to_run:
            try:
                claim = self.ticket.claim(name)
            except Exception as exc:  # a step whose run() needs its own result
                self._fail(name, exc)
                return
            if claim is None:
                self.open.add(name)
            else:
                self.foreign[name] = claim

    def _resolve_foreign(self) -> bool:
        """Take the results other runs have finished; submit the steps that waited for them. True if any."""
        resolved = []
        for name, claim in list(self.foreign.items()):
            entry = claim.entry
            if entry is not None and not entry.done():
                continue
            del self.foreign[name]
            try:
                value = claim.result()
            except BaseException as exc:
                self._fail(name, exc)
                continue
            resolved.append((name, value))
            self.done.add(name)
            if self.events:
                self.events.emit("step_cached", name)
            if name == self.head:
                self.head_output = value
        needed = [(n, v) for n, v in resolved if self.unsubmitted.get(n)]
        if needed:
            futures = self.client.scatter([v for _, v in needed], hash=False)
            for (name, _), future in zip(needed, futures):
                self.futures[future.key] = future
                self.refs[name], self.value_key[name] = self.TaskRef(future.key), future.key
        if resolved and self.held and self.failure is None:
            self._submit(list(self.held))
        return bool(resolved)

    # -- collecting ---------------------------------------------------------------------------------------
    def _collect(self, batch: list[Any]) -> None:
        """Record the steps of ``batch`` (finished futures), their values gathered in one call. Every step of
        the batch is recorded before an interrupt raised by a progress callback goes on."""
        finished, failed, gather = [], [], []
        head, ticket = self.head, self.ticket
        for future in batch:
            role = self.watch.pop(future.key, None)
            if role is None:
                continue
            name, kind = role
            status = future.status
            if status == "finished":
                wanted = kind != "plain" or name == head or ticket.wanted(name)
                finished.append((name, kind, future, wanted))
                if wanted:
                    gather.append(future)
            elif status == "error" or not self.stopping:  # failed, or cancelled / lost not by this run
                failed.append((name, future))
        values: Any = None
        if gather:
            try:
                values = iter(self.client.gather(gather))
            except Exception:  # e.g. a worker holding one died since: take them one by one
                values = None
        interrupted: KeyboardInterrupt | None = None
        failed_here = self.failed
        for name, kind, future, wanted in finished:
            if failed_here and any(d in failed_here for d in self.inputs[name]):
                failed_here.add(name)  # it ran on an input this run could not record: not kept either
                continue
            try:
                got = _UNSET if not wanted else next(values) if values is not None else future.result()
                self._record(name, kind, future, got)
            except KeyboardInterrupt as exc:
                interrupted = interrupted or exc
            except BaseException as exc:  # a Context refusing the value, a cache that cannot be written
                self._fail_open(name, exc)
        for name, future in failed:
            try:
                self._failed(name, future)
            except KeyboardInterrupt as exc:
                interrupted = interrupted or exc
        if interrupted is not None:
            raise interrupted

    def _record(self, name: str, kind: str, future: Any, got: Any) -> None:
        step, key = self.steps[name], self.value_key[name]
        seconds = None
        fetch = None
        if kind == "plain":
            value = None if got is _UNSET else got
            if got is _UNSET:
                fetch = future.result  # another run that waits for it fetches it from the cluster
        elif kind == "timed":
            value, seconds = got
            self.futures.pop(self.task_keys[name][1], None)
            value = record_result(self.plan, step, name, value, seconds)
        else:
            written = got
            seconds = written.seconds
            value_future = self.futures[key]
            _, out, ref = self.task_keys[name]
            self.futures.pop(out, None)
            self.futures.pop(ref, None)
            if not adopt(step, name, self.plan.fingerprint(name), written):
                value = record_result(self.plan, step, name, value_future.result(), seconds)
            elif self.ticket.wanted(name):
                value = value_future.result()
            elif name == self.head and written.written:
                value = step.ctx[name]  # type: ignore[index]  # read once, from the cache
            else:
                value, fetch = None, value_future.result
        self.ticket.finish(name, value, fetch)
        self.open.discard(name)
        self.done.add(name)
        self.finished += 1
        now = time.perf_counter()
        if seconds is None:
            seconds = now - self.started.get(name, now)
        events = self.events
        if events:
            events.emit("step_finish", name, seconds)
        if name == self.head:
            self.head_output = value
        self._release_value(name)
        waiting_for, started = self.waiting_for, self.started
        for consumer in self.consumers.get(name, ()):
            left = waiting_for[consumer] - 1
            waiting_for[consumer] = left
            if not left:
                started[consumer] = now
                if events:
                    events.emit("step_start", consumer)

    def _failed(self, name: str, future: Any) -> None:
        if future.status != "error":
            self._fail_open(name, _lost(name, future.status))
            return
        exc = future.exception()
        blamed = getattr(exc, "step", None)
        if blamed is None:
            task = getattr(exc, "task", None)  # KilledWorker names the task whose workers kept dying
            blamed = self.key_name.get(task, name) if isinstance(task, (str, tuple)) else name
        if blamed != name:  # Dask gave it the error of an input that failed: it never ran
            self.failed.add(name)
            return
        if isinstance(exc, RemoteFailure):
            exc = exc.unwrap()
        self._fail_open(name, exc)

    def _fail_open(self, name: str, exc: BaseException) -> None:
        self.failed.add(name)
        self.ticket.fail(name, exc)
        self.open.discard(name)
        self._fail(name, exc)

    # -- stopping -----------------------------------------------------------------------------------------
    def _stop(self, *, everything: bool = False) -> list[str]:
        """Start no new step: cancel every task of this run not started yet (those running finish and are
        recorded); returns the steps left running. The scheduler decides both in one go, so no task can
        start between the question and the cancelling."""
        self.stopping = True
        self.foreign, self.held = {}, []
        groups: dict[Any, list[Any]] = {}
        for key, future in self.futures.items():
            if future.status == "pending":
                groups.setdefault(self.key_name.get(key, key), []).append(key)
        if not groups:
            return []
        client = self.client
        try:
            cancelled = client.run_on_scheduler(cancel_not_started, groups, client.id, everything)
        except Exception:  # a scheduler that cannot run it: cancel from here, running or not
            cancelled = [k for keys in groups.values() for k in keys]
            client.cancel([self.futures[k] for k in cancelled])
        for key in cancelled:
            self.watch.pop(key, None)
            self.polled.pop(key, None)
        return sorted({name for name, _ in self.watch.values()} & self.open)

    def _after_interrupt(self, exc: KeyboardInterrupt) -> None:
        running = self._stop()
        abandoned = False
        try:
            while self.watch:
                self._collect(self._next_batch())
        except KeyboardInterrupt:
            abandoned = True
            self._stop(everything=True)
        note_interrupt(exc, running, self.finished, abandoned)

    def _release_all(self) -> None:
        """The run is over: what it claimed and did not finish fails for the runs waiting on it; Dask may
        forget every task of this run."""
        error: BaseException = self.failure[1] if self.failure is not None else KeyboardInterrupt()
        for name in self.open:
            self.ticket.fail(name, error)
        self.open = set()
        self.futures.clear()
        self.watch.clear()
        self.polled.clear()
        self.completed = None


def _lost(name: str, status: str) -> BaseException:
    return RuntimeError(
        f"Step {name!r} was {status} on the Dask cluster by something other than this materialize() (another "
        "client, or the scheduler). Results that finished are kept; call materialize() again to run the rest."
    )


_UNSET = object()
