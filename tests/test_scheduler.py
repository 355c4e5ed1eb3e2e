"""materialize(): run once, release memory, keep finished work on failure."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from job_orchestra import Context, InvalidStepError, Step


class Counter(Step):
    """Counts its runs in the dict the test passes (kept outside the step: a step's attributes are
    parameters, and changing them while running makes job-orchestra warn)."""

    _logs: dict[int, dict] = {}

    def __init__(self, runs, **kwargs):
        super().__init__(**kwargs)
        Counter._logs[id(self)] = runs

    def run(self, *inputs):
        runs = Counter._logs[id(self)]
        runs[str(self)] = runs.get(str(self), 0) + 1
        return sum(inputs) + 1


def diamond_ladder(levels: int, runs: dict) -> Step:
    """Each rung has two steps that both depend on both steps of the rung below."""
    below = [Counter(runs, name_alias="base")]
    for i in range(levels):
        rung = [
            Counter(runs, depends_on=below, name_alias=f"L{i}a"),
            Counter(runs, depends_on=below, name_alias=f"L{i}b"),
        ]
        below = rung
    return Counter(runs, depends_on=below, name_alias="top")


def test_diamond_ladder_runs_each_step_once():
    runs: dict = {}
    head = diamond_ladder(14, runs)  # 30 steps; 1.1 calls run() 49,151 times on this shape
    head.materialize()
    assert len(runs) == 30 and set(runs.values()) == {1}


def test_results_equal_a_naive_evaluation():
    runs: dict = {}
    head = diamond_ladder(5, runs)

    def naive(step):  # what a recursive evaluation without caching computes
        return sum(naive(d) for d in step.dependencies) + 1

    assert head.materialize() == naive(head) == 95


def test_failure_keeps_finished_results_and_resume_runs_only_what_is_left():
    ctx = Context()
    runs: dict = {}
    state = {"fail": True}

    class Fragile(Step):
        def run(self, x):
            if state["fail"]:
                raise ValueError("disk full")
            return x * 10

    a = Counter(runs, ctx=ctx, name_alias="A")
    b = Counter(runs, depends_on=a, ctx=ctx, name_alias="B")
    head = Fragile(depends_on=b, ctx=ctx)
    with pytest.raises(ValueError, match="disk full") as info:
        head.materialize()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "'Fragile'" in notes and "2 step(s) finished" in notes and "next materialize()" in notes
    assert ctx["A"] == 1 and ctx["B"] == 2
    state["fail"] = False
    assert head.materialize() == 20
    assert runs == {"A": 1, "B": 1}


def test_keyboard_interrupt_keeps_finished_results_and_gets_a_note():
    ctx = Context()
    runs: dict = {}

    class Stop(Step):
        def run(self, x):
            raise KeyboardInterrupt

    head = Stop(depends_on=Counter(runs, ctx=ctx, name_alias="A"))
    with pytest.raises(KeyboardInterrupt) as info:
        head.materialize()
    assert any("'Stop'" in n and "interrupted" in n for n in info.value.__notes__)
    assert ctx["A"] == 1


def test_missing_run_is_refused_before_anything_runs():
    runs: dict = {}

    class NoRun(Step):
        pass

    with pytest.raises(InvalidStepError, match=r"'NoRun'.*does not define run"):
        NoRun(depends_on=Counter(runs, name_alias="A")).materialize()
    assert runs == {}


def test_run_arity_must_match_the_dependencies():
    runs: dict = {}

    class TakesTwo(Step):
        def run(self, a, b):
            return a + b

    with pytest.raises(InvalidStepError, match=r"'TakesTwo'.*1 dependencies \(A\).*takes 2 inputs"):
        TakesTwo(depends_on=Counter(runs, name_alias="A")).materialize()
    assert runs == {}


class Blob:
    """A large result whose live instances are counted."""

    alive = 0
    peak = 0

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        Blob.alive += 1
        Blob.peak = max(Blob.peak, Blob.alive)

    def __del__(self) -> None:
        Blob.alive -= 1


class Big(Step):
    def run(self, *inputs):
        return Blob(100 * 2**20)


def test_results_are_released_once_no_remaining_step_needs_them():
    Blob.alive = Blob.peak = 0
    gc.collect()
    step: Step = Big(name_alias="b0")
    for i in range(1, 20):
        step = Big(depends_on=step, name_alias=f"b{i}")
    tracemalloc.start()
    try:
        result = step.materialize()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, Blob)
    assert Blob.peak <= 3, Blob.peak  # input, output, and at most one more
    assert peak < 3.5 * 100 * 2**20, peak / 2**20
    del result


def test_a_context_keeps_what_it_holds_while_the_run_releases_the_rest():
    Blob.alive = 0
    ctx = Context()
    a = Big(name_alias="a", ctx=ctx)
    b = Big(depends_on=a, name_alias="b")
    c = Big(depends_on=b, name_alias="c")
    c.materialize()
    gc.collect()
    assert Blob.alive == 1 and isinstance(ctx["a"], Blob)
    ctx.clear()
    assert Blob.alive == 0


def test_each_materialize_call_reruns_uncached_steps():
    runs: dict = {}
    head = Counter(runs, depends_on=Counter(runs, name_alias="A"), name_alias="H")
    head.materialize()
    head.materialize()
    assert runs == {"A": 2, "H": 2}
