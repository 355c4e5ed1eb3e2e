"""Declaration checks made before anything runs, and the one check made on each result.

Every refusal names the step and says how to fix it: a ``run`` that is missing, not callable, a
``staticmethod`` / ``classmethod``, or that cannot take the step's inputs; a step named ``context_meta`` (the
key a Context keeps its metadata under); and a result that can be consumed only once (a generator, an
iterator, an open file) returned into a Context, where a later consumer would find it exhausted.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterable, Iterator
from types import CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any

from .errors import InvalidStepError, MissingResultError
from .graph import Node, PipelineGraph, run_arity

if TYPE_CHECKING:
    from .step import Step

__all__ = ["check_declarations", "check_runnable", "one_shot_kind", "refuse_one_shot"]

_STEP_ATTRIBUTES = ("dependencies", "ctx", "name_alias")
RESERVED_NAMES = frozenset({"context_meta"})
"""Keys a Context holds for itself: a step of that name would silently "find" its result there."""


def check_declarations(graph: PipelineGraph) -> None:
    """Refuse half-initialized steps and step names a Context reserves, before the plan reads any Context."""
    for step in graph.nodes:
        try:  # attribute reads, not step.__dict__: that would build a dict object for each step
            step.ctx, step.dependencies, step.name_alias  # noqa: B018
        except AttributeError:
            for missing in _STEP_ATTRIBUTES:
                if not hasattr(step, missing):
                    raise InvalidStepError(
                        f"A {type(step).__name__} step has no .{missing}: its __init__ does not call "
                        "super().__init__(depends_on=..., ctx=..., name_alias=...). Add that call."
                    ) from None
    for name in RESERVED_NAMES:
        step = graph.steps.get(name)
        if step is not None and step.ctx is not None:
            raise InvalidStepError(
                f"Step {name!r} ({type(step).__name__}) has a name its Context reserves: ctx[{name!r}] holds the "
                f"Context's own metadata, which would be returned as the step's result. Rename the step, e.g. "
                f"{type(step).__name__}(name_alias='{name}_step', ...)."
            )


def _run_problem(step: Step) -> str | None:
    """What is wrong with how ``step`` declares ``run``, or None."""
    kind = type(step)
    own = vars(step).get("run", _MISSING)
    if own is not _MISSING:  # replaced on the instance
        return (
            None
            if callable(own)
            else f"has run replaced on the instance by {own!r} ({type(own).__name__}), not a method"
        )
    declared = inspect.getattr_static(kind, "run", _MISSING)
    if declared is Node.__dict__["run"]:
        return _NO_RUN
    if isinstance(declared, staticmethod):
        return "declares run as a @staticmethod, so it gets no self and its inputs are miscounted"
    if isinstance(declared, classmethod):
        return "declares run as a @classmethod, so it gets the class instead of the step"
    if not callable(declared) and not hasattr(declared, "__get__"):
        return f"has run = {declared!r} ({type(declared).__name__}), not a method"
    if not callable(getattr(step, "run", None)):
        return f"has a run attribute that gives {type(step.run).__name__}, not a method"
    return None


def _own_run(step: Step) -> bool:
    """True unless ``step.run`` is its class's ``run`` bound to it (read without building ``step.__dict__``)."""
    try:
        bound = step.run
    except Exception:  # let the full check say what is wrong
        return True
    return getattr(bound, "__self__", None) is not step or getattr(bound, "__func__", None) is not getattr(
        type(step), "run", None
    )


