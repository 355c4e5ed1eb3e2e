"""Generated pipelines on threads and processes against the serial executor.

Random DAGs (wide, chains, diamonds, random fan-in), some steps cached beforehand, a failure at a random
step or a Ctrl-C at a random event of the coordinating thread. Each case checks: the same results as a
serial run, each step run once (over the failed run and the resumed one), no step that depends on a failed
one started, every step that finished kept its result, and the resumed run only ran what was left.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from job_orchestra import Callback, Context, Step


class Boom(ValueError):
    pass


class Node(Step):
    """``i + sum(inputs)``; fails while the file ``fail_while`` exists (the failure is switched off by
    deleting it, which leaves the step's fingerprint as it was)."""

    def __init__(self, i: int, fail_while: str | None = None, **kw):
        super().__init__(name_alias=f"s{i}", **kw)
        self.i = i
        self.fail_while = fail_while

    def run(self, *inputs):
        import os

        if self.fail_while is not None and os.path.exists(self.fail_while):
            raise Boom(f"step s{self.i} fails on purpose")
        return self.i + sum(inputs) % 1_000_003


def make_deps(rng: random.Random) -> list[list[int]]:
    """The inputs of each step (indices of earlier steps), in one of a few shapes."""
    n = rng.randint(1, 28)
    shape = rng.choice(["wide", "chain", "diamonds", "random"])
    if shape == "wide":
        return [[] for _ in range(n)]
    if shape == "chain":
        return [[i - 1] if i else [] for i in range(n)]
    if shape == "diamonds":
        deps: list[list[int]] = [[]]
        while len(deps) < n:
            top = len(deps) - 1
            width = rng.randint(1, 4)
            deps += [[top] for _ in range(width)]
            deps.append(list(range(top + 1, top + 1 + width)))
        return deps
    return [rng.sample(range(i), rng.randint(0, min(i, 3))) for i in range(n)]


def build(deps: list[list[int]], ctx: Context, fail_at: int | None = None, marker: str | None = None) -> Step:
    """The steps, and a head taking every step nobody else takes."""
    steps: list[Step] = []
    for i, inputs in enumerate(deps):
        fail = marker if i == fail_at else None
        steps.append(Node(i, fail, depends_on=[steps[d] for d in inputs], ctx=ctx))
    used = {d for inputs in deps for d in inputs}
    sinks = [s for i, s in enumerate(steps) if i not in used]
    return Node(len(deps), depends_on=sinks, ctx=ctx)


def descendants(deps: list[list[int]], i: int) -> set[str]:
    """Names of the steps that take ``i``'s result, directly or not, the head included."""
    below = {i}
    for j, inputs in enumerate(deps):
        if any(d in below for d in inputs):
            below.add(j)
    used = {d for inputs in deps for d in inputs}
    names = {f"s{j}" for j in below - {i}}
    if any(j in below for j in range(len(deps)) if j not in used):
        names.add(f"s{len(deps)}")
    return names


class Log(Callback):
    """Starts and finishes; raises KeyboardInterrupt (Ctrl-C in the coordinating thread) at event ``stop_at``."""

    def __init__(self, stop_at: int | None = None):
        super().__init__()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cached: list[str] = []
        self.count = 0
        self.stop_at = stop_at

    def _event(self):
        self.count += 1
        if self.count == self.stop_at:
            raise KeyboardInterrupt

    def step_start(self, name):
        self.started.append(name)
        self._event()

    def step_finish(self, name, seconds):
        self.finished.append(name)
        self._event()

    def step_cached(self, name):
        self.cached.append(name)


def results(ctx: Context) -> dict:
    return {k: v for k, v in ctx.items() if k != "context_meta"}


def check_case(seed: int, executor, max_workers, tmp_path) -> None:
    rng = random.Random(seed)
    deps = make_deps(rng)
    serial_ctx = Context()
    expected = build(deps, serial_ctx).materialize()
    everything = results(serial_ctx)

    ctx = Context()
    marker = tmp_path / f"fail-{seed}"
    fault = rng.choice(["none", "failure", "interrupt"])
    fail_at = rng.randrange(len(deps)) if fault == "failure" else None
    if fail_at is not None:
        marker.write_text("on")
    head = build(deps, ctx, fail_at, str(marker))
    cached_first: set[str] = set()
    if rng.random() < 0.4:  # some steps cached beforehand: one step and what it needs
        pre = rng.randrange(len(deps))
        if pre != fail_at and (fail_at is None or f"s{pre}" not in descendants(deps, fail_at)):
            sub = next(s for s in _all_steps(head) if s.name == f"s{pre}")
            sub.materialize()
            cached_first = set(results(ctx))
    to_run = set(everything) - cached_first
    log = Log(stop_at=rng.randint(1, max(1, 2 * len(to_run))) if fault == "interrupt" else None)

    try:
        out = head.materialize(executor, max_workers=max_workers, callbacks=log)
    except Boom:
        assert fail_at is not None
        out = None
    except KeyboardInterrupt:
        assert fault == "interrupt"
        out = None
    else:
        assert out == expected
        assert fail_at is None and (fault != "interrupt" or log.stop_at > log.count)

    first = set(log.finished)
    assert len(log.finished) == len(first), "a step finished twice"
    assert first <= to_run, "a cached step ran again"
    kept = results(ctx)
    for name in first:  # every finished step kept its result, the serial run's value
        assert kept[name] == everything[name], name
    assert set(kept) == cached_first | first
    if fail_at is not None:
        blocked = descendants(deps, fail_at)
        assert not blocked & set(log.started), "a step depending on the failed one started"
        assert f"s{fail_at}" not in kept
    assert set(log.started) >= first and len(log.started) == len(set(log.started))

    if out is None:  # resume: only what is left runs, each once, and the result is the serial one
        marker.unlink(missing_ok=True)
        again = Log()
        assert head.materialize(executor, max_workers=max_workers, callbacks=again) == expected
        assert not set(again.finished) & first, "the resumed run ran a finished step again"
        assert set(again.finished) | first == to_run
        assert len(again.finished) == len(set(again.finished))
    assert results(ctx) == everything


def _all_steps(head: Step) -> list[Step]:
    seen: dict[int, Step] = {}
    todo = [head]
    while todo:
        s = todo.pop()
        if id(s) not in seen:
            seen[id(s)] = s
            todo.extend(s.dependencies)
    return list(seen.values())


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("kind", ["threads-2", "threads-5", "pool-3", "pool-4-limited-2"])
def test_generated_pipelines_on_threads_match_serial(kind, seed, tmp_path):
    if kind.startswith("threads"):
        check_case(seed, "threads", int(kind.split("-")[1]), tmp_path)
        return
    size = int(kind.split("-")[1])
    limit = 2 if kind.endswith("limited-2") else None
    with ThreadPoolExecutor(size) as pool:
        check_case(seed, pool, limit, tmp_path)


@pytest.fixture(scope="module")
def process_pool():
    with ProcessPoolExecutor(2) as pool:
        yield pool


@pytest.mark.parametrize("seed", range(100, 112))
def test_generated_pipelines_on_a_process_pool_match_serial(seed, process_pool, tmp_path):
    check_case(seed, process_pool, None, tmp_path)


@pytest.mark.parametrize("seed", range(200, 205))
def test_generated_pipelines_on_processes_match_serial(seed, tmp_path):
    check_case(seed, "processes", 2, tmp_path)


def test_the_generator_makes_every_fault_and_shape():
    """The cases above cover failures, interrupts and clean runs, on several shapes (not a vacuous matrix)."""
    faults, sizes = set(), set()
    for seed in range(60):
        rng = random.Random(seed)
        deps = make_deps(rng)
        sizes.add(len(deps) > 10)
        faults.add(rng.choice(["none", "failure", "interrupt"]))
    assert faults == {"none", "failure", "interrupt"} and sizes == {True, False}


def test_a_queued_step_never_starts_after_a_failure():
    """Many independent steps queued on two threads: once the failure is reported (step_fail, from the
    coordinating thread), none of the steps still queued starts; those that ran kept their results."""
    started_after: list[str] = []
    reported = threading.Event()

    class Quick(Step):
        def run(self):
            if reported.is_set():
                started_after.append(self.name)
            time.sleep(0.001)
            return 1

    class Fails(Step):
        def run(self):
            raise Boom("stop here")

    ctx = Context()
    quick = [Quick(name_alias=f"q{i}", ctx=ctx) for i in range(120)]
    head = Step.join([*quick[60:], Fails(ctx=ctx), *quick[:60]])
    log = Log()
    log.step_fail = lambda name, error: reported.set()
    with pytest.raises(Boom):
        head.materialize("threads", max_workers=2, callbacks=log)
    assert started_after == []
    assert set(results(ctx)) == set(log.finished) and len(log.finished) < 120


def test_a_process_pool_taking_steps_ahead_stops_at_a_failure_and_cleans_up(process_pool, tmp_path):
    """Quick steps queue ahead on a process pool: a failure stops the run, what finished is kept (and only
    that), the resumed run does the rest, and the run's stop file does not outlive it."""
    import glob
    import tempfile

    pattern = f"{tempfile.gettempdir()}/job-orchestra-stop-*"
    before = set(glob.glob(pattern))
    marker = tmp_path / "fail"
    marker.write_text("on")
    ctx = Context()
    quick = [Node(i, ctx=ctx) for i in range(200)]
    head = Node(999, depends_on=[*quick[100:], Node(500, str(marker), ctx=ctx), *quick[:100]], ctx=ctx)
    log = Log()
    with pytest.raises(Boom):
        head.materialize(process_pool, callbacks=log)
    assert set(results(ctx)) == set(log.finished) and len(log.finished) == len(set(log.finished)) < 200
    assert set(log.started) >= set(log.finished) and "s500" in log.started and "s999" not in log.started
    assert set(glob.glob(pattern)) == before
    marker.unlink()
    again = Log()
    assert head.materialize(process_pool, callbacks=again) == 999 + (sum(range(200)) + 500) % 1_000_003
    assert not set(again.finished) & set(log.finished)
    assert set(again.finished) | set(log.finished) == {f"s{i}" for i in [*range(200), 500, 999]}
