"""Collect a pipeline graph from its head, validate it, and order it.

Every walk here is iterative, so a 100,000-step chain never meets Python's recursion limit. Ordering and
cycle detection use :class:`graphlib.TopologicalSorter` from the standard library.
"""

from __future__ import annotations

import functools
import gc
import graphlib
import heapq
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import graph_cache
from .errors import CycleError, DuplicateStepName, InvalidStepError

__all__ = [
    "Node",
    "PipelineGraph",
    "as_dependency_list",
    "collect",
    "defines_run",
    "legacy_breadth_first",
    "legacy_depth_first",
    "node_name",
    "run_order",
]


class Node:
    """What the graph walk needs of a pipeline node: ``.dependencies``, ``.ctx``, ``.name_alias`` and a
    ``run()``. :class:`~job_orchestra.Step` is the one subclass users see; the lower layers (graph,
    fingerprints, storage, plan, scheduler) know nodes only through this class, never through ``Step``."""

    _default_name: str | None = None
    dependencies: list[Node]
    ctx: Any
    name_alias: str | None

    def __str__(self) -> str:
        """The step's name: its ``name_alias``, else its class's name. A subclass that overrides ``__str__``
        names its steps so, as 1.1 named every step ``str(step)``."""
        return getattr(self, "name_alias", None) or type(self)._default_name or type(self).__name__

    def run(self, *inputs: Any) -> Any:
        """Compute this step's output from its dependencies' outputs. Subclasses must override it."""
        raise NotImplementedError(
            f"Node {getattr(self, '_name', type(self).__name__)!r} ({type(self).__name__}) does not define "
            "run(self, *inputs); subclass Node and override run()."
        )


_NODE_STR = Node.__str__


def node_name(node: Node) -> str:
    """A step's name, ``str(step)`` as in 1.1: its ``name_alias``, else its class's name, unless its class
    overrides ``__str__``."""
    kind = type(node)
    if kind.__str__ is _NODE_STR:
        return getattr(node, "name_alias", None) or kind._default_name or kind.__name__
    return str(node)


def defines_run(node: Node) -> bool:
    """False for a node that has no ``run()`` of its own, such as a bare ``Step(name_alias=..., ctx=ctx)``
    wired into a pipeline to stand for a result its Context already holds (a 1.1 idiom)."""
    return "run" in vars(node) or getattr(type(node).run, "__code__", None) is not Node.run.__code__


def as_dependency_list(owner: str, depends_on: object) -> list[Node]:
    """``depends_on=`` as a list of nodes, or an InvalidStepError naming ``owner`` and what it got instead."""
    if depends_on is None:
        return []
    if isinstance(depends_on, Node):
        return [depends_on]
    if isinstance(depends_on, (list, tuple)):
        deps = list(depends_on)
        for i, dep in enumerate(deps):
            if isinstance(dep, type) and issubclass(dep, Node):
                raise InvalidStepError(
                    f"{owner}: depends_on[{i}] is the class {dep.__name__}, not a step: create the step first, "
                    f"e.g. {dep.__name__}()."
                )
            if not isinstance(dep, Node):
                raise InvalidStepError(
                    f"{owner}: depends_on[{i}] is {dep!r} ({type(dep).__name__}), not a Step. depends_on= "
                    "takes one Step or a list of Steps; wrap plain data with Step.from_data(...)."
                )
        return deps
    if isinstance(depends_on, type) and issubclass(depends_on, Node):
        raise InvalidStepError(
            f"{owner}: depends_on= got the class {depends_on.__name__}, not a step: create the step first, "
            f"e.g. depends_on={depends_on.__name__}()."
        )
    raise InvalidStepError(
        f"{owner}: depends_on= takes one Step or a list of Steps, got {type(depends_on).__name__} ({depends_on!r})."
    )


