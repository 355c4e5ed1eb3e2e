"""Where parallel steps run: threads, processes, any ``concurrent.futures.Executor``, or Dask distributed.

:func:`resolve` turns the ``executor=`` argument of ``materialize()`` into a :class:`Backend`, a small
adapter the scheduler drives: ``submit`` a step with its inputs, get told when it is done, ``collect`` its
result. Threads call ``step.run`` in this process. Every other executor gets a stripped, cloudpickled copy of the
step (:mod:`job_orchestra.shipping`). ``"processes"`` runs on :mod:`job_orchestra.workers`: a worker that
dies costs only the step it was running, which is named.

Dask is imported only when a ``dask.distributed.Client`` is passed.
"""

from __future__ import annotations

import contextlib
import operator
import os
import pickle
import uuid
from collections.abc import Iterator
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .errors import WorkerDiedError
from .shipping import (
    NOT_STARTED,
    Backend,
    Gate,
    RemoteFailure,
    StopFile,
    _give_main_a_spec,
    call_releasing,
    dump_step,
    process_context,
    run_on_dask,
    run_queued,
    run_shipped,
    ship_call,
    strip_step,
)
from .thread_queue import Job, ThreadQueue

if TYPE_CHECKING:
    from .step import Step

__all__ = ["Backend", "DaskBackend", "FuturesBackend", "process_context", "resolve", "strip_step"]


class FuturesBackend(Backend):
    """A ``concurrent.futures.Executor``: threads run ``step.run`` here, other executors get pickled payloads."""

    def __init__(
        self, executor: Executor, limit: int | None, *, owned: bool, ship: bool, queue_ahead: bool = False
    ) -> None:
        if ship:
            _give_main_a_spec()
        self.executor = executor
        self.limit = limit
        self.owned = owned
        self.ship = ship
        self.queue: ThreadQueue | None = None
        if queue_ahead and limit:
            # Every worker finds its next step queued instead of waiting for this thread to submit one; the
            # gate keeps "no new step after a failure or Ctrl-C" exact.
            self.ahead = max(_AHEAD if ship else _THREAD_AHEAD, 4 * limit)
            self.gate = StopFile() if ship else Gate()
            if not ship:  # threads: this run's own queue, which at most `limit` pool threads drain
                self.queue = ThreadQueue(executor, limit, self.gate)
        self.names: dict[Future, str] = {}  # step of each shipped future still running
        self.broken_with: list[str] | None = None  # the steps the pool held when it broke

    def _broken(self, name: str) -> WorkerDiedError:
        """A worker of the caller's process pool died: the pool failed every step it held."""
        if self.broken_with is None:
            self.broken_with = sorted({name, *self.names.values()})
        held = ", ".join(map(repr, self.broken_with))
        return WorkerDiedError(
            f"Step {name!r} was in the process pool when one of its worker processes died (killed, crashed or "
            f"exited), and that pool then fails every step it holds ({held}), so which one killed it cannot be "
            "told. Steps that finished before kept their results; the next materialize() runs only what is "
            "left. executor='processes' runs each worker in its own pool: a dying worker costs only its own "
            "step, which is then named.",
            name,
        )

    def submit(
        self, name: str, step: Step, inputs: list[Any], key: tuple | None = None, gated: bool = False
    ) -> Future | Job:
        if not self.ship:
            if self.queue is not None:
                return self.queue.put(name, step.run, inputs, key, gated)
            return self.executor.submit(call_releasing, step.run, inputs, key)
        payload, args = ship_call(name, step, inputs)
        if isinstance(self.gate, StopFile):
            future = self.executor.submit(run_queued, payload, args, self.gate.path, gated)
        else:
            future = self.executor.submit(run_shipped, payload, args)
        self.names[future] = name
        return future

    def collect(self, handle: Future | Job, keep_value: bool) -> tuple[Any, Any]:
        name = self.names.pop(handle, None)
        try:
            out = handle.result()
        except RemoteFailure as failure:
            raise failure.unwrap() from None
        except BrokenExecutor as exc:
            if name is None:
                raise
            raise self._broken(name) from exc
        if self.ship:
            if isinstance(self.gate, StopFile):
                seconds, out = out
                if not out:
                    return NOT_STARTED, NOT_STARTED
                self.gate.seconds[name] = seconds  # type: ignore[index]
            out = pickle.loads(out)
        return out, out

    def close(self, abandon: bool = False) -> None:
        if self.owned:
            self.executor.shutdown(wait=not abandon, cancel_futures=True)
        if self.gate is not None:
            self.gate.close()


