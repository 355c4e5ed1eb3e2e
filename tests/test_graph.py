"""Graph collection, validation and ordering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job_orchestra import CycleError, DuplicateStepName, Step
from job_orchestra.graph import collect, legacy_breadth_first
from tests.recipes import Leaf, Node


def test_one_object_through_several_paths_is_one_step():
    a = Leaf()
    b = Node(depends_on=a, name_alias="B")
    head = Node(depends_on=[a, b], name_alias="H")
    graph = collect(head)
    assert list(graph.steps) == ["Leaf", "B", "H"]
    assert graph.deps["H"] == ("Leaf", "B")


def test_execution_order_fixes_1_1s_invalid_order():
    # 1.1 lists B before A here, though B depends on A.
    a = Leaf(name_alias="A")
    b = Node(depends_on=a, name_alias="B")
    head = Node(depends_on=[a, b], name_alias="H")
    graph = collect(head)
    assert list(reversed(legacy_breadth_first("H", graph.deps))) == ["B", "A"]
    assert graph.order == ["A", "B", "H"]


def test_two_steps_with_one_name_are_refused_naming_both_and_their_users():
    first, second = Leaf(), Leaf()
    head = Node(depends_on=[Node(depends_on=first, name_alias="Left"), Node(depends_on=second, name_alias="Right")])
    with pytest.raises(DuplicateStepName) as info:
        collect(head)
    message = str(info.value)
    assert "'Leaf' is the name of 2 different steps" in message
    assert "used by Left" in message and "used by Right" in message and "name_alias" in message
    assert info.value.names == ["Leaf"]
    assert isinstance(info.value, ValueError)


def test_duplicate_names_are_refused_before_anything_runs():
    ran = []

    class Spy(Step):
        def run(self):
            ran.append(1)
            return 1

    head = Node(depends_on=[Spy(), Node(depends_on=Spy(), name_alias="Mid")])
    with pytest.raises(DuplicateStepName, match="Spy"):
        head.materialize()
    assert ran == []


def test_a_cycle_made_by_mutating_dependencies_is_named():
    a = Leaf(name_alias="A")
    b = Node(depends_on=a, name_alias="B")
    c = Node(depends_on=b, name_alias="C")
    a.dependencies.append(c)
    for call in (c.materialize, lambda: c.execution_plan(show=False), c.dependency_graph):
        with pytest.raises(CycleError) as info:
            call()
        assert set(info.value.cycle) >= {"A", "B", "C"}
        assert "cycle" in str(info.value) and "A" in str(info.value)


def test_self_dependency_is_a_cycle():
    a = Node(name_alias="Self")
    a.dependencies.append(a)
    with pytest.raises(CycleError, match="Self"):
        a.materialize()


def test_100k_chain_needs_no_recursion():
    step: Step = Leaf()
    for i in range(100_000):
        step = Node(depends_on=step, name_alias=f"n{i}")
    graph = collect(step)
    assert len(graph) == 100_001
    assert graph.order[0] == "Leaf" and graph.order[-1] == "n99999"
    assert len(step.depending_steps_depth_first()) == 100_000


@st.composite
def dags(draw):
    """Random DAGs as dependency lists (step i depends on earlier steps, repeats allowed), the last the head."""
    n = draw(st.integers(min_value=1, max_value=15))
    return [draw(st.lists(st.integers(0, i - 1), max_size=min(i, 4))) if i else [] for i in range(n)]


@settings(max_examples=120, deadline=None)
@given(dags(), st.data())
def test_graph_by_position_matches_the_graph_by_name(deps, data):
    steps: list[Step] = []
    for i, ds in enumerate(deps):
        steps.append(Node(depends_on=[steps[d] for d in ds], name_alias=f"s{i}"))
    first = collect(steps[-1])
    again = collect(steps[-1])  # from the graph cache this time
    for graph in (first, again):
        assert graph.names == list(graph.steps) and graph.nodes == list(graph.steps.values())
        assert graph.names[-1] == graph.head
        for p, (name, node) in enumerate(zip(graph.names, graph.nodes)):
            wanted = tuple(str(d) for d in node.dependencies)
            assert tuple(graph.names[d] for d in graph.inputs[p]) == wanted == graph.deps[name]
            assert all(d < p for d in graph.inputs[p])  # inputs come first: an execution order
    assert again.names == first.names and again.inputs == first.inputs
    picked = data.draw(st.lists(st.sampled_from(first.names), unique=True))
    for names in (sorted(picked, key=first.names.index), picked):  # in execution order, and in any order
        assert [first.names[p] for p in first.positions(names)] == names
