"""Parallel materialize(): threads, processes and any concurrent.futures.Executor.

Concurrency is proven with barriers and events (a test deadlocks into a timeout error if steps do not
overlap as they should), never with timings.
"""

from __future__ import annotations

import _thread
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from job_orchestra import Callback, Context, Step

WAIT = 20  # seconds before a barrier or event gives up: only reached when the scheduler is wrong

EXECUTORS = ["threads", "processes", "thread-pool", "process-pool"]


@pytest.fixture(params=EXECUTORS)
def executor(request):
    """Each way of running steps in parallel; pools passed by the caller are shut down by the caller."""
    kind = request.param
    if kind == "thread-pool":
        with ThreadPoolExecutor(3) as pool:
            yield pool
    elif kind == "process-pool":
        with ProcessPoolExecutor(2) as pool:
            yield pool
    else:
        yield kind


# -- steps used below (module level, so any process can load them) ------------------------------------
class Number(Step):
    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.n = n

    def run(self):
        return {"n": self.n, "square": self.n * self.n}


class Total(Step):
    def run(self, *parts):
        return sum(p.square for p in parts)


class Add(Step):
    def run(self, *xs):
        return sum(xs)


class Scale(Step):
    def __init__(self, factor, **kw):
        super().__init__(**kw)
        self.factor = factor

    def run(self, evens, odds, number):
        return [evens * self.factor, odds * self.factor, number.n]


def diamond(ctx=None):
    numbers = [Number(i, name_alias=f"n{i}", ctx=ctx) for i in range(6)]
    totals = [Total(depends_on=numbers[i::2], name_alias=f"total{i}", ctx=ctx) for i in range(2)]
    return Scale(3, depends_on=[totals[0], totals[1], numbers[5]], name_alias="head", ctx=ctx)


def results_of(ctx):
    return {k: v for k, v in ctx.items() if k != "context_meta"}


class EventLog(Callback):
    """Records events, and checks they come one at a time from the thread that called materialize()."""

    def __init__(self):
        super().__init__()
        self.events = []
        self.thread = threading.get_ident()
        self.busy = False

    def _log(self, *event):
        assert threading.get_ident() == self.thread, "events must come from the coordinating thread"
        assert not self.busy, "events must be delivered one at a time"
        self.busy = True
        self.events.append(event)
        self.busy = False

    def step_start(self, name):
        self._log("start", name)

    def step_finish(self, name, seconds):
        assert seconds >= 0
        self._log("finish", name)

    def step_cached(self, name):
        self._log("cached", name)

    def step_fail(self, name, error):
        self._log("fail", name, type(error).__name__)

    def names(self, kind):
        return [e[1] for e in self.events if e[0] == kind]


# -- results ------------------------------------------------------------------------------------------
def test_results_and_contexts_identical_to_serial(executor):
    serial_ctx = Context()
    expected = diamond(serial_ctx).materialize()
    ctx = Context()
    log = EventLog()
    assert diamond(ctx).materialize(executor, callbacks=log) == expected == [3 * (0 + 4 + 16), 3 * (1 + 9 + 25), 5]
    assert results_of(ctx) == results_of(serial_ctx)
    assert type(ctx["n3"]).__name__ == "AttrDict" and ctx["n3"].square == 9  # dict outputs get attribute access
    assert sorted(log.names("start")) == sorted(log.names("finish")) == sorted(results_of(ctx))  # each once


def test_each_step_runs_once_and_cached_steps_do_not_run():
    runs = []
    lock = threading.Lock()

    class Counted(Step):
        def run(self, *xs):
            with lock:
                runs.append(self.name)
            return sum(xs) + 1

    ctx = Context()
    root = Counted(name_alias="root", ctx=ctx)
    mids = [Counted(depends_on=root, name_alias=f"mid{i}", ctx=ctx) for i in range(5)]
    head = Counted(depends_on=mids, name_alias="head")
    assert head.materialize("threads", max_workers=4) == 11
    assert sorted(runs) == sorted(["root", *(f"mid{i}" for i in range(5)), "head"])
    runs.clear()
    del ctx["mid2"]
    log = EventLog()
    assert head.materialize("threads", callbacks=log) == 11
    assert sorted(runs) == ["head", "mid2"]  # root is cached: its result comes from the Context
    assert log.names("cached").count("root") == 1


