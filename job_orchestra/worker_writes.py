"""Dask workers that write results straight into a shared cache: the client gets only small references.

With ``materialize(executor=client)`` and a step whose Context is bound to a cache the workers can reach
(a cache directory, ``s3://``, ``gs://``; not ``memory://``, which is one process's memory), the worker
that ran the step writes its result into the cache itself (value first, then its small index record) and
sends back a :class:`WrittenRef`. The client shows the entry lazily, as if it had been opened from the
cache: no result travels through the client unless it is asked for (the head's value, which
``materialize()`` returns, or ``ctx[name]``), and then it is read once, from the cache. Consumers on the
cluster still get the value the Dask way, from the worker that holds it. A result a step takes from the
cache (written by an earlier run) and not read by the client yet is read from the cache by a worker too.

If the client cannot find what a worker wrote (the workers write to a directory this machine does not
see) or the worker could not write it, the value is fetched from the worker and written by the client, with
a :class:`~job_orchestra.errors.CacheWriteWarning` saying so: never lost, never silently.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

from .attrdict import as_attrdict
from .checks import refuse_one_shot
from .errors import CacheWriteWarning
from .shipping import _failure

if TYPE_CHECKING:
    from .step import Step

__all__ = ["WrittenRef", "adopt", "read_on_worker", "reader_for", "run_and_write", "write_result", "writer_for"]


class WrittenRef(NamedTuple):
    """What a worker sends back for a result it wrote into the cache: a few dozen bytes, never the value."""

    written: bool  # False: the step returned None (which no Context records), or the write failed
    nbytes: int  # bytes of the value file the worker wrote
    seconds: float
    pid: int  # the worker process that wrote it
    problem: str | None = None  # why the worker could not write it


def writer_for(step: Step, name: str, fingerprint: str | None) -> Any | None:
    """The writer a worker uses to put ``step``'s result into its Context's cache, or None (no shared cache)."""
    if getattr(step.ctx, "_cache", None) is None:
        return None
    from .cache_workers import writer_for as cache_writer  # the cache's modules: loaded by Context.open already

    return cache_writer(step.ctx, name, fingerprint)


def reader_for(ctx: Any, name: str) -> Any | None:
    """A picklable ``reader()`` loading ``name``'s cached value on a worker, or None (not in a shared cache,
    or read here already: then it is sent as usual)."""
    if getattr(ctx, "_cache", None) is None:
        return None
    from .cache_workers import reader_for as cache_reader  # the cache's modules: loaded by Context.open already

    return cache_reader(ctx, name)


def read_on_worker(reader: Any) -> Any:
    """Worker side: a result taken from the cache, read where it is needed rather than through the client."""
    try:
        return reader()
    except BaseException as exc:
        raise _failure(exc) from None


def run_and_write(step_bytes: bytes, name: str, writer: Any, *inputs: Any) -> tuple[Any, WrittenRef]:
    """Worker side: run the step, write its result through ``writer``, return ``(value, reference)``.

    The value stays on the worker for the step's consumers; the client gathers only the reference.
    """
    try:
        step = pickle.loads(step_bytes)
    except BaseException as exc:
        raise _failure(exc) from None
    return write_result(step, name, writer, inputs)


def write_result(step: Step, name: str, writer: Any, inputs: Any) -> tuple[Any, WrittenRef]:
    """Worker side: run a loaded step on ``inputs``, write its result through ``writer``: ``(value, ref)``."""
    try:
        started = time.perf_counter()
        output = as_attrdict(step.run(*inputs))
        seconds = time.perf_counter() - started
        if output is None:
            return output, WrittenRef(False, 0, seconds, os.getpid())
        refuse_one_shot(name, step, output)
        outcome = writer.write(output, seconds)
    except BaseException as exc:
        raise _failure(exc) from None
    if isinstance(outcome, str):
        return output, WrittenRef(False, 0, seconds, os.getpid(), outcome)
    return output, WrittenRef(True, outcome, seconds, os.getpid())


def adopt(step: Step, name: str, fingerprint: str, ref: WrittenRef) -> bool:
    """Client side: show in ``step``'s Context the entry a worker wrote (lazily: nothing is read now).
    False when there is nothing to show: the client must fetch the value (and says why)."""
    if ref.written:
        from .cache_workers import adopt as show  # the cache's modules: loaded by Context.open already

        if show(step.ctx, name, fingerprint):
            return True
        why = (
            f"the worker (process {ref.pid}) wrote it, but not where this process finds it: the workers do not "
            "share this cache directory (use an object store such as s3://, or a directory every machine mounts)"
        )
    elif ref.problem is not None:
        why = f"the worker (process {ref.pid}) could not write it (it said: {ref.problem.rstrip('.')})"
    else:
        return True  # the step returned None: nothing to record, as on every executor
    warnings.warn(
        f"The result of step {name!r} was not written to the cache {step.ctx.store_url} by the Dask worker: "  # type: ignore[union-attr]
        f"{why}. It was sent to this process instead, which writes it.",
        CacheWriteWarning,
        stacklevel=2,
    )
    return False