class DaskBackend(Backend):
    """A ``dask.distributed.Client``: each step is a task whose arguments are its dependencies' futures.

    Results stay on the workers and move between them as Dask decides; only what a Context keeps and the
    head's result are gathered. Without ``max_workers`` the whole plan is submitted ahead
    (:mod:`job_orchestra.dask_graph`); with it, the parallel loop keeps at most that many steps in flight and
    drops a future once every consumer has been submitted, so Dask frees the data when those are done.
    """

    local_results = False

    def __init__(self, client: Any, max_workers: int | None) -> None:
        self.client = client
        self.whole_graph = max_workers is None  # no limit asked: the whole graph goes to the scheduler ahead
        if max_workers is None:
            total = sum(client.nthreads().values())
            max_workers = total or None  # no workers yet (adaptive cluster): let Dask queue the tasks
        self.limit = max_workers
        self._run_id = uuid.uuid4().hex[:8]
        self._values: dict[str, Any] = {}  # reference task key -> the value's future (worker-written results)

    @property
    def runner(self) -> Any:
        """The run that submits the whole plan ahead (:mod:`job_orchestra.dask_graph`), unless ``max_workers``
        asks for at most that many steps in flight (then the parallel loop keeps to it)."""
        if not self.whole_graph:
            return None
        from .dask_graph import DaskGraphRun  # only Dask runs need it

        return DaskGraphRun

    def submit(self, name: str, step: Step, inputs: list[Any], key: tuple | None = None, writer: Any = None) -> Any:
        """A task running ``step``; with a ``writer`` (:mod:`job_orchestra.worker_writes`) the worker also
        writes the result into the cache, and the returned handle is its small reference."""
        payload = dump_step(name, step)
        task = f"{name}-{self._run_id}"
        if writer is None:
            return self.client.submit(run_on_dask, payload, *inputs, key=task, pure=False)
        from .worker_writes import run_and_write  # only runs with a cache the workers write to need it

        both = self.client.submit(run_and_write, payload, name, writer, *inputs, key=task, pure=False)
        # Both halves are taken where the pair is (Dask runs a task next to its only input): the value
        # stays there for the consumers, only the reference comes to the client.
        value = self.client.submit(operator.getitem, both, 0, key=f"{task}-value", pure=False)
        ref = self.client.submit(operator.getitem, both, 1, key=f"{task}-ref", pure=False)
        self._values[ref.key] = value
        return ref

    def collect_written(self, handle: Any, keep_value: bool) -> tuple[Any, Any, Any]:
        """``(ref, written, value)`` of a step whose worker wrote its result into the cache: ``ref`` for its
        consumers, ``written`` the worker's :class:`~job_orchestra.worker_writes.WrittenRef`, ``value`` only
        when ``keep_value`` (fetched from the worker)."""
        value_future = self._values.pop(handle.key)
        try:
            written = handle.result()  # a few dozen bytes
            value = value_future.result() if keep_value else None
        except RemoteFailure as failure:
            raise failure.unwrap() from None
        return value_future, written, value

    def collect(self, handle: Any, keep_value: bool) -> tuple[Any, Any]:
        try:
            value = handle.result() if keep_value or handle.status != "finished" else None
        except RemoteFailure as failure:
            raise failure.unwrap() from None
        return handle, value

    def cached_input(self, name: str, value: Any) -> Any:
        return self.client.scatter(value, hash=False)

    def stored_input(self, name: str, reader: Any) -> Any:
        """A result in a cache the workers reach: a task reads it there (it does not pass through here)."""
        from .worker_writes import read_on_worker  # only runs with a cache the workers share need it

        return self.client.submit(read_on_worker, reader, key=f"{name}-{self._run_id}-stored", pure=False)

    def close(self, abandon: bool = False) -> None:
        pass  # the client belongs to the caller


_AHEAD = 16  # steps waiting in a process pool's queue, at least: enough to keep its workers from idling
# Steps waiting in a thread run's own queue, at most: its threads rarely find it empty (and so rarely stop and
# are started again), and this thread collects many finished steps each time it wakes.
_THREAD_AHEAD = 1024


def _is_dask_client(obj: Any) -> bool:
    kind = type(obj)
    return kind.__name__ == "Client" and kind.__module__.split(".")[0] == "distributed"


def _check_max_workers(max_workers: int | None) -> None:
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise ValueError(f"max_workers= must be a positive integer or None, got {max_workers!r}")


@contextlib.contextmanager
def resolve(executor: Any, max_workers: int | None = None) -> Iterator[Backend]:
    """The backend for ``materialize(executor=...)``; executors created here are shut down on exit.

    ``"threads"`` / ``"processes"`` create a pool of ``max_workers`` (default: the number of CPUs); an
    Executor instance or a Dask Client is used as is, with at most ``max_workers`` steps in flight.
    """
    _check_max_workers(max_workers)
    backend: Backend
    if isinstance(executor, str):
        choice = executor.lower()
        if choice == "threads":
            pool: Executor = ThreadPoolExecutor(max_workers, thread_name_prefix="job-orchestra")
            backend = FuturesBackend(pool, pool._max_workers, owned=True, ship=False, queue_ahead=True)
        elif choice == "processes":
            from .workers import ProcessWorkers  # imports multiprocessing: only process runs pay for it

            _give_main_a_spec()
            backend = ProcessWorkers(max_workers or os.cpu_count() or 1)
        else:
            raise ValueError(
                f"executor={executor!r} is not known: use None (serial), 'threads', 'processes', a "
                "concurrent.futures.Executor or a dask.distributed.Client."
            )
    elif isinstance(executor, Executor):
        own_limit = getattr(executor, "_max_workers", None)
        limit = min(filter(None, (max_workers, own_limit)), default=None)
        threads = isinstance(executor, ThreadPoolExecutor)
        # Steps queue ahead on a thread pool (at most `limit` of its threads take this run's steps), and on a
        # process pool whose own size keeps max_workers (a smaller limit is kept here, one step per worker).
        processes = isinstance(executor, ProcessPoolExecutor) and limit == own_limit
        ahead = limit is not None and (threads or processes)
        backend = FuturesBackend(executor, limit, owned=False, ship=not threads, queue_ahead=ahead)
    elif _is_dask_client(executor):
        backend = DaskBackend(executor, max_workers)
    else:
        raise TypeError(
            f"executor= takes None, 'threads', 'processes', a concurrent.futures.Executor or a "
            f"dask.distributed.Client, got {type(executor).__name__}."
        )
    abandon = False
    try:
        yield backend
    except KeyboardInterrupt:
        abandon = True
        raise
    finally:
        backend.close(abandon=abandon)