def test_cached_head_is_returned_without_running_anything():
    ctx = Context()
    head = diamond(ctx)
    first = head.materialize("threads")
    ran = EventLog()
    assert head.materialize("processes", callbacks=ran) == first
    assert ran.names("start") == [] and ran.names("cached") == ["head"]


def test_a_step_starts_as_soon_as_its_inputs_are_ready():
    # `slow` only returns once `follower` has run; `follower` depends on `quick`, not on `slow`.
    # A scheduler that waited for a whole "level" to finish before starting the next would deadlock.
    followed = threading.Event()

    class Slow(Step):
        def run(self):
            assert followed.wait(WAIT), "follower did not start while slow was still running"
            return "slow"

    class Quick(Step):
        def run(self):
            return "quick"

    class Follower(Step):
        def run(self, quick):
            followed.set()
            return quick + "+follower"

    head = Step.join([Slow(), Follower(depends_on=Quick())])
    assert head.materialize("threads", max_workers=2) == ("slow", "quick+follower")


@pytest.mark.parametrize("max_workers", [1, 2, 3])
def test_at_most_max_workers_steps_run_at_once(max_workers):
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()
    together = threading.Barrier(max_workers, timeout=WAIT)

    class Busy(Step):
        def run(self):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            together.wait()  # proves max_workers steps do run together
            with lock:
                state["now"] -= 1
            return 1

    head = Step.join([Busy(name_alias=f"b{i}") for i in range(max_workers * 3)])
    assert sum(head.materialize("threads", max_workers=max_workers)) == max_workers * 3
    assert state["peak"] == max_workers


def test_the_executors_own_limit_is_respected():
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    class Busy(Step):
        def run(self):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.01)
            with lock:
                state["now"] -= 1
            return 1

    head = Step.join([Busy(name_alias=f"b{i}") for i in range(8)])
    with ThreadPoolExecutor(2) as pool:
        log = EventLog()
        head.materialize(pool, callbacks=log)
        in_flight = peak = 0
        for kind, *_ in log.events:  # the scheduler itself never has more than 2 steps started
            in_flight += {"start": 1, "finish": -1}.get(kind, 0)
            peak = max(peak, in_flight)
        assert peak == 2
        assert pool.submit(lambda: "still open").result() == "still open"  # a caller's pool is not shut down
    assert state["peak"] <= 2


def test_several_steps_start_before_any_finishes():
    # What live displays rely on: step_start for each running step, from the coordinating thread.
    together = threading.Barrier(3, timeout=WAIT)

    class Meet(Step):
        def run(self):
            together.wait()
            return self.name

    log = EventLog()
    head = Step.join([Meet(name_alias=f"m{i}") for i in range(3)], name_alias="all")
    assert head.materialize("threads", max_workers=3, callbacks=log) == ("m0", "m1", "m2")
    kinds = [e[0] for e in log.events]
    assert kinds[:3] == ["start"] * 3 and kinds.index("finish") == 3
    assert log.events[-2:] == [("start", "all"), ("finish", "all")]


def test_steps_are_submitted_in_plan_order():
    log = EventLog()
    head = Step.join([Number(i, name_alias=f"n{i}") for i in range(8)], name_alias="head")
    plan = head.execution_plan(show=False)
    head.materialize("threads", max_workers=1, callbacks=log)
    assert log.names("start") == plan.to_run


