"""Thread pools run a run's steps from its own queue (job_orchestra.thread_queue): at most ``limit`` threads,
two runs sharing a pool both progress, a pool that stops taking work fails the step it was to run and
loses nothing, and a handle collected after its step finished still calls back."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Callback, Context, Step
from job_orchestra.shipping import Gate
from job_orchestra.thread_queue import _TURN, ThreadQueue


class Counter:
    """How many steps run at once, at most."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


COUNTER = Counter()  # a module global, not a step parameter (a lock has no content to fingerprint)


class Sleepy(Step):
    def __init__(self, i, counter, seconds, **kw):
        super().__init__(name_alias=f"s{i}", **kw)
        self.i, self.seconds = i, seconds

    def run(self, *inputs):
        with COUNTER:
            time.sleep(self.seconds)
        return self.i + sum(inputs)


class Announced(Callback):
    """The most steps announced as started and not finished, at once."""

    def __init__(self):
        super().__init__()
        self.now = self.peak = 0
        self.finished: list[str] = []

    def step_start(self, name):
        self.now += 1
        self.peak = max(self.peak, self.now)

    def step_finish(self, name, seconds):
        self.now -= 1
        self.finished.append(name)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(1, 4),
    limit_less=st.integers(0, 3),
    n=st.integers(1, 40),
    layers=st.integers(1, 3),
    seconds=st.sampled_from([0.0, 0.0005, 0.002]),
)
def test_at_most_limit_steps_run_and_are_announced_at_once(size, limit_less, n, layers, seconds):
    limit = max(1, size - limit_less)
    counter = COUNTER
    counter.peak = 0
    layer = [Sleepy(i, counter, seconds, ctx=Context()) for i in range(n)]
    expected = list(range(n))
    for k in range(1, layers):  # each step of a layer takes one step of the one before
        layer = [Sleepy(k * n + i, counter, seconds, depends_on=s) for i, s in enumerate(layer)]
        expected = [k * n + i + e for i, e in enumerate(expected)]
    head = Step.join(layer)
    announced = Announced()
    with ThreadPoolExecutor(size) as pool:
        out = head.materialize(pool, max_workers=limit, callbacks=announced)
    assert list(out) == expected
    assert 1 <= counter.peak <= limit
    assert announced.peak <= limit


def test_two_runs_sharing_a_pool_both_progress():
    """One thread, a long run started first: the second run's steps run before the first run ends, since a
    thread hands itself back to the pool every _TURN steps."""
    order: list[str] = []
    first_began = threading.Event()

    class Logged(Step):
        def __init__(self, label, **kw):
            super().__init__(name_alias=label, **kw)
            self.label = label

        def run(self):
            order.append(self.label)
            first_began.set()
            time.sleep(0.0005)
            return self.label

    long_run = Step.join([Logged(f"a{i}") for i in range(6 * _TURN)])
    short_run = Step.join([Logged(f"b{i}") for i in range(3)])
    with ThreadPoolExecutor(1) as pool:
        other = threading.Thread(target=lambda: (first_began.wait(5), short_run.materialize(pool)))
        other.start()
        long_run.materialize(pool)
        other.join(10)
    assert not other.is_alive()
    last_a = max(i for i, label in enumerate(order) if label.startswith("a"))
    assert all(order.index(f"b{i}") < last_a for i in range(3)), "the second run waited for the first"


class RefusingPool(ThreadPoolExecutor):
    """A pool that stops taking work after ``accept`` submits, as a pool shut down by someone else does."""

    def __init__(self, accept):
        super().__init__(2)
        self.accept = accept

    def submit(self, fn, /, *args, **kwargs):
        if self.accept <= 0:
            raise RuntimeError("cannot schedule new futures after shutdown")
        self.accept -= 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize("accept", [0, 1, 2, 3])
def test_a_pool_that_stops_taking_work_fails_the_step_and_keeps_what_finished(accept):
    """A chain, so a drainer is started for nearly every step: the step whose drainer the pool refuses fails
    with the pool's own error, nothing hangs, what finished is kept, and a resumed run on a working pool
    does only the rest."""
    ctx = Context()
    steps = [Sleepy(0, COUNTER, 0.0, ctx=ctx)]
    for i in range(1, 8):
        steps.append(Sleepy(i, COUNTER, 0.0, depends_on=steps[-1], ctx=ctx))
    pool = RefusingPool(accept)
    try:
        with pytest.raises(RuntimeError, match="after shutdown"):
            steps[-1].materialize(pool)
    finally:
        pool.shutdown()
    kept = {k for k in ctx if k != "context_meta"}
    assert kept < {s.name for s in steps}
    assert kept == {f"s{i}" for i in range(len(kept))}, "what finished before the refusal is kept"
    ran = Announced()
    with ThreadPoolExecutor(2) as good:
        assert steps[-1].materialize(good, callbacks=ran) == sum(range(8))
    assert ran.finished == [f"s{i}" for i in range(len(kept), 8)]


def test_a_drainer_goes_on_when_the_pool_shuts_down_under_it():
    """More than one turn of steps, the pool shut down by the first: the drainer cannot hand its thread
    back, so it runs the rest itself."""
    pool = ThreadPoolExecutor(1)
    queue = ThreadQueue(pool, 1, Gate())
    done = threading.Semaphore(0)
    jobs = []
    for i in range(3 * _TURN):
        run = (lambda i=i: pool.shutdown(wait=False) or i) if i == 0 else (lambda i=i: i)
        job = queue.put(f"s{i}", run, [], None, gated=False)
        job.add_done_callback(lambda job: done.release())
        jobs.append(job)
    for _ in jobs:
        assert done.acquire(timeout=10)
    assert [job.result() for job in jobs] == list(range(3 * _TURN))
    assert queue.active == 0


def test_a_callback_added_after_the_step_finished_is_called_at_once():
    with ThreadPoolExecutor(1) as pool:
        queue = ThreadQueue(pool, 1, Gate())
        failing = queue.put("bad", lambda: 1 / 0, [], None, gated=False)
        fine = queue.put("good", lambda x: x + 1, [41], None, gated=False)
        while queue.active:
            time.sleep(0.001)
    seen = []
    fine.add_done_callback(seen.append)
    failing.add_done_callback(seen.append)
    assert seen == [fine, failing]
    assert fine.result() == 42
    with pytest.raises(ZeroDivisionError):
        failing.result()


def test_a_queued_step_does_not_start_once_the_gate_stopped():
    started = []
    with ThreadPoolExecutor(1) as pool:
        gate = Gate()
        queue = ThreadQueue(pool, 1, gate)
        hold = threading.Event()
        first = queue.put("first", lambda: hold.wait(5), [], None, gated=False)
        queued = queue.put("queued", lambda: started.append(1), [], None, gated=True)
        gate.stop()
        hold.set()
        while queue.active:
            time.sleep(0.001)
    assert first.result() is True
    from job_orchestra.shipping import NOT_STARTED

    assert queued.result() is NOT_STARTED and started == []
