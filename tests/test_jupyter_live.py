"""Live views: displays that follow runs and later cells; the progress bar in a real kernel (nbclient)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from job_orchestra import Context, ExecutionPlan, Step
from jupyter_ext import live, runs


class Handle:
    """Stands in for IPython's DisplayHandle: records every update."""

    def __init__(self):
        self.updates = []

    def update(self, bundle, raw=False):
        assert raw
        self.updates.append(bundle)


class First(Step):
    def run(self):
        return 1


class Then(Step):
    def run(self, x):
        return x + 1


class Broken(Step):
    def run(self, x):
        raise ValueError("no salt left")


@pytest.fixture
def tracked(monkeypatch):
    monkeypatch.setattr(live, "MIN_INTERVAL", 0.0)  # every event redraws: the test sees each state
    monkeypatch.setattr(live, "COST_FACTOR", 0)
    live.attach_observer()
    yield
    live.deactivate()


def test_a_live_plan_follows_a_run_and_later_changes(tracked):
    ctx = Context()
    head = Then(First(ctx=ctx), ctx=ctx)
    handle = Handle()
    plan = ExecutionPlan.of(head)
    live.register_view("plan", plan, handle, runs.statuses(plan))

    live.refresh_all()
    assert handle.updates == []  # nothing changed: nothing sent

    head.materialize(callbacks=runs.TRACKER)
    pages = [u["text/html"] for u in handle.updates]
    assert any("running: Then" in p for p in pages), "the view showed the running step"
    assert "running" not in pages[-1].split("Legend:")[0]
    assert "0 to run on materialize()" in pages[-1]
    assert handle.updates[-1]["text/plain"].splitlines()[1:] == [" [*] ( ) First", " [*] (H) Then"]

    ctx.invalidate("First")
    live.refresh_all()  # what the post_run_cell hook does after a cell
    assert handle.updates[-1]["text/plain"].splitlines()[1:] == [" [ ] ( ) First", " [*] (H) Then"]


def test_a_failed_step_is_marked_until_it_runs_again(tracked):
    ctx = Context()
    head = Broken(First(ctx=ctx), ctx=ctx)
    handle = Handle()
    plan = ExecutionPlan.of(head)
    live.register_view("graph", plan, handle, runs.statuses(plan))
    with pytest.raises(ValueError):
        head.materialize(callbacks=runs.TRACKER)
    svg = handle.updates[-1]["image/svg+xml"]
    assert "[ ] (H) failed" in svg
    assert runs.statuses(ExecutionPlan.of(head)) == {"Broken": "failed"}
    assert runs.last_failure(head) == "ValueError: no salt left"

    head.run = lambda x: x * 10  # fixed: the next run clears the mark
    assert head.materialize(callbacks=runs.TRACKER) == 10
    assert runs.statuses(ExecutionPlan.of(head)) == {}


def test_views_of_dropped_pipelines_are_forgotten(tracked):
    head = Then(First())
    live.register_view("plan", ExecutionPlan.of(head), Handle(), {})
    del head
    live.refresh_all()
    assert live.views() == []


NOTEBOOK = [
    """from job_orchestra import Step, Context
ctx = Context()
class First(Step):
    def run(self): return 20
class Then(Step):
    def run(self, x): return x + 1
head = Then(First(ctx=ctx), ctx=ctx)
head.execution_plan()""",
    "head.dependency_graph()",
    "head.materialize()",
    "ctx.invalidate('Then')",
]


def _texts(cell, mime):
    return [o["data"][mime] for o in cell.outputs if o.get("output_type") == "display_data" and mime in o["data"]]


def test_in_a_kernel_displays_keep_the_final_state_and_materialize_shows_progress(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in NOTEBOOK])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    plan_cell, graph_cell, run_cell, last_cell = nb.cells
    (plan_text,) = _texts(plan_cell, "text/plain")
    # Shown before the run, updated in place by the two later cells:
    assert plan_text.splitlines()[1:] == [" [*] ( ) First", " [ ] (H) Then"]
    assert "1 to run on materialize()" in _texts(plan_cell, "text/html")[0]
    (svg,) = _texts(graph_cell, "image/svg+xml")
    assert "[*] ( )" in svg and "[ ] (H)" in svg

    (progress,) = [o for o in run_cell.outputs if o["output_type"] == "display_data"]
    assert progress["data"]["text/plain"] == "<job-orchestra progress of materialize(Then)>"
    # The bar is HTML updated in place (no widget: see jupyter_ext.progress), in its final state once the run
    # is over: exports (nbconvert, GitHub) show the finished bar.
    assert "application/vnd.jupyter.widget-view+json" not in progress["data"]
    final = progress["data"]["text/html"]
    assert final.startswith('<div class="jo-static jo-static-progress">') and "2/2 steps, done" in final
    assert "width:100%" in final and "<script" not in final
    (result,) = [o for o in run_cell.outputs if o["output_type"] == "execute_result"]
    assert result["data"]["text/plain"] == "21"
    assert last_cell.outputs[0]["data"]["text/plain"] == "['Then']"


def test_a_throttled_refresh_is_followed_by_a_trailing_one(monkeypatch):
    """A step that starts right after another one is still shown running, even though events are throttled."""
    import time

    monkeypatch.setattr(live, "MIN_INTERVAL", 0.2)
    ctx = Context()
    head = Then(First(ctx=ctx), ctx=ctx)
    handle = Handle()
    plan = ExecutionPlan.of(head)
    live.register_view("plan", plan, handle, runs.statuses(plan))
    try:
        live.refresh_all(force=True)  # starts the throttling window
        ctx["First"] = 1
        live.refresh_all(force=False)  # inside the window: deferred, not dropped
        deadline = time.monotonic() + 10
        while not handle.updates and time.monotonic() < deadline:
            time.sleep(0.02)
        assert handle.updates, "the deferred refresh never came"
        assert handle.updates[-1]["text/plain"].splitlines()[1] == " [*] ( ) First"
    finally:
        live.deactivate()


def test_a_first_materialize_in_a_kernel_shows_progress_without_any_set_up(tmp_path):
    """Nothing displayed, nothing imported but the core: materialize() still brings the progress bar."""
    source = "from job_orchestra import Step\nclass A(Step):\n    def run(self):\n        return 1\nA().materialize()"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    kinds = [(o["output_type"], o.get("data", {}).get("text/plain")) for o in nb.cells[0].outputs]
    assert kinds == [("display_data", "<job-orchestra progress of materialize(A)>"), ("execute_result", "1")]
