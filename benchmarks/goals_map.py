"""Issue 14 item 4: a map over 10,000 items plans and runs with the per-item overhead of an ordinary step.

Figure: ``Cell.map(i=range(n), ctx=ctx)``, n items and their MapGroup; reference: a chain of n ordinary
steps of the same class (one parameter each, one Context), built alike. Both are measured in one fresh
interpreter, runs alternating (map first, then chain first), each run on a new pipeline and a new Context:
the plan (``execution_plan``), the first ``materialize()`` (every step runs: plan, checks, n ``run()``
calls, n results written with their fingerprints), then a no-op ``materialize()`` (everything cached).
"""

from __future__ import annotations

import gc
from typing import Any

from harness import Timer, figure, ratio_row, run_worker, samples_from

from job_orchestra import Context, Step

PHASES = ("plan", "run", "noop")


class Cell(Step):
    """An ordinary step with one parameter: an item of the map, or a link of the reference chain."""

    def __init__(self, i: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.i = i

    def run(self, *inputs: int) -> int:
        return self.i


def _build(kind: str, n: int, ctx: Context) -> Step:
    if kind == "map":
        return Cell.map(i=range(n), ctx=ctx)
    step = None
    for i in range(n):
        step = Cell(i=i, depends_on=step, ctx=ctx, name_alias=f"Cell[{i}]")
    return step


def map_vs_chain(n: int, runs: int) -> dict[str, dict[str, list[dict]]]:
    """Samples of each phase for the map and for the chain, in this (fresh) process."""
    out: dict[str, dict[str, list[dict]]] = {k: {p: [] for p in PHASES} for k in ("map", "chain")}
    for r in range(runs):
        for kind in ("map", "chain") if r % 2 == 0 else ("chain", "map"):
            ctx = Context()
            head = _build(kind, n, ctx)  # untimed: building is not the overhead asked about
            gc.collect()
            with Timer() as plan_t:
                plan = head.execution_plan(show=False)
            with Timer() as run_t:
                result = head.materialize()
            with Timer() as noop_t:
                again = head.materialize()
            assert len(plan.to_run) == n + (kind == "map"), len(plan.to_run)  # untimed checks
            assert sum(1 for k in ctx if k.startswith("Cell[")) == n
            expected = list(range(n)) if kind == "map" else n - 1
            assert result == expected and again == expected
            for phase, t in zip(PHASES, (plan_t, run_t, noop_t)):
                out[kind][phase].append(t.sample.__dict__)
    return out


WHAT = {
    "plan": "execution_plan() of a new {n:,}-item map / {n:,}-step chain, per item / step",
    "run": "first materialize() (every item runs), per item / per step of the chain",
    "noop": "no-op materialize() (all cached), per item / per step of the chain",
}
TIMED = {
    "plan": "head.execution_plan(show=False): collect, fingerprints, rows, groups",
    "run": "head.materialize(): plan, checks, each run(), each result written to the Context with its fingerprint",
    "noop": "head.materialize() when every result is cached (checked untimed: nothing left to run)",
}


def rows(quick: bool) -> list[dict]:
    n = 2_000 if quick else 10_000
    runs = 3 if quick else 7
    got = run_worker("goals_map", "map_vs_chain", n, runs, timeout=1800)
    out = []
    for phase in PHASES:
        fig = figure(samples_from(got["map"][phase]), "us/step", 1e6 / n)
        ref = figure(samples_from(got["chain"][phase]), "us/step", 1e6 / n)
        out.append(ratio_row("14", WHAT[phase].format(n=n), fig, ref, 1.2, TIMED[phase]).as_dict())
    return out
