"""``executor="processes"``: worker processes that die alone, and never run the main script again.

One :class:`~concurrent.futures.ProcessPoolExecutor` of one process per worker, rather than one pool of N:
when a pool's process dies (SIGKILL from the kernel's OOM killer, a segfault in native code, ``os._exit``)
the standard pool marks every step it holds as failed and terminates its other workers. With a pool per
worker, the step that was running in the dead process is known exactly and named; steps running in the
other workers finish and keep their results; the dead worker's pool is replaced for later runs.

Workers do not import the main script (``__main__``) when they start: steps, and the classes and functions
they use, travel by value (cloudpickle), so a worker needs nothing from it. A script without an
``if __name__ == "__main__":`` guard therefore works, instead of every worker running the script again
and failing with a cascade of ``RuntimeError`` and ``BrokenProcessPool``.
"""

from __future__ import annotations

import multiprocessing.spawn
import pickle
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from .errors import WorkerDiedError
from .shipping import Backend, RemoteFailure, process_context, run_shipped, ship_call

if TYPE_CHECKING:
    from .step import Step

__all__ = ["ProcessWorkers", "describe_exit", "worker_died"]

_STARTING = threading.local()  # .ours: this thread is starting one of our workers
_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")


def _install() -> None:
    """Wrap how multiprocessing prepares a new process (once), so that our own workers are prepared without
    the main script; every other process is prepared exactly as before."""
    current = multiprocessing.spawn.get_preparation_data
    if getattr(current, "_job_orchestra", False):
        return

    def preparation_data(name: str) -> dict:
        data = current(name)
        if getattr(_STARTING, "ours", False):
            for key in _MAIN_KEYS:
                data.pop(key, None)
        return data

    preparation_data._job_orchestra = True  # type: ignore[attr-defined]
    multiprocessing.spawn.get_preparation_data = preparation_data  # type: ignore[assignment]


def describe_exit(exitcode: int | None) -> str:
    """How a worker process ended, in words."""
    if exitcode is None:
        return "it ended abruptly"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"it was killed by signal {-exitcode}"
        why = {
            signal.SIGKILL: " (sent by the kernel's out-of-memory killer, or by kill -9)",
            signal.SIGSEGV: " (a crash in native code: a segmentation fault)",
            signal.SIGABRT: " (native code aborted)",
            signal.SIGBUS: " (a crash in native code: a bus error)",
        }.get(sig, "")
        return f"it was killed by {sig.name}{why}"
    if exitcode == 255:  # multiprocessing's fork server reports 255 when it could not learn the real status
        return (
            "it ended with status 255 before the step returned: os._exit(255), or a death the fork server could "
            "not report (a signal such as SIGKILL from the out-of-memory killer, or a crash in native code)"
        )
    return f"it exited with code {exitcode} before the step returned (os._exit() or exit() in native code)"


def worker_died(name: str, step: Step, process: Any) -> WorkerDiedError:
    """The error for a step whose worker process died, naming the step, the process and how it ended."""
    exitcode = pid = None
    if process is not None:
        process.join(5)  # reaped by the pool already, or about to be
        exitcode, pid = process.exitcode, process.pid
    where = f"worker process {pid}" if pid is not None else "a worker process"
    return WorkerDiedError(
        f"Step {name!r} ({type(step).__name__}) was running in {where}, which died: {describe_exit(exitcode)}. "
        "Steps running in other workers are not affected: they finish and keep their results, and the next "
        "materialize() runs only what is left. To find the cause, run this step alone (executor=None), "
        "knowing that a crash in native code then takes this process down.",
        name,
        exitcode,
        pid,
    )


class _Slot:
    """One worker: a pool of one process, and the step it runs."""

    __slots__ = ("name", "pool", "process", "step")

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.pool = pool
        self.name: str | None = None
        self.step: Step | None = None
        self.process: Any = None


class ProcessWorkers(Backend):
    """``executor="processes"``: ``workers`` processes, each its own pool, started on first use."""

    def __init__(self, workers: int) -> None:
        _install()
        self.limit = workers
        self.context = process_context()
        self.idle: list[_Slot] = []
        self.busy: dict[Future, _Slot] = {}

    def _slot(self) -> _Slot:
        while self.idle:
            slot = self.idle.pop()
            if slot.process is None or slot.process.exitcode is None:
                return slot
            slot.pool.shutdown(wait=False)  # its worker died while idle: no step is to blame
        return _Slot(ProcessPoolExecutor(1, mp_context=self.context))

    def submit(self, name: str, step: Step, inputs: list[Any], key: tuple | None = None) -> Future:
        payload, args = ship_call(name, step, inputs)
        slot = self._slot()
        _STARTING.ours = True
        try:
            future = slot.pool.submit(run_shipped, payload, args)
        except BrokenProcessPool:  # its worker died after its last step: replace it
            slot.pool.shutdown(wait=False)
            slot = _Slot(ProcessPoolExecutor(1, mp_context=self.context))
            future = slot.pool.submit(run_shipped, payload, args)
        finally:
            _STARTING.ours = False
        slot.name, slot.step = name, step
        processes = getattr(slot.pool, "_processes", None) or {}
        slot.process = next(iter(processes.values()), slot.process)
        self.busy[future] = slot
        return future

    def collect(self, handle: Future, keep_value: bool) -> tuple[Any, Any]:
        slot = self.busy.pop(handle)
        try:
            out = handle.result()
        except BrokenProcessPool:
            slot.pool.shutdown(wait=False, cancel_futures=True)
            raise worker_died(slot.name, slot.step, slot.process) from None  # type: ignore[arg-type]
        except RemoteFailure as failure:
            self._release(slot)
            raise failure.unwrap() from None
        except BaseException:
            self._release(slot)
            raise
        self._release(slot)
        out = pickle.loads(out)
        return out, out

    def _release(self, slot: _Slot) -> None:
        slot.name = slot.step = None
        self.idle.append(slot)

    def close(self, abandon: bool = False) -> None:
        slots = self.idle + list(self.busy.values())
        self.idle, self.busy = [], {}
        for slot in slots:
            slot.pool.shutdown(wait=not abandon, cancel_futures=True)