@dataclass(frozen=True, eq=False)
class PipelineGraph:
    """The validated graph of one head: its steps by name and by position, in execution order."""

    head: str
    steps: dict[str, Node]
    """Every step of the graph by name, in execution order (dependencies before their consumers)."""
    names: list[str] = field(repr=False)
    """The graph by position: ``names[p]``, ``nodes[p]`` and ``inputs[p]`` describe the step at position p
    of the execution order (the head is last). Runs and plans walk these lists rather than dicts by name: on
    100,000 steps a lookup by name misses the CPU cache, a list read in order does not."""
    nodes: list[Node] = field(repr=False)
    """The steps in execution order."""
    inputs: list[tuple[int, ...]] = field(repr=False)
    """The positions of each step's dependencies, in ``depends_on`` order (always before its own)."""
    token: Any = field(default=None, repr=False)
    """The remembered walk this graph came from (:mod:`.graph_cache`), or None: the same token means the
    same steps, names and dependencies, so a plan may reuse what it found (see :mod:`.plan_memo`)."""

    @functools.cached_property
    def deps(self) -> dict[str, tuple[str, ...]]:
        """The names of each step's direct dependencies, in ``depends_on`` order; built when first asked for
        (a serial run of steps without a Context never needs it), shared by the graphs of one remembered
        walk. Never change it."""
        token = self.token
        built = token.deps if token is not None else None
        if built is None:
            names = self.names
            built = {name: tuple([names[d] for d in ds]) for name, ds in zip(names, self.inputs)}
            if token is not None:
                token.deps = built
        return built

    @property
    def order(self) -> list[str]:
        """Step names in execution order; the head comes last."""
        return list(self.names)

    def positions(self, names: list[str]) -> list[int]:
        """The positions of ``names`` in :attr:`names`; ``names`` is usually in execution order (a plan's
        ``to_run``), which is found in one pass without a lookup by name."""
        everyone = self.names
        if not names:
            return []
        if len(names) == len(everyone) and names == everyone:
            return list(range(len(names)))
        out: list[int] = []
        k, wanted = 0, len(names)
        for p, name in enumerate(everyone):
            if k < wanted and name == names[k]:
                out.append(p)
                k += 1
        if k == wanted:
            return out
        position = {name: p for p, name in enumerate(everyone)}  # not in execution order
        return [position[name] for name in names]

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


