"""What crosses to a worker process, and the adapter every executor backend implements.

A worker gets a *stripped copy* of the step (same class and attributes, ``ctx=None``, ``dependencies=[]``)
serialized with cloudpickle, so classes and functions defined in a notebook or ``__main__`` travel by
value, and no Context or upstream step is shipped.

Why cloudpickle rather than dill (which snapshots use): ``dill.dumps(..., recurse=True)`` walks the globals
of every function a step uses, including library functions that are pickled by reference anyway; on
scikit-learn's decorated functions (``cross_val_score``) that walk never ends (RecursionError after ~0.6 s,
on every step). cloudpickle, the serializer of Dask, loky and Ray, handles them in well under a millisecond,
and maps a notebook class that comes back in a result to the notebook's own class.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import sys
import tempfile
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any

import cloudpickle

from .attrdict import as_attrdict
from .inflight import running_here

if TYPE_CHECKING:
    from .step import Step

__all__ = [
    "NOT_STARTED",
    "Backend",
    "Gate",
    "RemoteFailure",
    "StopFile",
    "call_gated",
    "call_releasing",
    "dump_step",
    "process_context",
    "run_on_dask",
    "run_queued",
    "run_shipped",
    "ship_call",
    "ship_dumps",
    "strip_step",
]


# -- shipping steps to other processes ------------------------------------------------------------------
def strip_step(step: Step) -> Step:
    """A shallow copy of ``step`` without its Context and dependencies: what a worker needs to call ``run``."""
    clone = copy.copy(step)
    clone.ctx = None
    clone.dependencies = []
    return clone


def ship_dumps(obj: Any) -> bytes:
    """Serialize for another process; code from ``__main__`` or a notebook goes by value."""
    return cloudpickle.dumps(obj)


def dump_step(name: str, step: Step) -> bytes:
    """Serialize a stripped copy of ``step`` (classes from ``__main__`` or a notebook by value)."""
    try:
        return ship_dumps(strip_step(step))
    except Exception as exc:
        exc.add_note(
            f"job-orchestra: step {name!r} ({type(step).__name__}) cannot be serialized (cloudpickle) to run in "
            "another process. Keep unpicklable objects (open files, locks, connections) out of the step's "
            "attributes, create them inside run(), or use executor='threads'."
        )
        raise


def ship_call(name: str, step: Step, inputs: list[Any]) -> tuple[bytes, bytes]:
    """The step and its inputs as bytes for another process; inputs that cannot be sent name the step."""
    payload = dump_step(name, step)
    try:
        args = ship_dumps(inputs)
    except Exception as exc:
        exc.add_note(f"job-orchestra: the inputs of step {name!r} cannot be serialized (cloudpickle).")
        raise
    return payload, args


class RemoteFailure(Exception):
    """Carries an exception raised by a step in a worker back to the coordinating process.

    Plain pickle cannot carry exception classes defined in a notebook, and a KeyboardInterrupt must not
    take the worker down; the scheduler re-raises the original exception (:meth:`unwrap`).
    """

    def __init__(self, payload: bytes, remote_traceback: str) -> None:
        super().__init__(payload, remote_traceback)
        self.payload = payload
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:  # what worker logs show: the original error, not the payload
        lines = self.remote_traceback.strip().splitlines()
        return lines[-1] if lines else "a step failed in a worker"

    def __repr__(self) -> str:
        return f"RemoteFailure({str(self)!r})"

    def unwrap(self) -> BaseException:
        try:
            exc = pickle.loads(self.payload)
        except Exception as load_error:  # pragma: no cover - the class exists on the worker only
            exc = RuntimeError(f"a step failed in a worker and its exception cannot be loaded here: {load_error}")
        exc.add_note("Traceback in the worker:\n" + self.remote_traceback.rstrip())
        return exc


def _failure(exc: BaseException) -> RemoteFailure:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        payload = cloudpickle.dumps(exc)
    except Exception:
        payload = cloudpickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return RemoteFailure(payload, text)


def run_shipped(step_bytes: bytes, inputs_bytes: bytes) -> bytes:
    """Worker side for process executors: load the step and its inputs, run it, return the pickled output."""
    try:
        step = pickle.loads(step_bytes)
        output = as_attrdict(step.run(*pickle.loads(inputs_bytes)))
        return ship_dumps(output)
    except BaseException as exc:
        raise _failure(exc) from None


def run_queued(step_bytes: bytes, inputs_bytes: bytes, stop_path: str, gated: bool) -> tuple[float, bytes]:
    """Worker side of a step on a process pool that takes steps ahead: ``(seconds it ran, pickled output)``,
    or ``(0.0, b"")`` for a ``gated`` (queued) step whose run has stopped (:class:`StopFile`)."""
    if gated and os.path.exists(stop_path):
        return 0.0, b""
    began = time.perf_counter()
    try:
        out = run_shipped(step_bytes, inputs_bytes)
    except BaseException:
        _touch(stop_path)  # before this worker takes its next queued step
        raise
    return time.perf_counter() - began, out


def call_releasing(run: Any, inputs: list[Any], key: tuple | None = None) -> Any:
    """Call ``run(*inputs)`` after emptying ``inputs``, so the executor's work item does not keep the
    inputs alive once the step is done (a thread pool holds its arguments until the next task). ``key``
    marks this thread as running that step (see :func:`job_orchestra.inflight.running_here`)."""
    args = tuple(inputs)
    inputs.clear()
    if key is None:
        return run(*args)
    here = running_here()
    here.add(key)
    try:
        return run(*args)
    finally:
        here.discard(key)


class Gate:
    """What a run shares with the pool threads running steps it submitted ahead of free workers.

    ``began`` maps each queued step a thread has begun to when it began (the coordinating thread announces a
    queued step only once it is there); ``stopped`` is set by a failing step, or by the run on a failure or
    Ctrl-C, so queued steps that have not begun never start.
    """

    __slots__ = ("began", "seconds", "stopped")

    adaptive = False  # steps always queue ahead

    def __init__(self) -> None:
        self.began: dict[str, float] = {}
        self.seconds: dict[str, float] = {}  # how long finished steps ran, where the worker measured it
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def not_started(self, handle: Any) -> bool:
        """Whether a finished handle is a queued step that did not start."""
        return not handle.cancelled() and handle.exception() is None and handle.result() is NOT_STARTED

    def close(self) -> None:
        pass


class StopFile(Gate):
    """The gate of steps queued ahead in a process pool: a file that appears when the run stops.

    Worker processes cannot see this process's memory, so a queued step checks for the file before it
    starts, and a failing step creates it. Nothing tells this process when a queued step begins, so such a
    step is announced when it finishes; steps queue ahead only while steps are quick (``adaptive``).
    """

    __slots__ = ("path",)

    adaptive = True

    def __init__(self) -> None:
        super().__init__()
        self.path = os.path.join(tempfile.gettempdir(), f"job-orchestra-stop-{uuid.uuid4().hex}")

    def stop(self) -> None:
        self.stopped = True
        _touch(self.path)

    def not_started(self, handle: Any) -> bool:
        return not handle.cancelled() and handle.exception() is None and handle.result()[1] == b""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _touch(path: str) -> None:
    with contextlib.suppress(OSError), open(path, "a"):
        pass


NOT_STARTED = object()
"""What :func:`call_gated` returns for a queued step that did not start because its run had stopped."""


def call_gated(gate: Gate, name: str, gated: bool, run: Any, inputs: list[Any], key: tuple | None) -> Any:
    """:func:`call_releasing` for a step submitted to a thread pool, noting in ``gate`` when it began; a
    ``gated`` (queued) step whose run has stopped returns :data:`NOT_STARTED` without running."""
    if gated:  # (a step announced when submitted started on a free thread: nothing to note)
        gate.began[name] = time.perf_counter()
        if gate.stopped:
            del gate.began[name]
            inputs.clear()
            return NOT_STARTED
    try:
        return call_releasing(run, inputs, key)
    except BaseException:
        gate.stopped = True  # before the pool thread takes its next queued step
        raise


def run_on_dask(step_bytes: bytes, *inputs: Any) -> Any:
    """Worker side for Dask: inputs arrive as values (Dask moved them); the output stays on the worker."""
    try:
        step = pickle.loads(step_bytes)
        return as_attrdict(step.run(*inputs))
    except BaseException as exc:
        raise _failure(exc) from None


# -- the adapter the scheduler drives ---------------------------------------------------------------------
class Backend:
    """What the scheduler needs from an executor. Handles must offer ``add_done_callback(fn)``."""

    limit: int | None = None
    """At most this many steps in flight (None: as many as are ready)."""

    ahead: int = 0
    """How many more steps may wait in the executor's own queue (only with a :class:`Gate`)."""

    gate: Gate | None = None
    """Set when steps submitted ahead run in this process and can be held back (see :func:`call_gated`)."""

    local_results: bool = True
    """Results come back to this process (False: they stay with the workers, consumers get references)."""

    def submit(self, name: str, step: Step, inputs: list[Any], key: tuple | None = None) -> Any:
        """Start ``step.run(*inputs)``; ``key`` identifies the step for :mod:`job_orchestra.inflight`."""
        raise NotImplementedError

    def collect(self, handle: Any, keep_value: bool) -> tuple[Any, Any]:
        """``(ref, value)`` of a finished step: ``ref`` is passed to its consumers, ``value`` is the output
        itself (only required when ``keep_value``: for its Context or as the head's result). Raises the
        step's own exception if it failed."""
        raise NotImplementedError

    def cached_input(self, name: str, value: Any) -> Any:
        """How a result taken from a Context is passed to steps on this backend."""
        return value

    def close(self, abandon: bool = False) -> None:
        """Release what the backend created; ``abandon`` when steps may still be running (a second interrupt)."""


def process_context() -> Any:
    """How ``"processes"`` starts its workers: from a fork server where there is one, else by spawning.

    Never by forking this process: a fork copies its locks as they are at that instant, and a pipeline has
    usually started thread pools already (OpenMP and BLAS under scikit-learn, a Jupyter kernel's threads),
    so the child can hang forever. Python 3.14 made the same choice. Steps travel by value, so workers need
    nothing from this process but importable libraries. To choose yourself, pass
    ``executor=ProcessPoolExecutor(mp_context=multiprocessing.get_context(...))``.
    """
    import multiprocessing  # heavy: only process runs need it

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["job_orchestra.shipping"])
        return context
    return multiprocessing.get_context("spawn")


def _give_main_a_spec() -> None:
    """Let multiprocessing start workers from an IPython session whose ``__main__`` is a stand-in object.

    Starting a worker reads ``sys.modules["__main__"].__spec__``, which IPython's stand-in module lacks;
    ``None`` is its value for an interactive session (there is no main script to import in the worker).
    """
    main = sys.modules.get("__main__")
    if main is not None and not hasattr(main, "__spec__"):
        try:
            main.__spec__ = None
        except AttributeError:  # pragma: no cover - a main module that takes no attributes
            pass
