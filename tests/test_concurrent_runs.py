"""Two materialize() calls at once never run a step twice, and a Context changed during a run gives every
consumer of a result the same value (issue 9, item 7). Real threads and processes; generated cases.

Overlap is forced, never timed: the "gate" step of the first run does not return until the second run has
planned (so the second run plans the gate, and everything after it, as still to run).
"""

from __future__ import annotations

import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Callback, ConcurrentStepError, Context, InvalidStepError, Step

WAIT = 30  # seconds before an event gives up: reached only when the registry is wrong


class Box:
    """A result whose identity is checked (the waiting run must get the very same object)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Box({self.value})"


class Counted(Step):
    """Records each run in a file (works across processes); the gate step waits for ``release`` first."""

    def __init__(self, value: int, log_dir: str, gate: str | None = None, **kw) -> None:
        super().__init__(**kw)
        self.value = value
        self.log_dir = log_dir
        self.gate = gate  # a file whose appearance lets the gate step return

    def run(self, *inputs: Box) -> Box:
        fd = os.open(os.path.join(self.log_dir, f"{self}.runs"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(fd, b"x")
        os.close(fd)
        if self.gate is not None:
            gate = Path(self.gate)
            (gate.parent / "gate-started").touch()
            if not _wait_for(gate.exists):
                raise TimeoutError("the gate was never released")
        return Box(self.value + sum(i.value for i in inputs))


def _wait_for(condition, timeout: float = WAIT) -> bool:
    event = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if condition():
            return True
        event.wait(0.005)
    return False


def runs(log_dir: Path) -> dict[str, int]:
    return {p.stem: len(p.read_bytes()) for p in log_dir.glob("*.runs")}


def random_pipeline(rng: random.Random, log_dir: Path, gate_file: Path, ctx_share: float):
    """A random DAG of 3-10 steps; returns (steps by name, the head, the name of the gate step, contexts)."""
    n = rng.randint(3, 10)
    ctx = Context()
    steps: list[Counted] = []
    gate_index = rng.randrange(n)
    for i in range(n):
        deps = rng.sample(steps, rng.randint(0, min(3, len(steps)))) if steps else []
        if i == n - 1:  # the head takes every sink, so every step is needed
            used = {id(d) for s in steps for d in s.dependencies}
            deps = [s for s in steps if id(s) not in used] or deps
        steps.append(
            Counted(
                rng.randint(1, 9),
                str(log_dir),
                gate=str(gate_file) if i == gate_index else None,
                depends_on=deps,
                name_alias=f"s{i}",
                ctx=ctx if rng.random() < ctx_share else None,
            )
        )
    return {str(s): s for s in steps}, steps[-1], f"s{gate_index}", ctx


def naive(step: Step) -> int:
    return step.value + sum(naive(d) for d in step.dependencies)


def needed(step: Step) -> set[str]:
    out, stack = set(), [step]
    while stack:
        s = stack.pop()
        if str(s) not in out:
            out.add(str(s))
            stack.extend(s.dependencies)
    return out


def run_two(first, second, executor_a, executor_b, gate_file: Path):
    """Start ``first``; once its gate step is running, start ``second``; release the gate once the second
    run has planned. Returns both results (or the exceptions they raised)."""
    out: dict[str, object] = {}
    planned = threading.Event()

    def go(label, head, executor, callbacks=None):
        try:
            out[label] = head.materialize(executor, callbacks=callbacks)
        except BaseException as exc:  # reported by the test
            out[label] = exc

    a = threading.Thread(target=go, args=("a", first, executor_a))
    a.start()
    assert _wait_for((gate_file.parent / "gate-started").exists), "the gate step never started"
    b = threading.Thread(target=go, args=("b", second, executor_b, Callback(start=lambda plan: planned.set())))
    b.start()
    assert planned.wait(WAIT), "the second run never planned"
    gate_file.touch()
    a.join(WAIT)
    b.join(WAIT)
    assert not a.is_alive() and not b.is_alive(), "a run hangs"
    return out["a"], out["b"]


PAIRS = [(None, None), (None, "threads"), ("threads", None), ("threads", "threads")]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("executors", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_two_runs_at_once_run_each_step_once_and_share_the_results(tmp_path, seed, executors):
    """Every step has a Context: each runs exactly once across both runs, whatever the overlap."""
    rng = random.Random(seed * 31 + PAIRS.index(executors))
    steps, head, _, ctx = random_pipeline(rng, tmp_path, tmp_path / "gate", ctx_share=1.0)
    second = head if rng.random() < 0.5 else rng.choice(list(steps.values()))  # same head or a partial overlap
    out_a, out_b = run_two(head, second, *executors, tmp_path / "gate")
    assert isinstance(out_a, Box) and isinstance(out_b, Box), (out_a, out_b)
    assert out_a.value == naive(head) and out_b.value == naive(second)
    assert runs(tmp_path) == dict.fromkeys(needed(head), 1)
    assert out_b is ctx[str(second)]  # the one result, never a second copy
    if second is head:
        assert out_a is out_b


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("executors", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_a_step_without_context_in_flight_is_awaited_not_rerun(tmp_path, seed, executors):
    """Steps without a Context: the one running when the second run planned (the gate) runs once, and
    the second run gets its very result object."""
    rng = random.Random(1000 + seed)
    steps, head, gate, _ = random_pipeline(rng, tmp_path, tmp_path / "gate", ctx_share=0.3)
    got: list[Box] = []

    class Probe(Step):
        def run(self, x):
            got.append(x)
            return x

    gate_step = steps[gate]
    out_a, out_b = run_two(head, Probe(depends_on=gate_step), *executors, tmp_path / "gate")
    assert isinstance(out_a, Box) and out_a.value == naive(head)
    assert runs(tmp_path)[gate] == 1
    assert out_b is got[0] and out_b.value == naive(gate_step)


@pytest.mark.parametrize("seed", range(3))
def test_runs_on_threads_and_on_processes_at_once_share_the_work(tmp_path, seed):
    rng = random.Random(2000 + seed)
    _, head, _, _ = random_pipeline(rng, tmp_path, tmp_path / "gate", ctx_share=1.0)
    executors = ("threads", "processes") if seed % 2 == 0 else ("processes", "threads")
    out_a, out_b = run_two(head, head, *executors, tmp_path / "gate")
    assert isinstance(out_a, Box) and isinstance(out_b, Box), (out_a, out_b)
    assert out_a is out_b and out_a.value == naive(head)
    assert runs(tmp_path) == dict.fromkeys(needed(head), 1)


@pytest.mark.parametrize("executors", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_a_failure_reaches_the_run_that_waited_for_it(tmp_path, executors):
    log = str(tmp_path)

    class Fails(Counted):
        def run(self, *inputs):
            super().run(*inputs)
            raise ValueError("boom")

    ctx = Context()
    failing = Fails(1, log, gate=str(tmp_path / "gate"), name_alias="failing", ctx=ctx)
    head = Counted(1, log, depends_on=failing, name_alias="head", ctx=ctx)
    out_a, out_b = run_two(head, head, *executors, tmp_path / "gate")
    assert isinstance(out_a, ValueError) and str(out_a) == "boom"
    assert isinstance(out_b, ConcurrentStepError), out_b
    assert out_b.step == "failing" and "failed in another materialize()" in str(out_b)
    assert out_b.__cause__ is out_a
    assert runs(tmp_path) == {"failing": 1}
    with pytest.raises(ValueError, match="boom"):  # the failure was not kept: a later run computes it afresh
        head.materialize()
    assert runs(tmp_path) == {"failing": 2}


def test_runs_that_plan_different_inputs_compute_their_own(tmp_path):
    """The registry key includes the planned fingerprint: a run that will see other inputs does not wait."""
    log = str(tmp_path)
    ctx = Context(given=Box(1))

    class FromContext(Step):
        def run(self):
            return ctx["given"]

    source = FromContext(name_alias="given", ctx=ctx)
    head = Counted(0, log, gate=str(tmp_path / "gate"), depends_on=source, name_alias="head", ctx=ctx)
    out: dict = {}
    a = threading.Thread(target=lambda: out.setdefault("a", head.materialize()))
    a.start()
    assert _wait_for((tmp_path / "gate-started").exists)
    ctx["given"] = Box(5)  # the second run plans with another input
    b = threading.Thread(target=lambda: out.setdefault("b", head.materialize()))
    b.start()
    assert _wait_for(lambda: runs(tmp_path).get("head") == 2), "the second run did not compute its own"
    (tmp_path / "gate").touch()
    a.join(WAIT)
    b.join(WAIT)
    assert {out["a"].value, out["b"].value} == {1, 5}


@pytest.mark.parametrize("executor", [None, "threads"])
@pytest.mark.parametrize("nested", [None, "threads"])
def test_a_step_whose_run_needs_its_own_result_is_refused_not_deadlocked(tmp_path, executor, nested):
    ctx = Context()

    class Inner(Step):
        def run(self):
            return head.materialize(nested)  # needs Inner itself

    inner = Inner(ctx=ctx)
    head = Counted(1, str(tmp_path), depends_on=inner, name_alias="head_nested")
    done: dict = {}

    def go():
        try:
            head.materialize(executor)
        except InvalidStepError as exc:
            done["error"] = exc

    t = threading.Thread(target=go)
    t.start()
    t.join(WAIT)
    assert not t.is_alive(), "deadlocked"
    assert "needs 'Inner' itself" in str(done["error"])
    assert "Inner" not in ctx


# -- a Context changed during a run ----------------------------------------------------------------------
class Reads(Step):
    def __init__(self, seen: list, change=None, **kw):
        super().__init__(**kw)
        self.seen = seen
        self.change = change

    def run(self, a):
        self.seen.append(a)
        if self.change is not None:  # another thread replaces the cached input while consumers are pending
            t = threading.Thread(target=self.change)
            t.start()
            t.join()
        return a


class Sum(Step):
    def run(self, *xs):
        return sum(xs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    consumers=st.integers(2, 6),
    changer=st.integers(0, 5),
    executor=st.sampled_from([None, "threads"]),
    stale=st.sampled_from(["rerun", "use"]),
    head_reads_too=st.booleans(),
)
def test_a_context_changed_during_a_run_gives_every_consumer_the_same_value(
    consumers, changer, executor, stale, head_reads_too
):
    ctx = Context(A=1)

    class Given(Step):
        def run(self):
            raise AssertionError("A is in the Context: it never runs")

    source = Given(name_alias="A", ctx=ctx)
    seen: list = []
    readers = [
        Reads(
            seen,
            change=(lambda: ctx.__setitem__("A", 100)) if i == changer % consumers else None,
            depends_on=source,
            name_alias=f"r{i}",
        )
        for i in range(consumers)
    ]
    deps = readers + ([source] if head_reads_too else [])
    total = Sum(depends_on=deps).materialize(executor, stale=stale)
    assert len(set(seen)) == 1, f"consumers saw a mix: {seen}"
    assert total == seen[0] * len(deps)


class Jittery(Step):
    """Counts its runs in memory; pauses a generated moment so that runs interleave in many ways."""

    calls: dict[str, int] = {}
    lock = threading.Lock()

    def __init__(self, value: int, pause: float, **kw) -> None:
        super().__init__(**kw)
        self.value, self.pause = value, pause

    def run(self, *inputs: Box) -> Box:
        with Jittery.lock:
            Jittery.calls[str(self)] = Jittery.calls.get(str(self), 0) + 1
        threading.Event().wait(self.pause)
        return Box(self.value + sum(i.value for i in inputs))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    callers=st.lists(st.sampled_from([None, "threads", "shared pool"]), min_size=2, max_size=4),
)
def test_many_runs_at_once_on_random_heads_run_each_step_exactly_once(seed, callers):
    """No gates: several threads materialize random heads of one pipeline at once (serially, on a pool of
    their own, or on one two-thread pool they share); every step has a Context, so across all of them each
    needed step runs exactly once, and nobody deadlocks."""
    rng = random.Random(seed)
    ctx = Context()
    steps: list[Jittery] = []
    for i in range(rng.randint(3, 12)):
        deps = rng.sample(steps, rng.randint(0, min(3, len(steps)))) if steps else []
        steps.append(
            Jittery(rng.randint(1, 9), rng.choice([0, 0, 0.001, 0.005]), depends_on=deps, name_alias=f"j{i}", ctx=ctx)
        )
    heads = [rng.choice(steps) for _ in callers]
    Jittery.calls = {}
    out: dict[int, object] = {}
    start = threading.Barrier(len(callers))

    shared = ThreadPoolExecutor(2)

    def go(i, head, executor):
        start.wait(WAIT)
        try:
            out[i] = head.materialize(shared if executor == "shared pool" else executor)
        except BaseException as exc:  # reported below
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i, h, e)) for i, (h, e) in enumerate(zip(heads, callers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    shared.shutdown(wait=False)
    assert not any(t.is_alive() for t in threads), "a run hangs"
    for i, head in enumerate(heads):
        assert isinstance(out[i], Box) and out[i].value == naive(head), out[i]
        assert out[i] is ctx[str(head)]
    assert Jittery.calls == dict.fromkeys(set().union(*(needed(h) for h in heads)), 1)
