"""Collect a pipeline graph from its head, validate it, and order it.

Every walk here is iterative, so a 100,000-step chain never meets Python's recursion limit. Ordering and
cycle detection use :class:`graphlib.TopologicalSorter` from the standard library.
"""

from __future__ import annotations

import graphlib
import heapq
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import CycleError, DuplicateStepName, InvalidStepError

if TYPE_CHECKING:
    from .step import Step

__all__ = ["PipelineGraph", "collect", "legacy_breadth_first", "legacy_depth_first"]


@dataclass(frozen=True, eq=False)
class PipelineGraph:
    """The validated graph of one head: its steps by name, in execution order."""

    head: str
    steps: dict[str, Step]
    """Every step of the graph by name, in execution order (dependencies before their consumers)."""
    deps: dict[str, tuple[str, ...]]
    """The names of each step's direct dependencies, in ``depends_on`` order."""

    @property
    def order(self) -> list[str]:
        """Step names in execution order; the head comes last."""
        return list(self.steps)

    def consumers(self) -> dict[str, list[str]]:
        """For each step, the steps that take its output as an input."""
        out: dict[str, list[str]] = {name: [] for name in self.steps}
        for name, ds in self.deps.items():
            for d in ds:
                out[d].append(name)
        return out

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[str]:
        return iter(self.steps)


def _check_dependency(step: Step, position: int, dep: object) -> None:
    from .step import Step

    if not isinstance(dep, Step):
        raise InvalidStepError(
            f"Step {str(step)!r} ({type(step).__name__}) has a dependency that is not a Step at position "
            f"{position} of its dependencies: {dep!r} ({type(dep).__name__}). depends_on= takes one Step or "
            "a list of Steps; wrap plain data with Step.from_data(...) or Step.stepify(...)."
        )


def collect(head: Step) -> PipelineGraph:
    """Walk every step reachable from ``head`` and validate the graph before anything runs.

    Raises :class:`InvalidStepError` for a dependency that is not a Step, :class:`DuplicateStepName` when
    two different steps share a name, and :class:`CycleError` for a cycle.
    """
    from .step import Step

    if not isinstance(head, Step):
        raise InvalidStepError(f"expected a Step as the head of a pipeline, got {type(head).__name__}")
    by_id: dict[int, Step] = {id(head): head}
    dep_lists: dict[int, list] = {}
    stack = [head]
    while stack:
        step = stack.pop()
        try:
            deps = step.dependencies
        except AttributeError:
            raise InvalidStepError(
                f"A {type(step).__name__} step has no .dependencies: its __init__ does not call "
                "super().__init__(depends_on=..., ctx=..., name_alias=...). Add that call."
            ) from None
        if type(deps) is not list:
            deps = _dependencies_as_list(step)
        dep_lists[id(step)] = deps
        for i, dep in enumerate(deps):
            if id(dep) not in by_id:
                _check_dependency(step, i, dep)
                by_id[id(dep)] = dep
                stack.append(dep)

    names: dict[str, Step] = {}
    duplicates: dict[str, list[Step]] = {}
    for step in by_id.values():
        name = step._name
        other = names.setdefault(name, step)
        if other is not step:
            duplicates.setdefault(name, [other]).append(step)
    if duplicates:
        raise DuplicateStepName(_duplicate_message(duplicates, by_id, dep_lists), sorted(duplicates))

    deps_by_name: dict[str, tuple[str, ...]] = {
        step._name: tuple(d._name for d in dep_lists[id(step)]) for step in by_id.values()
    }
    head_name = head._name
    ordered = _execution_order(head_name, deps_by_name)
    return PipelineGraph(head_name, {n: names[n] for n in ordered}, {n: deps_by_name[n] for n in ordered})


def _dependencies_as_list(step: Step) -> list:
    deps = step.dependencies
    if deps is None:
        return []
    if isinstance(deps, (list, tuple)):
        return list(deps)
    from .step import Step

    if isinstance(deps, Step):
        return [deps]
    raise InvalidStepError(f"Step {str(step)!r}: its .dependencies must be a list of Steps, got {type(deps).__name__}")


