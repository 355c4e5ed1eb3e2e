"""The remembered graph of a head (job_orchestra.graph_cache) never changes a plan.

Random pipelines are planned, mutated at random (dependencies replaced, appended to in place, set through
``__dict__``, names changed, Contexts swapped, Context entries added, removed or changed, step attributes
changed, classes swapped), and planned again: each plan made with the cache must equal the plan made without
it, error included.
"""

from __future__ import annotations

import gc
import weakref

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Context, Step, graph_cache
from job_orchestra.graph import collect
from job_orchestra.plan import ExecutionPlan


class Probe(Step):
    def run(self, *inputs):
        return (str(self), inputs)


class Other(Step):
    def run(self, *inputs):
        return ("other", inputs)


def plan_or_error(head):
    try:
        plan = ExecutionPlan.of(head)
    except Exception as exc:  # the error is part of what must not change
        return ("error", type(exc).__name__, str(exc))
    graph = plan.graph
    return (
        [(name, id(step)) for name, step in graph.steps.items()],
        dict(graph.deps),
        [tuple(row) for row in plan.rows],
        graph.head,
    )


MUTATIONS = [
    "replace",
    "append",
    "dict_set",
    "alias",
    "ctx_swap",
    "ctx_add",
    "ctx_del",
    "ctx_change",
    "attr",
    "tuple",
    "klass",
]


@st.composite
def scenarios(draw):
    n = draw(st.integers(min_value=2, max_value=8))
    deps = [[]] + [draw(st.lists(st.integers(0, i - 1), max_size=min(i, 3))) for i in range(1, n)]
    kinds = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    ops = draw(
        st.lists(
            st.tuples(st.sampled_from(MUTATIONS), st.integers(0, n - 1), st.integers(0, n - 1), st.integers(0, 3)),
            min_size=1,
            max_size=8,
        )
    )
    return deps, kinds, ops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_cached_plan_equals_uncached_plan_under_random_mutations(scenario):
    deps, kinds, ops = scenario
    contexts = [Context(), Context()]
    steps = []
    for i, ds in enumerate(deps):
        cls = Other if kinds[i] else Probe
        steps.append(cls(depends_on=[steps[d] for d in ds], ctx=contexts[i % 2], name_alias=f"s{i}"))
    head = steps[-1]
    graph_cache.clear()
    try:
        head.materialize()
        for op, a, b, v in [(None, 0, 0, 0), *ops]:
            step, other = steps[a], steps[b]
            if op == "replace":
                step.dependencies = [other] if v else []  # same length or not; b >= a may make a cycle
            elif op == "append" and isinstance(step.dependencies, list):
                step.dependencies.append(other)  # in place; may make a cycle or a repeat
            elif op == "dict_set":
                step.__dict__["dependencies"] = [s for s in step.dependencies if s is not other]
            elif op == "alias":
                step.name_alias = f"s{b}" if v == 0 else None if v == 1 else f"n{v}"  # sometimes a duplicate
            elif op == "ctx_swap":
                step.ctx = None if v == 0 else contexts[v % 2]
            elif op == "ctx_add" and step.ctx is not None:
                step.ctx[step.name] = ("by hand", v)
            elif op == "ctx_del" and step.ctx is not None and step.name in step.ctx:
                del step.ctx[step.name]
            elif op == "ctx_change" and step.ctx is not None and step.name in step.ctx:
                step.ctx[step.name] = ("changed", v)
            elif op == "attr":
                step.level = v
            elif op == "klass":  # a step named after its class takes another name
                step.__class__ = Other if type(step) is Probe else Probe
            elif op == "tuple":
                step.dependencies = tuple(step.dependencies)
            cached = plan_or_error(head)
            graph_cache.enabled(False)
            try:
                fresh = plan_or_error(head)
            finally:
                graph_cache.enabled(True)
            assert cached == fresh, (op, a, b, v)
            if op is not None and v == 3 and cached[0] != "error":
                head.materialize()  # runs change what the Contexts hold, with the cache in use
    finally:
        graph_cache.enabled(True)


def test_a_repeated_plan_uses_the_remembered_walk():
    a = Probe(name_alias="a")
    b = Probe(depends_on=a, name_alias="b")
    first = collect(b)
    assert graph_cache.lookup(b) is not None
    again = collect(b)
    assert list(again.steps) == list(first.steps) == ["a", "b"] and again.deps == first.deps
    a.name_alias = "a2"
    assert graph_cache.lookup(b) is None
    assert list(collect(b).steps) == ["a2", "b"]


def test_the_cache_does_not_keep_a_pipeline_alive():
    a = Probe(name_alias="a")
    b = Probe(depends_on=a, name_alias="b")
    collect(b)
    gone = weakref.ref(b)
    del a, b
    gc.collect()
    assert gone() is None


def test_a_class_swap_or_renamed_class_renames_a_step_without_alias():
    a = Probe()
    b = Probe(depends_on=a, name_alias="b")
    assert list(collect(b).steps) == ["Probe", "b"]
    a.__class__ = Other
    assert list(collect(b).steps) == ["Other", "b"]
    Other._default_name = "Renamed"
    try:
        assert list(collect(b).steps) == ["Renamed", "b"]
    finally:
        del Other._default_name
    assert list(collect(b).steps) == ["Other", "b"]
