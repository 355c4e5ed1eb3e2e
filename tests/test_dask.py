"""materialize(executor=client) on a two-worker Dask LocalCluster (one cluster for the whole module)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from job_orchestra import Context, Step
from tests.test_parallel import EventLog, Number, diamond, results_of

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def tasks_on_cluster(client):
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def wait_until_released(client):
    """Dask releases data asynchronously once no future refers to it; wait (bounded) for that."""
    deadline = time.monotonic() + 20
    while tasks_on_cluster(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    return tasks_on_cluster(client)


def test_results_and_contexts_identical_to_serial(client):
    serial_ctx = Context()
    expected = diamond(serial_ctx).materialize()
    ctx = Context()
    log = EventLog()
    assert diamond(ctx).materialize(client, callbacks=log) == expected
    assert results_of(ctx) == results_of(serial_ctx)
    assert ctx["n2"].square == 4  # dict outputs get attribute access, as in a serial run
    assert sorted(log.names("start")) == sorted(log.names("finish")) == sorted(results_of(ctx))
    assert wait_until_released(client) == 0  # nothing is left on the workers


class Heavy:
    """A result that refuses to be unpickled in the client: intermediate data must stay on the workers."""

    def __init__(self, value, client_pid):
        self.value = value
        self.client_pid = client_pid

    def __setstate__(self, state):
        if os.getpid() == state["client_pid"]:
            raise AssertionError("an intermediate result was sent to the client")
        self.__dict__.update(state)


class MakeHeavy(Step):
    def __init__(self, value, **kw):
        super().__init__(**kw)
        self.value = value
        self.client_pid = os.getpid()

    def run(self):
        return Heavy(self.value, self.client_pid)


class Combine(Step):
    def run(self, *heavies):
        return Heavy(sum(h.value for h in heavies), heavies[0].client_pid)


class Unwrap(Step):
    def run(self, heavy):
        return heavy.value


def test_intermediate_results_move_between_workers_not_through_the_client(client):
    parts = [MakeHeavy(i, name_alias=f"part{i}") for i in range(4)]
    pairs = [Combine(depends_on=parts[i : i + 2], name_alias=f"pair{i}") for i in (0, 2)]
    head = Unwrap(depends_on=Combine(depends_on=pairs, name_alias="all"))
    assert head.materialize(client) == 6  # Heavy.__setstate__ fails the run if the client loads one


class Fragile(Step):
    broken = True

    def run(self, number):
        if self.broken:
            raise ZeroDivisionError("fragile step broke")
        return number.n + 100


class Pair(Step):
    def run(self, a, b):
        return [a, b.n]


class PairLast(Step):
    def run(self, b, a):
        return [a, b.n]


def test_failure_names_the_step_keeps_finished_results_and_resume_runs_the_rest(client):
    ctx = Context()
    fragile = Fragile(depends_on=Number(3, ctx=ctx), ctx=ctx)
    head = PairLast(depends_on=[Number(4, name_alias="four", ctx=ctx), fragile], name_alias="Pair", ctx=ctx)
    assert head.execution_plan(show=False).to_run == ["four", "Number", "Fragile", "Pair"]  # 1.1's order
    with pytest.raises(ZeroDivisionError, match="fragile step broke") as info:
        head.materialize(client, max_workers=1)
    notes = "\n".join(info.value.__notes__)
    assert "step 'Fragile' (Fragile) failed" in notes and "Traceback in the worker" in notes
    assert sorted(results_of(ctx)) == ["Number", "four"]

    fragile.broken = False  # the step is shipped by value: the fix travels with it
    log = EventLog()
    assert head.materialize(client, callbacks=log) == [103, 4]
    assert log.names("start") == ["Fragile", "Pair"]  # only what was left
    assert sorted(log.names("cached")) == ["Number", "four"]


class Interrupts(Step):
    def run(self):
        raise KeyboardInterrupt


def test_keyboard_interrupt_in_a_task_reaches_the_client_and_spares_the_worker(client):
    with pytest.raises(KeyboardInterrupt) as info:
        Interrupts().materialize(client)
    assert "interrupted in step 'Interrupts': 0 of 1 steps done" in "\n".join(info.value.__notes__)
    assert Number(5).materialize(client).square == 25  # the workers are still there
    assert len(client.scheduler_info()["workers"]) == 2


def test_max_workers_limits_steps_in_flight(client):
    log = EventLog()
    head = Step.join([Number(i, name_alias=f"n{i}") for i in range(5)])
    head.materialize(client, max_workers=1, callbacks=log)
    kinds = [e[0] for e in log.events if e[0] in ("start", "finish")]
    assert kinds == ["start", "finish"] * 6


SCRIPT = textwrap.dedent(
    """
    from dataclasses import dataclass
    from distributed import Client, LocalCluster
    from job_orchestra import Context, Step

    @dataclass
    class Point:
        x: int

    class Origin(Step):
        def run(self):
            return Point(0)

    class Move(Step):
        def __init__(self, dx, **kw):
            super().__init__(**kw)
            self.dx = dx

        def run(self, p):
            return {"point": Point(p.x + self.dx)}

    class Collect(Step):
        def run(self, *moves):
            return [m.point for m in moves]

    if __name__ == "__main__":
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as c:
            ctx = Context()
            origin = Origin()
            head = Collect(depends_on=[Move(i, depends_on=origin, name_alias=f"m{i}", ctx=ctx) for i in range(3)])
            out = head.materialize(c)
            assert out == [Point(0), Point(1), Point(2)] and all(type(p) is Point for p in out), out
            assert type(ctx["m2"].point) is Point
            print("ok")
    """
)


def test_steps_defined_in_main_run_on_dask(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_command_line_runs_on_a_running_cluster(client, tmp_path, monkeypatch, capsys):
    from job_orchestra.cli import main

    (tmp_path / "dask_cli_pipeline.py").write_text(
        textwrap.dedent(
            """
            from job_orchestra import Context, Step

            ctx = Context()

            class Numbers(Step):
                def run(self):
                    return list(range(5))

            class Double(Step):
                def run(self, xs):
                    return [2 * x for x in xs]

            head = Double(depends_on=Numbers(ctx=ctx), ctx=ctx)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    address = client.scheduler.address
    try:
        assert main(["run", "dask_cli_pipeline.py:head", "--executor", "dask", "--dask-address", address]) == 0
    finally:
        sys.modules.pop("dask_cli_pipeline", None)
    assert capsys.readouterr().out.strip() == "[0, 2, 4, 6, 8]"
