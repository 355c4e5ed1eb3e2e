"""An interrupt looks like an interrupt (neutral words, what is kept and what is left), and tracebacks start
at the user's code: the scheduler's frames are hidden in IPython and left out on the command line."""

from __future__ import annotations

import io
import re
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from job_orchestra import Context, ExecutionPlan, Step
from job_orchestra.tracebacks import print_user_traceback, user_traceback
from jupyter_ext import live, runs
from jupyter_ext.plan_html import progress_html
from jupyter_ext.progress import RunProgress

N = 8


class Link(Step):
    def __init__(self, k, stop_at, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self.stop_at = stop_at

    def run(self, *inputs):
        if self.k == self.stop_at:
            raise KeyboardInterrupt  # what the kernel's stop button raises inside the running step
        return self.k + sum(inputs)


def chain(stop_at: int, ctx: Context) -> Step:
    step = None
    for k in range(N):
        step = Link(k, stop_at, depends_on=[step] if step else None, ctx=ctx, name_alias=f"L{k}")
    return step


@pytest.fixture
def seen():
    events: list = []
    observer = lambda run, event: events.append((run, event))  # noqa: E731
    runs.TRACKER.observers.append(observer)
    yield events
    runs.TRACKER.observers.remove(observer)
    live.deactivate()


@pytest.mark.parametrize("executor", [None, "threads"])
@pytest.mark.parametrize("stop_at", range(N))
def test_an_interrupt_says_what_is_kept_and_what_is_left_in_a_neutral_colour(seen, executor, stop_at):
    ctx = Context()
    head = chain(stop_at, ctx)
    with pytest.raises(KeyboardInterrupt):
        head.materialize(executor, callbacks=runs.TRACKER)
    run = [r for r, e in seen if e == "finish"][-1]
    page = progress_html(run)
    assert f"interrupted</b>: {stop_at} of {N} steps done{', kept' if stop_at else ''}; {N - stop_at} left" in page
    assert "failed" not in page
    bar = RunProgress(run)
    bar.update(run, force=True)
    assert "background:#7a7a7a" in bar.html and "#9b1c1c" not in bar.html  # grey, not the red of a failure
    assert f"width:{round(100 * stop_at / N)}%" in bar.html
    plan = ExecutionPlan.of(head)
    assert runs.statuses(plan) == {}  # the interrupted step is not marked failed: it simply runs again
    assert sorted(k for k in ctx if k != "context_meta") == sorted(f"L{k}" for k in range(stop_at))
    assert plan.to_run == [f"L{k}" for k in range(stop_at, N)]
    if executor is None:
        notes = "\n".join(getattr(run.error, "__notes__", []))
        assert f"{stop_at} of {N} steps done" in notes and f"{N - stop_at} left" in notes


CELL = """
from job_orchestra import Step, Context
ctx = Context()
class Load(Step):
    def run(self):
        return 2
class Train(Step):
    def run(self, x):
        raise ValueError("no convergence at " + str(x))
head = Train(Load(ctx=ctx), ctx=ctx)
"""


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    yield ip
    ip.reset(new_session=False)
    InteractiveShell.clear_instance()
    for name in ("ps1", "ps2"):
        if hasattr(sys, name):
            delattr(sys, name)


@pytest.mark.parametrize("executor", ["", "'threads'"])
def test_in_ipython_a_failing_step_shows_the_users_frames_and_hides_the_library(shell, executor):
    assert shell.run_cell(CELL).success
    with capture_output() as captured:
        result = shell.run_cell(f"head.materialize({executor})")
    assert isinstance(result.error_in_exec, ValueError)
    text = re.sub(r"\x1b\[[0-9;]*m", "", captured.stdout)
    frames = [line for line in text.splitlines() if line.startswith(("Cell In", "File "))]
    assert frames[0].startswith("Cell In") and "line 1" in frames[0]  # the cell that called materialize()
    assert frames[-1].startswith("Cell In") and "Train.run" in frames[-1]  # then the step's own code
    assert len(frames) == 2, text
    assert "skipping hidden" in text
    assert "scheduler.py" not in text and "executors.py" not in text and "concurrent" not in text
    assert "ValueError: no convergence at 2" in text and "step 'Train' (Train) failed" in text


class Fails(Step):
    def run(self):
        raise ValueError("broken on purpose")


@pytest.mark.parametrize("executor", [None, "threads"])
def test_the_command_line_prints_the_steps_frames_only(executor):
    with pytest.raises(ValueError) as info:
        Fails().materialize(executor)
    out = io.StringIO()
    print_user_traceback(info.value, out)
    text = out.getvalue()
    assert 'in run\n    raise ValueError("broken on purpose")' in text
    assert "job_orchestra" not in text.split("ValueError: broken")[0]
    assert "concurrent" not in text


def test_a_traceback_without_user_code_is_kept_whole():
    try:
        ExecutionPlan.of(object())  # type: ignore[arg-type]  # fails inside the library
    except Exception as exc:
        assert user_traceback(exc.__traceback__) is exc.__traceback__
    else:  # pragma: no cover
        pytest.fail("expected an error")
