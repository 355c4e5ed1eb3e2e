"""The whole plan submitted ahead to Dask (job_orchestra.dask_graph), checked on generated graphs.

Random DAGs (wide, chains, diamonds, random layers), some steps cached beforehand, some failing or interrupting
at random points, run on a LocalCluster and compared with the serial executor: same results, same run counts,
a failed step's dependents never run, finished work is kept. Workers are threads here (processes=False) so run
counts can be read from this process; one test uses worker processes.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections import Counter

import pytest

from job_orchestra import Callback, Context, Step

distributed = pytest.importorskip("distributed")

# Step code reads no global that changes (the code digest would call that a change of the step): runs are
# counted through a logger, failures are asked for through environment variables (threads share both).
RUNS: Counter = Counter()  # step name -> how many times its run() was called
_LOCK = threading.Lock()


class _Count(logging.Handler):
    def emit(self, record):
        with _LOCK:
            RUNS[record.getMessage()] += 1


_LOGGER = logging.getLogger("job-orchestra-tests.dask-graph-runs")
_LOGGER.addHandler(_Count())
_LOGGER.setLevel(logging.INFO)
_LOGGER.propagate = False


class Boom(Exception):
    pass


class _Failing:
    """``FAILING[name] = Boom`` (or KeyboardInterrupt) makes step ``name`` raise it, through the environment."""

    def __setitem__(self, name, error):
        os.environ[f"JO_TEST_FAIL_{name}"] = error.__name__

    def clear(self):
        for key in [k for k in os.environ if k.startswith("JO_TEST_FAIL_")]:
            del os.environ[key]


FAILING = _Failing()


def noted_run(name):
    logging.getLogger("job-orchestra-tests.dask-graph-runs").info(name)
    error = os.environ.get(f"JO_TEST_FAIL_{name}")
    if error == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if error is not None:
        raise Boom(f"step {name} breaks on purpose")


class Node(Step):
    def __init__(self, ident: int, **kw):
        super().__init__(name_alias=f"s{ident}", **kw)
        self.ident = ident

    def run(self, *inputs):
        noted_run(self.name)
        return (self.ident * 7919 + sum(inputs)) % 1_000_003


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def _fresh():
    RUNS.clear()
    FAILING.clear()
    yield
    RUNS.clear()
    FAILING.clear()


def shape(seed: int) -> tuple[list[list[int]], set[int]]:
    """For each step the steps it depends on (earlier ones), and which steps have a Context."""
    rng = random.Random(seed)
    kind = ["wide", "chain", "diamonds", "random"][seed % 4]
    n = rng.randint(3, 40)
    if kind == "wide":
        deps = [[] for _ in range(n - 1)] + [list(range(n - 1))]
    elif kind == "chain":
        deps = [[]] + [[i - 1] for i in range(1, n)]
    elif kind == "diamonds":
        deps = [[]]
        while len(deps) < n:
            top = len(deps) - 1
            deps += [[top], [top], [len(deps), len(deps) + 1]]
    else:
        deps = [sorted(rng.sample(range(i), rng.randint(0, min(i, 3)))) for i in range(n)]
    with_ctx = {i for i in range(len(deps)) if rng.random() < 0.6}
    return deps, with_ctx


def build(deps: list[list[int]], with_ctx: set[int], ctx: Context) -> tuple[list[Step], Step]:
    steps: list[Step] = []
    for i, ds in enumerate(deps):
        steps.append(Node(i, depends_on=[steps[d] for d in ds], ctx=ctx if i in with_ctx else None))
    used = {d for ds in deps for d in ds}
    head = Step.join([s for i, s in enumerate(steps) if i not in used], name_alias="head")
    return steps, head


def serial_run(deps: list[list[int]], with_ctx: set[int]) -> tuple[object, Context]:
    """The head's result and the Context of the same graph run serially (the reference), run counts reset."""
    serial_ctx = Context()
    expected = build(deps, with_ctx, serial_ctx)[1].materialize()
    RUNS.clear()
    return expected, serial_ctx


def descendants(deps: list[list[int]], of: int) -> set[int]:
    out = {of}
    for i, ds in enumerate(deps):
        if any(d in out for d in ds):
            out.add(i)
    return out - {of}


def results_of(ctx: Context) -> dict:
    return {k: v for k, v in ctx.items() if k != "context_meta"}


