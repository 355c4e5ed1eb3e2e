"""What a step travels to a Dask worker as, and the worker side of :mod:`job_orchestra.dask_graph`.

A step goes as its class (cloudpickled once per run, with the notebook cell sources of its methods:
:mod:`job_orchestra.cell_sources`) plus its state (plain pickle, which is fast, unless that state refers to code a
worker cannot import: then cloudpickle). A worker loads each class once. Errors carry the name of the step
that raised them, because Dask hands a failed task's error to its dependents as well.
"""

from __future__ import annotations

import copyreg
import pickle
import time
from typing import TYPE_CHECKING, Any

import cloudpickle

from .attrdict import as_attrdict
from .cell_sources import SOURCES_KEY, cell_sources, register
from .shipping import RemoteFailure, _failure, dump_step
from .worker_writes import read_on_worker, write_result

if TYPE_CHECKING:
    from .step import Step

__all__ = [
    "Shipper",
    "cancel_not_started",
    "read_stored",
    "run_step",
    "run_step_timed",
    "run_step_writing",
    "state_bytes",
]


# -- worker side ---------------------------------------------------------------------------------------
_CLASSES: dict[bytes, type] = {}  # class payload -> the loaded class: each worker loads a class once


def _load_step(cls_bytes: bytes, state_bytes: bytes) -> Any:
    if not cls_bytes:  # a step whose class pickles in its own way travelled whole
        return pickle.loads(state_bytes)
    cls = _CLASSES.get(cls_bytes)
    if cls is None:
        cls, sources = pickle.loads(cls_bytes)
        register(sources, cls)
        if len(_CLASSES) > 512:  # redefined notebook classes each bring new bytes: stay bounded
            _CLASSES.clear()
        _CLASSES[cls_bytes] = cls
    step = cls.__new__(cls)
    step.__setstate__(pickle.loads(state_bytes))
    return step


def _blamed(exc: BaseException, name: str) -> RemoteFailure:
    failure = _failure(exc)
    failure.step = name  # type: ignore[attr-defined]  # Dask gives the same error to the step's dependents
    return failure


def run_step(cls_bytes: bytes, state_bytes: bytes, name: str, *inputs: Any) -> Any:
    """Worker side: load the step (its class once per worker), run it on its inputs' values."""
    try:
        return as_attrdict(_load_step(cls_bytes, state_bytes).run(*inputs))
    except BaseException as exc:
        raise _blamed(exc, name) from None


def run_step_timed(cls_bytes: bytes, state_bytes: bytes, name: str, *inputs: Any) -> tuple[Any, float]:
    """Worker side, for a step whose Context records its result: ``(value, seconds the run took)``."""
    try:
        step = _load_step(cls_bytes, state_bytes)
        started = time.perf_counter()
        value = as_attrdict(step.run(*inputs))
        return value, time.perf_counter() - started
    except BaseException as exc:
        raise _blamed(exc, name) from None


def run_step_writing(cls_bytes: bytes, state_bytes: bytes, name: str, writer: bytes, *inputs: Any) -> tuple:
    """Worker side, for a step whose cache the workers reach: run it, write its result, return
    ``(value, WrittenRef)`` (only the reference goes to the client)."""
    try:
        step = _load_step(cls_bytes, state_bytes)
        return write_result(step, name, pickle.loads(writer), inputs)
    except RemoteFailure as failure:
        failure.step = name  # type: ignore[attr-defined]
        raise
    except BaseException as exc:
        raise _blamed(exc, name) from None


# -- client side: what a step travels as --------------------------------------------------------------
def state_bytes(obj: Any) -> bytes:
    """Plain pickle (fast) unless the object refers to code a worker cannot import (``__main__``, a cell,
    a local class or a lambda): then cloudpickle, which carries that code by value."""
    try:
        data = pickle.dumps(obj, protocol=5)
    except Exception:
        return cloudpickle.dumps(obj)
    return cloudpickle.dumps(obj) if b"__main__" in data else data


class Shipper:
    """Turns steps into ``(class bytes, state bytes)``, each class serialized once per run."""

    def __init__(self) -> None:
        self.classes: dict[type, bytes | None] = {}  # None: the class pickles in its own way

    def _class_bytes(self, cls: type, name: str) -> bytes | None:
        if cls not in self.classes:
            slots = any("__slots__" in vars(k) for k in cls.__mro__[:-1])
            plain = cls.__reduce_ex__ is object.__reduce_ex__ and not slots
            try:
                self.classes[cls] = cloudpickle.dumps((cls, cell_sources(cls))) if plain else None
            except Exception as exc:
                exc.add_note(f"job-orchestra: the class of step {name!r} ({cls.__name__}) cannot be serialized.")
                raise
        return self.classes[cls]

    def ship(self, name: str, step: Step) -> tuple[bytes, bytes]:
        cls = type(step)
        cls_bytes = self._class_bytes(cls, name)
        if cls_bytes is not None:
            reduced = step.__reduce_ex__(5)
            state = reduced[2] if len(reduced) > 2 else None
            if reduced[0] is copyreg.__newobj__ and reduced[1] == (cls,) and type(state) is dict:
                if not any(reduced[3:]) and hasattr(cls, "__setstate__"):
                    state = {**state, "ctx": None, "dependencies": []}
                    state.pop(SOURCES_KEY, None)  # they travel with the class
                    try:
                        return cls_bytes, state_bytes(state)
                    except Exception as exc:
                        exc.add_note(
                            f"job-orchestra: step {name!r} ({cls.__name__}) cannot be serialized (cloudpickle) to "
                            "run on Dask. Keep unpicklable objects (open files, locks, connections) out of the "
                            "step's attributes, create them inside run(), or use executor='threads'."
                        )
                        raise
        return b"", dump_step(name, step)


def read_stored(reader: bytes) -> Any:
    """Worker side: a result taken from a shared cache, read where it is needed."""
    return read_on_worker(pickle.loads(reader))


def cancel_not_started(groups: dict[Any, list[Any]], client: str, everything: bool, dask_scheduler: Any) -> list:
    """Scheduler side: cancel the tasks of every step none of whose tasks is running or done yet (all of
    them with ``everything``); returns the keys cancelled."""
    started = ("processing", "memory", "erred")
    tasks = dask_scheduler.tasks
    keys = []
    for group in groups.values():
        states = [getattr(tasks.get(k), "state", "forgotten") for k in group]
        if everything or not any(state in started for state in states):
            keys += [k for k, state in zip(group, states) if state != "forgotten"]
    if keys:
        dask_scheduler.stimulus_cancel(keys, client, force=False, reason="job-orchestra stopped", msg=None)
    return keys