def test_bad_executor_arguments_are_refused():
    head = Number(1)
    with pytest.raises(ValueError, match="'gpus' is not known"):
        head.materialize("gpus")
    with pytest.raises(TypeError, match="executor= takes"):
        head.materialize(42)
    with pytest.raises(ValueError, match="max_workers"):
        head.materialize("threads", max_workers=0)


# -- failures and resume ------------------------------------------------------------------------------
class Boom(ValueError):
    pass


def test_failure_lets_running_steps_finish_starts_nothing_new_and_resume_runs_the_rest():
    ctx = Context()
    ran = []
    sibling_started = threading.Event()
    failure_seen = threading.Event()
    broken = {"yes": True}

    class Fails(Step):
        def run(self):
            ran.append(self.name)
            assert sibling_started.wait(WAIT)
            if broken["yes"]:
                raise Boom("bad input")
            return 1

    class Sibling(Step):
        def run(self):
            ran.append(self.name)
            sibling_started.set()
            assert failure_seen.wait(WAIT)  # still running when the failure is known
            return 2

    class Later(Step):
        def run(self):
            ran.append(self.name)
            return 3

    # Steps start in 1.1's order, depends_on first to last: Fails, Sibling, then Later.
    head = Add(depends_on=[Fails(ctx=ctx), Sibling(ctx=ctx), Later(ctx=ctx)], name_alias="head", ctx=ctx)
    assert head.execution_plan(show=False).to_run == ["Fails", "Sibling", "Later", "head"]

    log = EventLog()
    log.step_fail = lambda name, error: (failure_seen.set(), log._log("fail", name, type(error).__name__))
    with pytest.raises(Boom, match="bad input") as info:
        head.materialize("threads", max_workers=2, callbacks=log)
    note = "\n".join(info.value.__notes__)
    assert "step 'Fails' (Fails) failed" in note and "1 step(s) finished" in note
    assert sorted(ran) == ["Fails", "Sibling"]  # Later was ready but never started
    assert results_of(ctx) == {"Sibling": 2}  # the running sibling finished and kept its result
    assert ("fail", "Fails", "Boom") in log.events and log.names("finish") == ["Sibling"]

    broken["yes"] = False
    ran.clear()
    sibling_started.set()
    assert head.materialize("threads", max_workers=2) == 6
    assert sorted(ran) == ["Fails", "Later"]  # only what was left


class FailsInWorker(Step):
    def run(self, *xs):
        raise Boom(f"worker got {xs}")


def test_failure_in_another_process_keeps_its_type_and_names_the_step():
    ctx = Context()
    head = Total(depends_on=[FailsInWorker(depends_on=Number(2, ctx=ctx), name_alias="bad")], ctx=ctx)
    with pytest.raises(Boom, match="worker got") as info:
        head.materialize("processes")
    notes = "\n".join(info.value.__notes__)
    assert "step 'bad' (FailsInWorker) failed" in notes
    assert "Traceback in the worker" in notes and "raise Boom" in notes
    assert "Number" in ctx


def test_a_step_that_cannot_be_shipped_fails_with_its_name():
    class HoldsAGenerator(Step):
        def __init__(self):
            super().__init__()
            self.numbers = (i for i in range(3))

        def run(self):
            return 1

    with pytest.raises(TypeError) as info:
        HoldsAGenerator().materialize("processes")
    notes = "\n".join(info.value.__notes__)
    assert "step 'HoldsAGenerator' (HoldsAGenerator) cannot be serialized" in notes and "executor='threads'" in notes


def test_keyboard_interrupt_inside_a_step():
    ctx = Context()
    sibling_started = threading.Event()
    interrupt_seen = threading.Event()

    class Interrupted(Step):
        def run(self):
            assert sibling_started.wait(WAIT)
            raise KeyboardInterrupt

    class Sibling(Step):
        def run(self):
            sibling_started.set()
            assert interrupt_seen.wait(WAIT)
            return "kept"

    head = Step.join([Interrupted(ctx=ctx), Sibling(ctx=ctx), Number(1, ctx=ctx)], name_alias="head")
    log = EventLog()
    log.step_fail = lambda name, error: (interrupt_seen.set(), log._log("fail", name, type(error).__name__))
    with pytest.raises(KeyboardInterrupt) as info:
        head.materialize("threads", max_workers=2, callbacks=log)
    assert "interrupted in step 'Interrupted': " in "\n".join(info.value.__notes__)
    assert results_of(ctx) == {"Sibling": "kept"}
    assert "Number" not in log.names("start")


