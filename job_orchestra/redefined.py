"""Steps built from a class that was defined again since (a notebook cell re-run, ``importlib.reload``).

A step keeps the class object it was built with. When the cell that defines ``class Train(Step)`` runs
again with other code, the name ``Train`` in its module refers to a new class, but the steps already built
still run the old ``run()``, and their fingerprints still match the old code. A class defined again with
the same code (an unchanged cell run again, a pipeline loaded from a snapshot) does not count.

The plan marks such steps (see :func:`find_redefined`), ``materialize()`` refuses them, and :func:`rebind`
moves a pipeline to the classes its modules define now, keeping every step's parameters, dependencies,
Context and name.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .code_digest import is_function_step
from .errors import RedefinedStepError
from .fingerprint import code_digest
from .graph import collect

if TYPE_CHECKING:
    from .graph import PipelineGraph
    from .step import Step

__all__ = ["current_class", "find_redefined", "rebind", "redefined_reason", "refuse_redefined"]

_NOT_FOUND = object()


def current_class(cls: type) -> type | None:
    """The class that ``cls``'s module and qualified name refer to now; None when that cannot be told
    (a class made inside a function, a module that is gone, a name that no longer holds a class)."""
    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    qualname = getattr(cls, "__qualname__", "")
    if module is None or not qualname or "<locals>" in qualname:
        return None
    obj: object = module
    for part in qualname.split("."):
        namespace = getattr(obj, "__dict__", None)
        if namespace is None:
            return None
        obj = namespace.get(part, _NOT_FOUND)
        if obj is _NOT_FOUND:
            return None
    return obj if isinstance(obj, type) else None


def _class_reason(cls: type, memo: dict[type, str | None]) -> str | None:
    if cls in memo:
        return memo[cls]
    reason = None
    for base in cls.__mro__:
        module = getattr(base, "__module__", "")
        if base is object or module == "job_orchestra" or module.startswith("job_orchestra."):
            continue
        now = current_class(base)
        if now is not None and now is not base and not _same_code(base, now):
            if base is cls:
                kind = "function" if is_function_step(cls) else "class"  # @step: the user wrote a function
                reason = f"{kind} {cls.__name__} was redefined after this step was built"
            else:
                reason = (
                    f"class {base.__name__} (a base of {cls.__name__}) was redefined after class "
                    f"{cls.__name__} was defined"
                )
            break
    memo[cls] = reason
    return reason


def _same_code(old: type, new: type) -> bool:
    """True when the two classes have the same code (a cell run again unchanged, a pipeline loaded from a
    snapshot beside the cells that define its classes): the old one computes what the new one would."""
    try:
        return code_digest(old) == code_digest(new)
    except Exception:  # cannot tell: count it as redefined, and say so
        return False


def redefined_reason(step: Step) -> str | None:
    """Why ``step`` runs out-of-date code (its class, or a base, was defined again), or None."""
    return _class_reason(type(step), {})


def find_redefined(graph: PipelineGraph) -> dict[str, str]:
    """``{name: reason}`` for the steps of ``graph`` built from a class that was defined again since."""
    memo: dict[type, str | None] = {}
    kinds = dict.fromkeys(map(type, graph.nodes))
    reasons = {kind: why for kind in kinds if (why := _class_reason(kind, memo)) is not None}
    if not reasons:  # the usual case, found once per class rather than once per step
        return {}
    return {name: reasons[type(step)] for name, step in zip(graph.names, graph.nodes) if type(step) in reasons}


def refuse_redefined(graph: PipelineGraph, redefined: dict[str, str]) -> None:
    """Raise :class:`RedefinedStepError` when steps of ``graph`` were built from a class defined again."""
    if not redefined:
        return
    listed = "; ".join(f"{name!r}: {reason}" for name, reason in redefined.items())
    raise RedefinedStepError(
        f"{len(redefined)} step(s) of {graph.head!r} would run old code: {listed}. Call {graph.head}.rebind() "
        "to move the pipeline to the current classes (keeping parameters, Contexts and names; results of "
        "changed code then run again), or build these steps again.",
        list(redefined),
    )


def rebind(head: Step) -> list[str]:
    """Move every step of ``head``'s pipeline whose class was defined again onto the current class, in
    place; returns the names moved. Parameters, dependencies, Context and ``name_alias`` are kept."""
    graph = collect(head)
    targets: dict[str, type] = {}
    blocked: dict[str, str] = {}
    for name, step in graph.steps.items():
        cls = type(step)
        if redefined_reason(step) is None:
            continue
        now = current_class(cls) or cls
        still = _class_reason(now, {})
        if still is not None:  # e.g. a base class was edited but the subclass's cell did not run again
            blocked[name] = still
        else:
            targets[name] = now
    if blocked:
        listed = "; ".join(f"{name!r}: {reason}" for name, reason in blocked.items())
        raise RedefinedStepError(
            f"rebind() cannot move {', '.join(map(repr, blocked))}: {listed}. Run the cells that define these "
            "classes again (after their base classes), then call rebind() again.",
            list(blocked),
        )
    for name, new in targets.items():
        step = graph.steps[name]
        try:
            step.__class__ = new
        except TypeError as exc:  # e.g. __slots__ added or removed: the old object cannot take the new class
            raise RedefinedStepError(
                f"rebind() cannot move step {name!r} to the new class {new.__name__}: {exc}. Build this step "
                "again instead.",
                [name],
            ) from exc
    return list(targets)
