"""The scale cases of the core issue: deep chains and wide fans, without recursion."""

from __future__ import annotations

import sys

from job_orchestra import Context, Step


class Start(Step):
    def run(self):
        return 0


class Inc(Step):
    def run(self, x):
        return x + 1


class Total(Step):
    def run(self, *xs):
        return sum(xs)


def chain(n: int, ctx: Context | None = None) -> Step:
    step: Step = Start()
    for i in range(n - 1):
        step = Inc(depends_on=step, name_alias=f"s{i}", ctx=ctx if i == n // 2 else None)
    return step


def test_100k_chain_plans_and_materializes_under_the_default_recursion_limit():
    assert sys.getrecursionlimit() <= 10_000
    head = chain(100_000)
    plan = head.execution_plan(show=False)
    assert len(plan) == 100_000 and plan.to_run[0] == "Start"
    assert str(plan).count("\n") == 100_001
    assert head.materialize() == 99_999


def test_100k_chain_with_a_cached_middle_runs_only_the_upper_half():
    ctx = Context()
    head = chain(100_000, ctx)
    assert head.materialize() == 99_999
    assert ctx["s50000"] == 50_001
    plan = head.execution_plan(show=False)
    assert len(plan.to_run) == 100_000 - 50_002
    assert head.materialize() == 99_999


def test_wide_fan_of_10k_steps():
    leaves = [Inc(depends_on=Start(name_alias="root"), name_alias=f"leaf{i}") for i in range(10_000)]
    root = leaves[0].dependencies[0]
    for leaf in leaves:
        leaf.dependencies = [root]
    assert Total(depends_on=leaves).materialize() == 10_000