def test_keyboard_interrupt_in_the_coordinating_loop_waits_for_running_steps():
    # A callback raising KeyboardInterrupt is Ctrl-C arriving in the coordinating thread.
    ctx = Context()
    release = threading.Event()

    class Running(Step):
        def run(self):
            assert release.wait(WAIT)
            return "finished anyway"

    class Stop(Callback):
        def step_start(self, name):
            if name == "Number":
                release.set()
                raise KeyboardInterrupt

    head = Step.join([Running(ctx=ctx), Number(1, ctx=ctx), Number(2, name_alias="two", ctx=ctx)])
    with pytest.raises(KeyboardInterrupt) as info:
        head.materialize("threads", max_workers=3, callbacks=Stop())
    assert "interrupted while running 'Running'" in "\n".join(info.value.__notes__)
    assert results_of(ctx) == {"Running": "finished anyway"}  # Number and two never started
    assert head.materialize("threads")[0] == "finished anyway"


def test_ctrl_c_while_waiting_for_steps():
    # _thread.interrupt_main() is what a notebook's stop button does: KeyboardInterrupt in the main thread.
    ctx = Context()

    class Presses(Step):
        def run(self):
            _thread.interrupt_main()
            time.sleep(0.3)  # still running while the main thread handles the interrupt
            return "done"

    head = Step.join([Presses(ctx=ctx), Number(1, ctx=ctx)])
    with pytest.raises(KeyboardInterrupt) as info:
        head.materialize("threads", max_workers=1)
    assert "job-orchestra: interrupted while running 'Presses'" in "\n".join(info.value.__notes__)
    assert results_of(ctx) == {"Presses": "done"}


# -- memory ---------------------------------------------------------------------------------------------
LIVE: weakref.WeakSet = weakref.WeakSet()


class Blob:
    """A result whose live instances in this process are counted (unpickled copies included)."""

    def __new__(cls, *args):
        self = super().__new__(cls)
        LIVE.add(self)
        return self

    def __init__(self, n):
        self.n = n


class SumBlobs(Step):
    def run(self, *blobs):
        return Blob(sum(b.n for b in blobs))


class MakeBlob(Step):
    def run(self, *prev):
        return Blob(prev[0].n + 1 if prev else 0)


class LiveCount(Callback):
    """Counts Blob objects alive in this process each time a step starts."""

    def __init__(self):
        super().__init__()
        self.counts = []

    def step_start(self, name):
        self.counts.append(len(LIVE))


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_results_are_released_once_consumers_have_them(kind):
    LIVE.clear()
    step = MakeBlob(name_alias="b0")
    for i in range(1, 12):
        step = MakeBlob(depends_on=step, name_alias=f"b{i}")
    counter = LiveCount()
    # One thread: a pool thread may hold its last work item (and its result) until it takes the next one.
    out = step.materialize(kind, max_workers=1 if kind == "threads" else 2, callbacks=counter)
    assert out.n == 11
    # When step k starts, only its own input (the output of k-1) is alive; the first step has none.
    assert counter.counts == [0] + [1] * 11
    del out
    assert len(LIVE) == 0


