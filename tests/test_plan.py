"""ExecutionPlan: rows, markers, schedule rule, text form."""

from __future__ import annotations

from job_orchestra import Context, ExecutionPlan
from job_orchestra.plan import Availability, Schedule
from tests.recipes import Leaf, Node


def rows(head):
    return [(r.name, r.availability.value, r.schedule.value) for r in head.execution_plan(show=False)]


def test_every_step_gets_a_row_also_those_hidden_behind_a_cached_step():
    ctx = Context()
    leaf = Leaf()
    mid = Node(depends_on=leaf, ctx=ctx, name_alias="Mid")
    head = Node(depends_on=mid, name_alias="Head")
    assert rows(head) == [("Leaf", "[x]", "(>)"), ("Mid", "[ ]", "(>)"), ("Head", "[x]", "(H)")]
    head.materialize()
    assert rows(head) == [("Leaf", "[x]", "( )"), ("Mid", "[*]", "( )"), ("Head", "[x]", "(H)")]


def test_a_cached_head_schedules_nothing():
    ctx = Context()
    head = Node(depends_on=Node(depends_on=Leaf(), name_alias="Mid"), ctx=ctx, name_alias="Head")
    head.materialize()
    plan = head.execution_plan(show=False)
    assert rows(head) == [("Leaf", "[x]", "( )"), ("Mid", "[x]", "( )"), ("Head", "[*]", "(H)")]
    assert plan.to_run == []


def test_a_step_reachable_through_an_uncached_path_is_still_scheduled():
    ctx = Context(Cached=5)
    shared = Leaf(name_alias="Shared")
    cached = Node(depends_on=shared, ctx=ctx, name_alias="Cached")
    other = Node(depends_on=shared, name_alias="Other")
    head = Node(depends_on=[cached, other], name_alias="Head")
    assert rows(head) == [  # 1.1's order: reversed breadth-first
        ("Shared", "[x]", "(>)"),
        ("Other", "[x]", "(>)"),
        ("Cached", "[*]", "( )"),
        ("Head", "[x]", "(H)"),
    ]
    assert head.execution_plan(show=False).to_run == ["Shared", "Other", "Head"]


def test_plan_rows_carry_class_and_support_lookup():
    head = Node(depends_on=Leaf(name_alias="Start"), name_alias="End")
    plan = ExecutionPlan.of(head)
    assert len(plan) == 2
    assert plan["Start"].step_class == "Leaf"
    assert plan[1].availability is Availability.NO_CONTEXT and plan[1].schedule is Schedule.HEAD
    assert str(plan[0]) == " [x] (>) Start"


def test_refresh_sees_context_changes():
    ctx = Context()
    head = Node(depends_on=Leaf(ctx=ctx), name_alias="H")
    plan = head.execution_plan(show=False)
    assert plan["Leaf"].availability is Availability.MISSING
    ctx["Leaf"] = 10
    assert plan.refresh()["Leaf"].availability is Availability.AVAILABLE
    assert head.materialize() == 11


def test_show_true_prints_the_1_1_text(capsys):
    head = Node(depends_on=Leaf(), name_alias="H")
    plan = head.execution_plan(show=True)
    printed = capsys.readouterr().out
    assert printed == str(plan) + "\n"
    assert printed.startswith("Execution plan. Result availability: [*] available - [ ] n/a - [x] no context.")
