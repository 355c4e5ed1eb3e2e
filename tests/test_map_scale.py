"""A 10,000-item map plans, runs and re-plans like any 10,000-step pipeline (no timing here: see benchmarks/)."""

from __future__ import annotations

from job_orchestra import Context, Step


class Cell(Step):
    def __init__(self, i: int = 0, **kw: object) -> None:
        super().__init__(**kw)
        self.i = i

    def run(self) -> int:
        return self.i * 2


def test_a_10000_item_map_plans_runs_and_resumes() -> None:
    n = 10_000
    ctx = Context()
    group = Cell.map(i=range(n), ctx=ctx)
    plan = group.execution_plan(show=False)
    assert len(plan) == n + 1 and plan.groups["Cell"].counts["to run"] == n
    assert str(plan).count("\n [ ] (>) Cell[") == n
    out = group.materialize()
    assert out == [2 * i for i in range(n)]
    assert sum(1 for k in ctx if k.startswith("Cell[")) == n
    del ctx["Cell[5000]"]
    bigger = Cell.map(i=range(n + 1), ctx=ctx)
    plan = bigger.execution_plan(show=False)
    assert plan.to_run == ["Cell[5000]", f"Cell[{n}]", "Cell"]
    assert plan.groups["Cell"].counts == {"cached": n - 1, "to run": 2, "stale": 0, "not needed": 0}
    assert bigger.materialize()[-2:] == [2 * (n - 1), 2 * n]
