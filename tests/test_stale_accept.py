"""Accepting an edit: ``step.accept_code()`` keeps a cached result fresh after an edit that changes no result."""

from __future__ import annotations

import pytest

from job_orchestra import Context
from job_orchestra.errors import AcceptError, PipelineError
from tests.test_fingerprint import cell

PIPELINE = """
from job_orchestra import Step
RUNS = []

class Load(Step):
    def run(self):
        RUNS.append("Load")
        return [3, 1, 2]

class Sort(Step):
    def __init__(self, reverse=False, **kw):
        super().__init__(**kw)
        self.reverse = reverse

    def run(self, xs):
        RUNS.append("Sort")
        return sorted(xs, reverse=self.reverse)

class Report(Step):
    def run(self, xs):
        RUNS.append("Report")
        return ",".join(map(str, xs))
"""
FASTER_SORT = PIPELINE.replace(
    "return sorted(xs, reverse=self.reverse)",
    "out = list(xs)\n        out.sort(reverse=self.reverse)\n        return out",
)


def build(ns, ctx, reverse=False):
    load = ns["Load"](ctx=ctx)
    sort = ns["Sort"](reverse, depends_on=load, ctx=ctx)
    return sort, ns["Report"](depends_on=sort, ctx=ctx)


def states(head):
    return [(r.name, r.availability.value, r.reason) for r in head.execution_plan(show=False)]


def test_accepting_a_code_edit_with_its_dependents_runs_nothing_and_plans_fresh():
    ctx = Context()
    ns = cell(PIPELINE)
    assert build(ns, ctx)[1].materialize() == "1,2,3"
    edited = cell(FASTER_SORT)  # the cell edited and run again: new classes, same results
    sort, head = build(edited, ctx)
    assert states(head)[1:] == [("Sort", "[~]", "code: Sort.run"), ("Report", "[~]", "upstream: Sort")]
    assert sort.accept_code(head) == ["Sort", "Report"]
    assert [a for _, a, _ in states(head)] == ["[*]", "[*]", "[*]"]
    assert head.materialize() == "1,2,3" and edited["RUNS"] == []
    assert sort.accept_code(head) == []  # fresh already: nothing to do


def test_accepting_only_the_step_leaves_its_dependents_stale():
    ctx = Context()
    assert build(cell(PIPELINE), ctx)[1].materialize() == "1,2,3"
    sort, head = build(cell(FASTER_SORT), ctx)
    assert sort.accept_code() == ["Sort"]
    assert states(head)[1:] == [("Sort", "[*]", None), ("Report", "[~]", "upstream: Sort")]


def test_a_dependent_stale_for_its_own_edit_stays_stale():
    ctx = Context()
    assert build(cell(PIPELINE), ctx)[1].materialize() == "1,2,3"
    both = cell(FASTER_SORT.replace('",".join', '";".join'))
    sort, head = build(both, ctx)
    assert sort.accept_code(head) == ["Sort"]
    assert states(head)[2] == ("Report", "[~]", "code: Report.run")
    assert head.materialize() == "1;2;3" and both["RUNS"] == ["Report"]


def test_parameters_or_missing_results_are_never_accepted():
    ctx = Context()
    assert build(cell(PIPELINE), ctx)[1].materialize() == "1,2,3"
    sort, head = build(cell(FASTER_SORT), ctx, reverse=True)
    why = r"step 'Sort' is stale for more than its code \(code: Sort.run; parameters: reverse False → True\)"
    with pytest.raises(AcceptError, match=why):
        sort.accept_code(head)
    assert states(head)[1][1] == "[~]"  # nothing was changed
    fresh = build(cell(PIPELINE), Context())[0]
    with pytest.raises(AcceptError, match="step 'Sort' has no cached result to accept") as err:
        fresh.accept_code()
    assert isinstance(err.value, PipelineError) and isinstance(err.value, ValueError)