def _not_a_step(step: Node, position: int, dep: object) -> InvalidStepError:
    return InvalidStepError(
        f"Step {str(step)!r} ({type(step).__name__}) has a dependency that is not a Step at position "
        f"{position} of its dependencies: {dep!r} ({type(dep).__name__}). depends_on= takes one Step or "
        "a list of Steps; wrap plain data with Step.from_data(...) or Step.stepify(...)."
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building bookkeeping structures (no cycles are made).

    On a 100,000-step pipeline the collector otherwise rescans the growing heap many times over.
    Never used around user code.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def collect(head: Node) -> PipelineGraph:
    """Walk every step reachable from ``head`` and validate the graph before anything runs.

    Raises :class:`InvalidStepError` for a dependency that is not a Step, :class:`DuplicateStepName` when
    two different steps share a name, and :class:`CycleError` for a cycle.
    """
    with gc_paused():
        try:
            return _collect(head)
        except AttributeError as exc:  # a step whose __init__ did not call Step.__init__
            if exc.name in ("dependencies", "name_alias", "ctx") and isinstance(exc.obj, Node):
                raise InvalidStepError(
                    f"A {type(exc.obj).__name__} step has no .{exc.name}: its __init__ does not call "
                    "super().__init__(depends_on=..., ctx=..., name_alias=...). Add that call."
                ) from None
            raise


def _collect(head: Node) -> PipelineGraph:
    if not isinstance(head, Node):
        raise InvalidStepError(f"expected a Step as the head of a pipeline, got {type(head).__name__}")
    head_name = head._name
    cached = graph_cache.lookup(head)
    if cached is not None:
        order, steps, inputs, entry = cached
        names, nodes = [*order, head_name], [*steps, head]
        return PipelineGraph(head_name, dict(zip(names, nodes)), names, nodes, inputs, entry)
    # Steps are numbered as they are found (the head is 0): the ordering below works on small lists
    # indexed by number, not on hash tables of 100,000 names.
    index: dict[int, int] = {id(head): 0}
    named_by_str = type(head).__str__ is not _NODE_STR
    nodes: list[Node] = [head]
    names: list[str] = [head_name]
    dep_index: list[list[int]] = []
    for step in nodes:  # grows as steps are found: a breadth-first walk
        deps = step.dependencies
        if type(deps) is not list:
            deps = _dependencies_as_list(step)
        found = []
        for position, dep in enumerate(deps):
            j = index.get(id(dep))
            if j is None:
                if not isinstance(dep, Node):
                    raise _not_a_step(step, position, dep)
                j = index[id(dep)] = len(nodes)
                nodes.append(dep)
                kind = type(dep)
                if kind.__str__ is _NODE_STR:
                    names.append(dep.name_alias or kind._default_name or kind.__name__)
                else:  # named by its own __str__, which may read any attribute: never remembered
                    names.append(str(dep))
                    named_by_str = True
            found.append(j)
        dep_index.append(found)
    if len(set(names)) != len(names):  # two different steps with one name
        raise _duplicates(names, nodes, head)
    ordered = _execution_order_of(names, dep_index)
    position = [0] * len(ordered)
    for p, j in enumerate(ordered):
        position[j] = p
    names = [names[j] for j in ordered]
    nodes = [nodes[j] for j in ordered]
    at = position.__getitem__
    inputs = [tuple(map(at, dep_index[j])) for j in ordered]
    entry = None if named_by_str else graph_cache.remember(head, names[:-1], nodes[:-1], inputs)
    return PipelineGraph(head_name, dict(zip(names, nodes)), names, nodes, inputs, entry)


def _duplicates(names: list[str], nodes: list[Node], head: Node) -> DuplicateStepName:
    first: dict[str, Node] = {}
    duplicates: dict[str, list[Node]] = {}
    for name, node in zip(names, nodes):
        other = first.setdefault(name, node)
        if other is not node:
            duplicates.setdefault(name, [other]).append(node)
    return DuplicateStepName(_duplicate_message(duplicates, head), sorted(duplicates))


def _dependencies_as_list(step: Node) -> list:
    """``step.dependencies`` as a list, when it was replaced by a tuple, a single Step or None."""
    return as_dependency_list(f"Step {str(step)!r} (its .dependencies)", step.dependencies)


def _duplicate_message(duplicates: dict[str, list[Node]], head: Node) -> str:
    users: dict[int, set[str]] = {}
    seen = {id(head)}
    stack = [head]
    while stack:  # a second walk, only to say where each duplicate is used
        step = stack.pop()
        for dep in _dependencies_as_list(step):
            users.setdefault(id(dep), set()).add(str(step))
            if id(dep) not in seen:
                seen.add(id(dep))
                stack.append(dep)
    parts = []
    for name, steps in sorted(duplicates.items()):
        where = "; ".join(
            f"a {type(s).__name__} used by {', '.join(sorted(users.get(id(s), ()))) or 'nobody (the head)'}"
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
    first occurrence of each name. A step's listing is the same every time, so each step is expanded once:
    this is a depth-first pre-order walk that emits each expanded step's dependencies.
    """
    names = [head, *(n for n in deps if n != head)]
    number = {name: j for j, name in enumerate(names)}
    return [names[j] for j in _breadth_first_index([[number[d] for d in deps[n]] for n in names])]


def run_order(inputs: list[tuple[int, ...]], runs: list[bool], backwards: set[int] | None = None) -> list[int]:
    """The positions of the steps that run (``runs``), in the order 1.1 ran them: depth first from the head
    (the last position), each step's dependencies in ``depends_on`` order, each step once, and never below a
    step that does not run (a cached one: its own inputs are not visited). A valid execution order.

    The steps at ``backwards`` have their dependencies visited last first (a map's group lists its items in
    reverse, for 1.1's plan rows; its items run in item order). Iterative; a chain is followed down without
    an iterator per step (0.1 us per step on 100,000)."""
    if backwards:
        inputs = [ins[::-1] if p in backwards else ins for p, ins in enumerate(inputs)]
    head = len(inputs) - 1
    if head < 0 or not runs[head]:
        return []
    todo = bytearray(runs)  # runs and is not visited yet
    todo[head] = 0
    out: list[int] = []
    emit = out.append
    nodes = [head]
    rests: list[Iterator[int] | None] = [iter(inputs[head])]  # None: a step whose one input is visited
    while nodes:
        rest = rests[-1]
        if rest is None:
            rests.pop()
            emit(nodes.pop())
            continue
        for d in rest:
            if not todo[d]:
                continue
            todo[d] = 0
            ins = inputs[d]
            while len(ins) == 1 and todo[ins[0]]:  # down a chain
                nodes.append(d)
                rests.append(None)
                d = ins[0]
                todo[d] = 0
                ins = inputs[d]
            if len(ins) > 1:
                nodes.append(d)
                rests.append(iter(ins))
                break
            emit(d)  # its inputs are visited (or it has none)
            if rests[-1] is None:  # a chain was pushed above it: finish that first
                break
        else:
            rests.pop()
            emit(nodes.pop())
    return out


def legacy_depth_first(head: str, deps: dict[str, tuple[str, ...]]) -> list[str]:
    """The unique names the head depends on in depth-first post-order (1.1's ``depending_steps_depth_first``):
    the order :func:`run_order` runs them in when none is cached, the head left out."""
    names = [*(n for n in deps if n != head), head]
    number = {name: j for j, name in enumerate(names)}
    inputs = [tuple([number[d] for d in deps[n]]) for n in names]
    return [names[p] for p in run_order(inputs, [True] * len(names))[:-1]]


def _breadth_first_index(deps: list[list[int]]) -> list[int]:
    """:func:`legacy_breadth_first` on numbered steps: the head is 0, ``deps[j]`` lists step j's inputs.

    Marks are bytes in a bytearray, not names in sets: on 100,000 steps the walk stays in the CPU's cache."""
    seen = bytearray(len(deps))
    seen[0] = 1
    expanded = bytearray(len(deps))
    out: list[int] = []
    stack = [0]
    while stack:
        j = stack.pop()
        if expanded[j]:
            continue
        expanded[j] = 1
        children = deps[j]
        for d in children:
            if not seen[d]:
                seen[d] = 1
                out.append(d)
        if len(children) == 1:
            stack.append(children[0])
        elif children:
            stack.extend(reversed(children))
    return out


def _execution_order_of(names: list[str], deps: list[list[int]]) -> list[int]:
    """A valid execution order (step numbers) that keeps 1.1's plan order wherever 1.1's order was valid.

    1.1 printed its plan in reversed breadth-first order, which can list a step before one of its own
    dependencies. We use that order as a priority in a topological sort: when it is valid it is kept as is.
    """
    preferred = _breadth_first_index(deps)
    preferred.reverse()
    preferred.append(0)
    position = [0] * len(deps)
    for i, j in enumerate(preferred):
        position[j] = i
    for i, j in enumerate(preferred):
        for d in deps[j]:
            if position[d] >= i:
                break
        else:
            continue
        break
    else:
        return preferred  # already topological, hence acyclic

    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for j in preferred:
        sorter.add(j, *deps[j])
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = [names[j] for j in exc.args[1]]
        cycle.reverse()  # graphlib lists consumers before producers; show "A -> B" as "A feeds B"
        raise CycleError(
            "The pipeline has a cycle: "
            + " -> ".join(cycle)
            + ". A step cannot depend on itself, directly or not; check where .dependencies was changed.",
            cycle,
        ) from None
    order: list[int] = []
    heap: list[tuple[int, int]] = []
    while sorter.is_active():
        for j in sorter.get_ready():
            heapq.heappush(heap, (position[j], j))
        _, j = heapq.heappop(heap)
        order.append(j)
        sorter.done(j)
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
