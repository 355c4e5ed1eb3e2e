"""Accepting code: "this edit does not change results", so cached results stay fresh without a re-run.

After a purely cosmetic or performance edit of a step's code, :func:`accept_code` records the step's
current code in the fingerprint of its cached result, and (given a head) refreshes the steps between it and
the head that were stale only because of it. Nothing runs; the results themselves are not touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import AcceptError
from .plan import Availability, ExecutionPlan
from .stale_reasons import split_fingerprint

if TYPE_CHECKING:
    from .step import Step

__all__ = ["accept_code"]


def accept_code(step: Step, head: Step | None = None) -> list[str]:
    """Record the current code of ``step`` as the code of its cached result; with ``head``, also refresh the
    steps up to ``head`` that are stale only because of ``step``. Returns the names made fresh.

    Raises :class:`~job_orchestra.errors.AcceptError` when ``step`` has no cached result, or when its
    result is stale for more than its code (changed parameters or inputs are never accepted).
    """
    name = str(step)
    plan = ExecutionPlan.of(head if head is not None else step, stale="rerun")
    graph = plan.graph
    if name not in graph.steps or graph.steps[name] is not step:
        raise AcceptError(f"accept_code: step {name!r} is not part of the pipeline of {str(head)!r}; pass its head.")
    ctx = step.ctx
    row = plan[name]
    if ctx is None or row.availability in (Availability.MISSING, Availability.NO_CONTEXT):
        raise AcceptError(f"accept_code: step {name!r} has no cached result to accept: materialize it instead.")
    recorded = ctx.fingerprint(name)
    if row.availability is not Availability.STALE or recorded is None:
        return []  # fresh already, or put in by hand (counts as available whatever the code says)
    current = plan.fingerprint(name)
    assert current is not None
    old, new = split_fingerprint(recorded)[0], split_fingerprint(current)[0]
    if len(old) != 4 or old[1] == new[1] or old[2:] != new[2:]:
        raise AcceptError(
            f"accept_code: the cached result of step {name!r} is stale for more than its code "
            f"({row.reason}): only a code edit can be accepted. Materialize it, or restore what changed."
        )
    accepted = {name: current}
    _put(ctx, name, current)
    if head is not None:
        names = list(graph.steps)
        for other in names[names.index(name) + 1 :]:
            other_row = plan[other]
            other_step = graph.steps[other]
            if other_row.availability is not Availability.STALE or other_step.ctx is None:
                continue
            fingerprint = _upstream_only(plan, other, accepted)
            if fingerprint is not None:
                accepted[other] = fingerprint
                _put(other_step.ctx, other, fingerprint)
    return list(accepted)


def _upstream_only(plan: ExecutionPlan, name: str, accepted: dict[str, str]) -> str | None:
    """The current fingerprint of ``name`` when its result is stale only through accepted inputs, else None."""
    recorded = plan.graph.steps[name].ctx.fingerprint(name)  # type: ignore[union-attr]
    if recorded is None:
        return None
    current = plan.fingerprint(name)
    deps = list(plan.graph.deps[name])
    old, new = split_fingerprint(recorded)[0], split_fingerprint(current or "")[0]
    if len(old) != 4 or len(new) != 4 or old[1:3] != new[1:3] or old[3].startswith("#"):
        return None  # its own code or parameters changed, or too many inputs to tell which moved
    before = old[3].split("/") if old[3] else []
    after = new[3].split("/") if new[3] else []
    if len(before) != len(after):
        return None
    moved = [deps[i] for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    return current if moved and all(d in accepted for d in moved) else None


def _put(ctx: object, name: str, fingerprint: str) -> None:
    with ctx._lock:  # type: ignore[attr-defined]
        ctx._fingerprints[name] = fingerprint  # type: ignore[attr-defined]