def precache(steps: list[Step], with_ctx: set[int], rng: random.Random) -> None:
    """Run some steps that have a Context beforehand (serially), so their results are cached."""
    for i in sorted(rng.sample(sorted(with_ctx), k=len(with_ctx) // 3)):
        steps[i].materialize()


class Log(Callback):
    def __init__(self):
        super().__init__()
        self.events: list[tuple[str, str]] = []

    def step_start(self, name):
        self.events.append(("start", name))

    def step_finish(self, name, seconds):
        self.events.append(("finish", name))

    def step_cached(self, name):
        self.events.append(("cached", name))

    def step_fail(self, name, exc):
        self.events.append(("fail", name))

    def names(self, kind):
        return [n for k, n in self.events if k == kind]


@pytest.mark.parametrize("lean", [False, True], ids=["with-progress", "no-callbacks"])
@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_give_the_serial_results_and_run_counts(client, seed, lean):
    deps, with_ctx = shape(seed)
    expected = {}
    for executor in (None, client):
        ctx = Context()
        steps, head = build(deps, with_ctx, ctx)
        precache(steps, with_ctx, random.Random(seed))
        RUNS.clear()
        log = Log()
        out = head.materialize(executor, callbacks=None if lean else log)
        expected.setdefault("out", out)
        expected.setdefault("ctx", results_of(ctx))
        expected.setdefault("runs", dict(RUNS))
        assert out == expected["out"]
        assert results_of(ctx) == expected["ctx"]
        assert dict(RUNS) == expected["runs"]
        assert all(n == 1 for n in RUNS.values())
        if lean:
            continue
        assert sorted(log.names("start")) == sorted(log.names("finish")) == sorted([*RUNS, "head"])
        for name in log.names("finish"):  # a step starts (is queued on the cluster) before it finishes
            assert log.events.index(("start", name)) < log.events.index(("finish", name))


@pytest.mark.parametrize("lean", [False, True], ids=["with-progress", "no-callbacks"])
@pytest.mark.parametrize("seed", range(40))
def test_a_failure_runs_no_dependent_keeps_what_finished_and_resume_runs_the_rest(client, seed, lean):
    deps, with_ctx = shape(seed)
    rng = random.Random(1000 + seed)
    expected, serial_ctx = serial_run(deps, with_ctx)

    ctx = Context()
    steps, head = build(deps, with_ctx, ctx)
    precache(steps, with_ctx, rng)
    RUNS.clear()
    broken = rng.randrange(len(deps))
    FAILING[f"s{broken}"] = Boom
    log = Log()
    if f"s{broken}" not in head.execution_plan(show=False).to_run:  # cached, or only needed by cached steps
        assert head.materialize(client, callbacks=log) == expected
        return
    with pytest.raises(Boom, match=f"step s{broken} breaks") as info:
        head.materialize(client, callbacks=None if lean else log)
    assert f"step 's{broken}' (Node) failed" in "\n".join(info.value.__notes__)
    below = {f"s{i}" for i in descendants(deps, broken)}
    assert not below & set(RUNS)  # no dependent of the failed step ran
    if not lean:
        assert log.names("fail") == [f"s{broken}"]
        assert not below & set(log.names("start"))
        assert set(log.names("finish")) <= set(RUNS)
    for name, value in results_of(ctx).items():  # everything kept is right, and everything finished is kept
        assert value == results_of(serial_ctx)[name]
    finished_with_ctx = {n for n in log.names("finish") if int(n[1:]) in with_ctx}
    assert finished_with_ctx <= set(results_of(ctx))

    kept = set(results_of(ctx))
    FAILING.clear()
    RUNS.clear()
    assert head.materialize(client) == expected
    assert not kept & set(RUNS)  # what was kept is not run again
    assert results_of(ctx) == results_of(serial_ctx)


class Interrupting(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) when the ``at``-th step finishes."""

    def __init__(self, at):
        super().__init__()
        self.at = at
        self.finished: list[str] = []

    def step_finish(self, name, seconds):
        self.finished.append(name)
        if len(self.finished) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("seed", range(24))
def test_an_interrupt_keeps_finished_work_and_the_next_run_does_the_rest(client, seed):
    deps, with_ctx = shape(seed)
    rng = random.Random(2000 + seed)
    expected, serial_ctx = serial_run(deps, with_ctx)

    ctx = Context()
    head = build(deps, with_ctx, ctx)[1]
    in_step = seed % 2 == 0
    if in_step:  # a step raises KeyboardInterrupt on its worker
        FAILING[f"s{rng.randrange(len(deps))}"] = KeyboardInterrupt
        callback = Interrupting(at=10**9)
    else:  # the client is interrupted while it records a result
        callback = Interrupting(at=rng.randint(1, len(deps)))
    lean = seed % 4 == 0  # a step interrupts, no callbacks: steps without a Context are only polled
    with pytest.raises(KeyboardInterrupt) as info:
        head.materialize(client, callbacks=None if lean else callback)
    assert "job-orchestra: interrupted" in "\n".join(info.value.__notes__)
    for name, value in results_of(ctx).items():
        assert value == results_of(serial_ctx)[name]
    assert {n for n in callback.finished if int(n[1:]) in with_ctx} <= set(results_of(ctx))

    kept = set(results_of(ctx))
    FAILING.clear()
    RUNS.clear()
    assert head.materialize(client) == expected
    assert not kept & set(RUNS)
    assert results_of(ctx) == results_of(serial_ctx)
    assert all(n == 1 for n in RUNS.values())


def test_graphs_larger_than_a_batch_go_in_pieces(client, monkeypatch):
    from job_orchestra import dask_submit

    monkeypatch.setattr(dask_submit, "BATCH", 7)  # a consumer in a later piece than its input
    for seed in range(8):
        deps, with_ctx = shape(seed)
        serial = build(deps, with_ctx, Context())[1].materialize()
        RUNS.clear()
        ctx = Context()
        assert build(deps, with_ctx, ctx)[1].materialize(client) == serial
        assert all(n == 1 for n in RUNS.values())


class Slow(Step):
    """Waits for ``gate`` (set by the test) so that a second run finds it in flight."""

    gate = threading.Event()

    def run(self, x):
        noted_run(self.name)
        assert Slow.gate.wait(20), "the test never opened the gate"
        return x + 1


class Plus(Step):
    def run(self, x):
        noted_run(self.name)
        return x * 10


def test_a_step_another_run_computes_is_waited_for_not_submitted_again(client):
    ctx = Context()
    Slow.gate.clear()
    base = Node(1, ctx=ctx)
    slow = Slow(depends_on=base, ctx=ctx)
    first = Plus(depends_on=slow, name_alias="first", ctx=ctx)
    second = Plus(depends_on=slow, name_alias="second", ctx=ctx)
    outcome = {}
    started = threading.Event()
    watcher = Callback(step_start=lambda name: started.set() if name == "Slow" else None)
    thread = threading.Thread(target=lambda: outcome.setdefault("first", first.materialize(client, callbacks=watcher)))
    thread.start()
    assert started.wait(20)
    log = Log()
    releaser = threading.Timer(0.5, Slow.gate.set)  # opens the gate once the second run is waiting
    releaser.start()
    try:
        assert second.materialize(client, callbacks=log) == (7919 + 1) * 10
    finally:
        Slow.gate.set()
        thread.join(20)
        releaser.cancel()
    assert outcome["first"] == (7919 + 1) * 10
    assert RUNS["Slow"] == 1 and RUNS["s1"] == 1  # computed once, for both runs
    assert "Slow" not in log.names("start") and "second" in log.names("finish")


def test_worker_processes_run_generated_graphs_like_the_serial_executor():
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as proc_client,
    ):
        for seed in range(6):
            deps, with_ctx = shape(seed)
            expected, serial_ctx = serial_run(deps, with_ctx)
            ctx = Context()
            steps, head = build(deps, with_ctx, ctx)
            precache(steps, with_ctx, random.Random(seed))
            assert head.materialize(proc_client) == expected
            assert results_of(ctx) == results_of(serial_ctx)
        ctx = Context()  # a step that fails in a worker process: its dependents never run, the rest is kept
        base = Node(0, ctx=ctx)
        side = Node(1, depends_on=base, ctx=ctx)
        broken = Breaks(depends_on=base, ctx=ctx)
        below = Node(2, depends_on=broken, ctx=ctx)
        with pytest.raises(Boom, match="breaks in a worker process") as info:
            Step.join([side, below]).materialize(proc_client)
        assert "Traceback in the worker" in "\n".join(info.value.__notes__)
        assert sorted(results_of(ctx)) == ["s0", "s1"]


class Breaks(Step):
    def run(self, x):
        raise Boom("breaks in a worker process")