def _duplicate_message(duplicates: dict[str, list[Step]], by_id: dict[int, Step], dep_lists: dict[int, list]) -> str:
    users: dict[int, list[str]] = {}
    for step in by_id.values():
        for dep in dep_lists[id(step)]:
            users.setdefault(id(dep), []).append(str(step))
    parts = []
    for name, steps in sorted(duplicates.items()):
        where = "; ".join(
            f"a {type(s).__name__} used by {', '.join(sorted(set(users.get(id(s), [])))) or 'nobody (the head)'}"
            for s in steps
        )
        parts.append(f"{name!r} is the name of {len(steps)} different steps ({where})")
    return (
        "Two different steps of the pipeline have the same name: "
        + "; ".join(parts)
        + ". Give each a unique name with name_alias=..., or reuse one step object in both places."
    )


def legacy_breadth_first(head: str, deps: dict[str, tuple[str, ...]]) -> list[str]:
    """The unique names the head depends on, in job-orchestra 1.1's breadth-first order (head excluded).

    1.1 lists a step's direct dependencies, then the same listing for each dependency in turn, keeping the
    first occurrence of each name. A step's listing is the same every time, so each step is expanded once.
    """
    seen = {head}
    out: list[str] = []
    for d in deps[head]:
        if d not in seen:
            seen.add(d)
            out.append(d)
    expanded = {head}
    stack = [iter(deps[head])]
    while stack:
        name = next(stack[-1], None)
        if name is None:
            stack.pop()
            continue
        if name in expanded:
            continue
        expanded.add(name)
        children = deps[name]
        for d in children:
            if d not in seen:
                seen.add(d)
                out.append(d)
        stack.append(iter(children))
    return out


def legacy_depth_first(head: str, deps: dict[str, tuple[str, ...]]) -> list[str]:
    """The unique names the head depends on in depth-first post-order (1.1's ``depending_steps_depth_first``)."""
    out: list[str] = []
    visited = {head}
    stack: list[tuple[str, Iterator[str]]] = [(head, iter(deps[head]))]
    while stack:
        name, it = stack[-1]
        child = next(it, None)
        if child is None:
            stack.pop()
            if stack:
                out.append(name)
            continue
        if child not in visited:
            visited.add(child)
            stack.append((child, iter(deps[child])))
    return out


def _execution_order(head: str, deps: dict[str, tuple[str, ...]]) -> list[str]:
    """A valid execution order that keeps 1.1's plan order wherever 1.1's order was valid.

    1.1 printed its plan in reversed breadth-first order, which can list a step before one of its own
    dependencies. We use that order as a priority in a topological sort: when it is valid it is kept as is.
    """
    preferred = legacy_breadth_first(head, deps)
    preferred.reverse()
    preferred.append(head)
    position = {name: i for i, name in enumerate(preferred)}
    if all(position[d] < i for i, name in enumerate(preferred) for d in deps[name]):
        return preferred  # already topological, hence acyclic

    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in preferred:
        sorter.add(name, *deps[name])
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        cycle.reverse()  # graphlib lists consumers before producers; show "A -> B" as "A feeds B"
        raise CycleError(
            "The pipeline has a cycle: "
            + " -> ".join(cycle)
            + ". A step cannot depend on itself, directly or not; check where .dependencies was changed.",
            cycle,
        ) from None
    order: list[str] = []
    heap: list[tuple[int, str]] = []
    while sorter.is_active():
        for name in sorter.get_ready():
            heapq.heappush(heap, (position[name], name))
        _, name = heapq.heappop(heap)
        order.append(name)
        sorter.done(name)
    return order


_ARITY_CACHE: dict[type, tuple[int, float]] = {}


def run_arity(step_type: type) -> tuple[int, float]:
    """How many positional inputs ``step_type.run`` accepts: (minimum, maximum), cached per class."""
    try:
        return _ARITY_CACHE[step_type]
    except KeyError:
        pass
    low, high = 0, 0.0
    try:
        params = list(inspect.signature(step_type.run).parameters.values())[1:]  # drop self
    except (TypeError, ValueError):
        params = []
        high = float("inf")
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            high = float("inf")
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            high += 1
            if p.default is p.empty:
                low += 1
    _ARITY_CACHE[step_type] = (low, high)
    return low, high
