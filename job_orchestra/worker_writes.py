"""Dask workers that write results straight into a shared cache: the client gets only small references.

With ``materialize(executor=client)`` and a step whose Context is bound to a store the workers can reach
(a cache directory, ``s3://``, ``gs://``; not ``memory://``, which is one process's memory), the worker
that ran the step writes its result into that store itself (value first, then its small index record) and
returns a :class:`WrittenRef`. The client records the entry as a lazy value: no result travels through the
client unless it is asked for (the head's value, which ``materialize()`` returns, or ``ctx[name]``), and
then it is read once, from the store. Consumers on the cluster still get the value the Dask way, from the
worker that holds it.

A result a step takes from the cache (computed by an earlier run) and not read by the client yet is read
by a worker, from the cache, too.

The Context tells whether and how its workers may use its store through three hooks
(:mod:`job_orchestra.cache`): ``ctx._worker_writer(name, fingerprint)`` returns a picklable writer
(``writer.write(value, seconds)``) or None, ``ctx._adopt_written(name, fingerprint, seconds)`` records on
the client what a worker wrote, and ``ctx._worker_reader(name)`` returns a picklable ``reader()`` or None.
"""

from __future__ import annotations

import os
import pickle
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from .attrdict import as_attrdict
from .checks import refuse_one_shot
from .shipping import _failure

if TYPE_CHECKING:
    from .step import Step

__all__ = ["WrittenRef", "adopt", "read_on_worker", "reader_for", "run_and_write", "writer_for"]


class WrittenRef(NamedTuple):
    """What a worker sends back for a result it wrote into the cache: a few dozen bytes, never the value."""

    written: bool  # False: the step returned None, which no Context records
    nbytes: int  # bytes the worker wrote for the entry
    seconds: float
    pid: int  # the worker process that wrote it


def writer_for(step: Step, name: str, fingerprint: str | None) -> Any | None:
    """The writer a worker uses to put ``step``'s result into its Context's store, or None (no such store)."""
    hook = getattr(step.ctx, "_worker_writer", None)
    if hook is None or fingerprint is None:
        return None
    return hook(name, fingerprint)


def reader_for(ctx: Any, name: str) -> Any | None:
    """A picklable ``reader()`` loading ``name``'s result from the cache on a worker, or None. Only for an
    entry not read here yet: one the client holds is sent as usual."""
    hook = getattr(ctx, "_worker_reader", None)
    if hook is None or ctx.is_loaded(name):
        return None
    return hook(name)


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
        started = time.perf_counter()
        output = as_attrdict(step.run(*inputs))
        seconds = time.perf_counter() - started
        nbytes = 0
        if output is not None:
            refuse_one_shot(name, step, output)
            nbytes = writer.write(output, seconds) or 0
        return output, WrittenRef(output is not None, nbytes, seconds, os.getpid())
    except BaseException as exc:
        raise _failure(exc) from None


def adopt(step: Step, name: str, fingerprint: str, ref: WrittenRef) -> None:
    """Client side: record in ``step``'s Context the entry a worker wrote (lazily: nothing is read now)."""
    if ref.written:
        step.ctx._adopt_written(name, fingerprint, ref.seconds)  # type: ignore[union-attr]
