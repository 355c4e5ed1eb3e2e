"""PipelineWidget: buttons that materialize, invalidate with dependents and store snapshots."""

from __future__ import annotations

import pytest

from job_orchestra import Callback, Context, Step
from jupyter_ext import PipelineWidget, live

# Whether Report fails. Kept out of the step classes: a run() that changes its own class would count as a
# code change once results carry fingerprints.
FAIL = {"report": False}


class Load(Step):
    def run(self):
        return list(range(10))


class Clean(Step):
    def run(self, rows):
        return [r for r in rows if r % 2 == 0]


class Report(Step):
    def run(self, rows):
        if FAIL["report"]:
            raise RuntimeError("report template missing")
        return f"{len(rows)} rows"


@pytest.fixture(autouse=True)
def _stop_live_views():
    yield
    live.deactivate()  # a widget starts live views; later tests should not see its global callback


@pytest.fixture
def pipeline():
    FAIL["report"] = False
    ctx = Context()
    return ctx, Report(Clean(Load(ctx=ctx), ctx=ctx), ctx=ctx)


def test_materialize_button_runs_and_the_panel_updates(pipeline):
    ctx, head = pipeline
    panel = PipelineWidget(head)
    assert "3 to run on materialize()" in panel.plan_view.value
    assert panel.steps_select.options == ("Load", "Clean", "Report")
    panel.materialize_button.click()
    assert panel.result == "5 rows" and panel.error is None
    assert [o["text"] for o in panel.output.outputs] == ["'5 rows'\n"]
    assert "0 to run on materialize()" in panel.plan_view.value
    assert "Materialized Report" in panel.status.value
    assert set(ctx) >= {"Load", "Clean", "Report"}


def test_a_failure_is_shown_and_the_step_highlighted(pipeline):
    ctx, head = pipeline
    FAIL["report"] = True
    panel = PipelineWidget(head)
    panel.materialize_button.click()
    assert isinstance(panel.error, RuntimeError)
    (shown,) = panel.output.outputs
    assert shown["name"] == "stderr" and "RuntimeError: report template missing" in shown["text"]
    assert "step 'Report' (Report) failed" in shown["text"]  # the core's note names the step
    assert "Failed in step Report" in panel.status.value and "report template missing" in panel.status.value
    assert "[ ] (H) failed" in panel.graph_view.value
    assert "failed: Report" in panel.plan_view.value
    assert "Load" in ctx and "Clean" in ctx  # kept: the next run only runs Report
    FAIL["report"] = False
    ran = []
    with Callback(step_start=ran.append):
        panel.materialize_button.click()
    assert panel.result == "5 rows" and ran == ["Report"]
    assert "failed: Report" not in panel.plan_view.value
    assert "[*] (H) failed" not in panel.graph_view.value


def test_invalidate_drops_the_selection_and_what_depends_on_it(pipeline):
    ctx, head = pipeline
    panel = PipelineWidget(head)
    panel.materialize()
    panel.steps_select.value = ("Clean",)
    panel.invalidate_button.click()
    assert "Load" in ctx and "Clean" not in ctx and "Report" not in ctx
    assert "2 to run on materialize()" in panel.plan_view.value
    assert "Dropped the results of Clean, Report" in panel.status.value
    panel.steps_select.value = ()
    panel.invalidate_button.click()
    assert "Select the steps" in panel.status.value


def test_store_snapshot_writes_the_context_with_the_pipeline(pipeline, tmp_path):
    _, head = pipeline
    panel = PipelineWidget(head)
    panel.materialize()
    target = tmp_path / "run-1"
    panel.path_text.value = str(target)
    panel.store_button.click()
    assert "Stored a snapshot" in panel.status.value
    loaded = Context.load(target)
    assert loaded["Report"] == "5 rows"
    assert str(loaded.pipeline) == "Report"
    panel.store_button.click()  # the path exists now
    assert "Snapshot not written" in panel.status.value and "exists" in panel.status.value.lower()
    panel.path_text.value = "  "
    panel.store_button.click()
    assert "give a path" in panel.status.value


def test_the_widget_follows_changes_made_elsewhere(pipeline):
    _, head = pipeline
    panel = PipelineWidget(head)
    head.materialize()
    live.refresh_all(force=True)  # what runs after each cell in a kernel
    assert "0 to run on materialize()" in panel.plan_view.value


def test_widget_needs_a_step():
    with pytest.raises(TypeError, match="head Step"):
        PipelineWidget("Report")


def test_a_run_started_elsewhere_shows_its_progress_in_the_panel(pipeline):
    from jupyter_ext.runs import TRACKER

    _, head = pipeline
    panel = PipelineWidget(head)
    twin = Report(Clean(Load()))  # another pipeline with the same head name: not this panel's business
    twin.materialize(callbacks=TRACKER)
    assert "materialize(" not in panel.status.value
    live.attach_observer()
    head.materialize(callbacks=TRACKER)
    assert "materialize(Report): 3/3 steps, done" in panel.status.value