def test_results_kept_for_several_consumers_are_released_after_the_last():
    LIVE.clear()
    root = MakeBlob(name_alias="root")
    users = [MakeBlob(depends_on=root, name_alias=f"user{i}") for i in range(4)]
    root_refs = []

    class Watch(Callback):
        def step_finish(self, name, seconds):
            if name == "root":
                root_refs.append(weakref.ref(next(b for b in LIVE if b.n == 0)))

        def step_start(self, name):
            if name == "last":
                assert root_refs[0]() is None  # every user took root's output: released

    head = SumBlobs(depends_on=users, name_alias="last")
    assert head.materialize("threads", max_workers=2, callbacks=Watch()).n == 4


# -- thread safety --------------------------------------------------------------------------------------
def test_many_concurrent_steps_share_one_context():
    ctx = Context()
    together = threading.Barrier(4, timeout=WAIT)

    class Piece(Step):
        def __init__(self, i):
            super().__init__(name_alias=f"piece{i}", ctx=ctx)
            self.i = i

        def run(self):
            if self.i < 4:
                together.wait()  # the first four surely overlap
            return {"i": self.i, "sq": self.i**2}

    pieces = [Piece(i) for i in range(200)]
    head = Step.join(pieces, name_alias="all")
    log = EventLog()
    out = head.materialize("threads", max_workers=4, callbacks=log)
    assert [p.sq for p in out] == [i * i for i in range(200)]
    assert {k: v.sq for k, v in results_of(ctx).items()} == {f"piece{i}": i * i for i in range(200)}
    assert len(log.names("finish")) == 201


# -- classes defined in __main__ travel by value --------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    from dataclasses import dataclass
    from job_orchestra import Context, Step

    @dataclass
    class Point:
        x: int
        y: int

    class Origin(Step):
        def run(self):
            return Point(0, 0)

    class Move(Step):
        def __init__(self, dx, **kw):
            super().__init__(**kw)
            self.dx = dx

        def run(self, p):
            return Point(p.x + self.dx, p.y + 1)

    class Farthest(Step):
        def run(self, *points):
            return max(points, key=lambda p: p.x)

    if __name__ == "__main__":
        ctx = Context()
        origin = Origin(ctx=ctx)
        head = Farthest(depends_on=[Move(i, depends_on=origin, name_alias=f"m{i}", ctx=ctx) for i in range(4)])
        out = head.materialize("processes", max_workers=2)
        assert out == Point(3, 1) and type(out) is Point, out
        assert type(ctx["m1"]) is Point
        print("ok", out)
    """
)


def test_steps_defined_in_main_run_on_processes(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok Point(x=3, y=1)"


def test_steps_calling_decorated_library_functions_can_be_shipped():
    # dill.dumps(recurse=True) loops forever on scikit-learn's decorated functions; shipping must work.
    from sklearn.model_selection import cross_val_score

    from job_orchestra.executors import dump_step

    class Scores(Step):  # a local class: carried by value, like a notebook's
        def run(self):
            return callable(cross_val_score)

    clone = pickle.loads(dump_step("Scores", Scores()))
    assert clone.run() is True and clone.ctx is None and clone.dependencies == []


def test_processes_are_never_forked_from_this_process():
    # A fork copies locks held by other threads (OpenMP, BLAS, a Jupyter kernel): the child can hang.
    from job_orchestra.executors import process_context

    assert process_context().get_start_method() in ("forkserver", "spawn")


def test_importing_the_package_loads_no_executor_library():
    # Dask, tqdm and the process machinery are imported only when a run asks for them.
    code = (
        "import sys, job_orchestra, job_orchestra.cli, job_orchestra.progress, job_orchestra.scheduler\n"
        "print(sorted(m for m in ('distributed', 'dask', 'tqdm', 'concurrent.futures.process') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_processes_start_from_an_ipython_session_whose_main_has_no_spec(monkeypatch):
    # IPython replaces sys.modules["__main__"] with a stand-in object that has no __spec__.
    import types

    stand_in = types.SimpleNamespace(__name__="__main__")
    monkeypatch.setitem(sys.modules, "__main__", stand_in)
    assert Number(4).materialize("processes", max_workers=1).square == 16