def check_runnable(graph: PipelineGraph, positions: Iterable[int]) -> None:
    """Refuse, before anything runs, a step whose ``run`` is missing, not a plain method, or cannot take
    its inputs (the steps at ``positions`` of the graph's execution order)."""
    checked: set[tuple[type, int]] = set()
    names, nodes, inputs = graph.names, graph.nodes, graph.inputs
    for p in positions:
        name, step = names[p], nodes[p]
        kind = type(step)
        n_inputs = len(inputs[p])
        if (kind, n_inputs) in checked and not _own_run(step):
            continue
        problem = _run_problem(step)
        if problem == _NO_RUN:
            raise _no_run_error(name, step)
        if problem is not None:
            raise InvalidStepError(
                f"Step {name!r} ({kind.__name__}) {problem}. Define it as a plain method in the class: "
                f"def run(self, *inputs), subclassing Step."
            )
        if "run" in vars(step):  # run() replaced on the instance: let Python check the call
            continue
        low, high = run_arity(kind)
        if not low <= n_inputs <= high:
            wanted = f"{low}" if low == high else f"{low} to {high:g}"
            raise InvalidStepError(
                f"Step {name!r} ({kind.__name__}) has {n_inputs} dependencies "
                f"({', '.join(graph.deps[name]) or 'none'}) but its run() takes {wanted} inputs. Make run() "
                "take one argument per dependency, in depends_on order, or use run(self, *inputs)."
            )
        checked.add((kind, n_inputs))


_ALWAYS_ONE_SHOT = (GeneratorType, CoroutineType, Iterator, AsyncIterator)
_REITERABLE = (str, bytes, bytearray, memoryview, list, tuple, dict, set, frozenset, range)


def one_shot_kind(value: Any) -> str | None:
    """A description of ``value`` if it can be consumed only once (a generator, a ``map``/``filter``/``zip``
    object, an open file, a coroutine, any iterator), else None.

    An iterator is an object whose ``iter()`` is itself; Python requires such an object to have
    ``__next__``, so the check is ``isinstance(value, Iterator)`` and ``iter()`` is never called (an
    ``__iter__`` may have side effects, such as running a database query). Containers (lists, dicts,
    arrays, DataFrames) give a fresh iterator each time and are not one-shot.
    """
    if value is None or isinstance(value, _REITERABLE) or not isinstance(value, _ALWAYS_ONE_SHOT):
        return None
    kind = type(value)
    if hasattr(value, "read") or hasattr(value, "readline"):
        return f"an open file or stream ({kind.__module__}.{kind.__qualname__})"
    if isinstance(value, CoroutineType):
        return "a coroutine (an async function called without await)"
    return f"a one-shot iterator ({kind.__module__}.{kind.__qualname__})"


def refuse_one_shot(name: str, step: Step, value: Any) -> None:
    """Refuse to put a one-shot value into a Context: the next consumer would get it exhausted."""
    what = one_shot_kind(value)
    if what is not None:
        raise InvalidStepError(
            f"Step {name!r} ({type(step).__name__}) returned {what} into its Context, which can be consumed only "
            "once: a later consumer or materialize() would get it exhausted. Return a list or tuple instead "
            "(e.g. return list(...)), or give the step no ctx= if only one consumer reads it."
        )


_MISSING = object()
_NO_RUN = "does not define run(self, *inputs)"


def _no_run_error(name: str, step: Step) -> InvalidStepError:
    """A step without ``run()`` must find its result in its Context; say which key is missing and where."""
    kind = type(step).__name__
    if step.ctx is None and kind != "Step":
        return InvalidStepError(f"Step {name!r} ({kind}) {_NO_RUN}: subclass Step and override run().")
    if step.ctx is None:
        where = "it has no Context: pass ctx= a Context that holds the result"
    else:
        keys = [str(k) for k in step.ctx if k != "context_meta"]
        shown = ", ".join(map(repr, keys[:20])) + (f" and {len(keys) - 20} more" if len(keys) > 20 else "")
        where = f"its Context has no key {name!r} (its keys: {shown or 'none but context_meta'})"
    return MissingResultError(
        f"Step {name!r} ({kind}) does not define run(), so it can only use a stored result, but {where}. "
        "Load the snapshot that holds it, fix the name_alias=, or subclass Step and override run().",
        name,
    )
