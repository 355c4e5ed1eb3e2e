"""What the widget and the magics do to a pipeline: invalidate with dependents, store a snapshot."""

from __future__ import annotations

import os
from collections.abc import Iterable

from job_orchestra import Context, Step
from job_orchestra.graph import PipelineGraph, collect

__all__ = ["dependents", "invalidate", "main_context", "store_snapshot"]


def dependents(graph: PipelineGraph, names: Iterable[str]) -> list[str]:
    """``names`` and every step that depends on them, directly or not, in execution order."""
    wanted = set(names)
    unknown = wanted - graph.steps.keys()
    if unknown:
        raise KeyError(f"no step named {', '.join(sorted(unknown))} in the pipeline of {graph.head!r}")
    for name in graph.steps:  # execution order: dependencies come first
        if any(d in wanted for d in graph.deps[name]):
            wanted.add(name)
    return [n for n in graph.steps if n in wanted]


def invalidate(head: Step, names: Iterable[str | Step], with_dependents: bool = True) -> list[str]:
    """Drop the cached results of ``names`` (and of their dependents) so the next run computes them again.

    Returns the names whose result was dropped, in execution order.
    """
    graph = collect(head)
    chosen = [str(n) for n in names]
    targets = dependents(graph, chosen) if with_dependents else chosen
    dropped: list[str] = []
    for name in targets:
        ctx = graph.steps[name].ctx
        if ctx is not None and ctx.invalidate(name):
            dropped.append(name)
    return dropped


def main_context(head: Step) -> Context:
    """The Context a pipeline snapshot is taken from: the head's, else the one its steps share most."""
    if head.ctx is not None:
        return head.ctx
    counts: dict[int, tuple[Context, int]] = {}
    for step in collect(head).steps.values():
        if step.ctx is not None:
            ctx, n = counts.get(id(step.ctx), (step.ctx, 0))
            counts[id(step.ctx)] = (ctx, n + 1)
    if not counts:
        raise ValueError(
            f"no step of the pipeline of {head!r} has a Context, so there is nothing to snapshot. "
            "Give steps a ctx=Context() to keep their results."
        )
    return max(counts.values(), key=lambda item: item[1])[0]


def store_snapshot(head: Step, path: str | os.PathLike[str]) -> Context:
    """``ctx.store(path, pipeline=head)`` on the pipeline's main Context; returns that Context."""
    path = os.fspath(path).strip()
    if not path:
        raise ValueError("give a path for the snapshot, e.g. snapshots/run-1")
    ctx = main_context(head)
    ctx.store(path, pipeline=head)
    return ctx
