"""Details seen in the screenshots: run times kept with the results, the widget's messages, progress labels,
the legend and [x] borders in the dark theme."""

from __future__ import annotations

import re

import dill
import pytest

from job_orchestra import Context, ExecutionPlan, Step
from jupyter_ext import PipelineWidget, live, plan_html, runs
from jupyter_ext.graph_svg import legend_label
from jupyter_ext.progress import RunProgress


class Load(Step):
    def run(self):
        return list(range(10))


class Clean(Step):
    def run(self, rows):
        return [r for r in rows if r % 2 == 0]


class Report(Step):
    def run(self, rows):
        return f"{len(rows)} rows"


def build(ctx):
    return Report(Clean(Load(ctx=ctx), ctx=ctx), ctx=ctx)


@pytest.fixture(autouse=True)
def _stop_live_views():
    yield
    live.deactivate()


def durations(head) -> list[str]:
    page = plan_html.render_plan(ExecutionPlan.of(head))
    return re.findall(r'<span class="jo-dur">([^<]*)</span>', page)


@pytest.mark.parametrize("how", ["rebuilt", "snapshot", "dill", "copy"])
def test_last_run_stays_with_the_cached_result(tmp_path, how):
    ctx = Context()
    build(ctx).materialize()  # no tracker registered: the times come from the Context
    if how == "snapshot":
        ctx.store(tmp_path / "snap")
        ctx = Context.load(tmp_path / "snap")
    elif how == "dill":
        ctx = dill.loads(dill.dumps(ctx))
    elif how == "copy":
        ctx = ctx.copy()
    head = build(ctx)  # new step objects, same names: what a re-run cell or %orchestra load gives
    shown = durations(head)
    assert len(shown) == 3 and all(re.fullmatch(r"[\d.]+ (µs|ms|s)", s) for s in shown), shown
    assert all(isinstance(ctx.last_duration(n), float) for n in ("Load", "Clean", "Report"))

    ctx["Clean"] = [0, 2]  # a value put in by hand was not computed by a run: no time for it
    assert durations(head)[1] == "" and ctx.last_duration("Clean") is None
    del ctx["Load"]
    assert ctx.last_duration("Load") is None


def test_invalidate_clears_the_old_result_and_the_store_message_counts_results(tmp_path):
    ctx = Context()
    head = build(ctx)
    panel = PipelineWidget(head)
    panel.materialize()
    assert panel.output.outputs
    panel.invalidate(["Clean"])
    assert panel.output.outputs == () and panel.result is None
    panel.materialize()
    assert panel.store(str(tmp_path / "snap"))
    assert "snapshot of 3 results" in panel.status.value  # not 4: the Context's own metadata is no result


def test_the_progress_label_names_a_step_started_right_after_another():
    plan = ExecutionPlan.of(build(Context()))
    run = runs.Run(plan, total=3)
    bar = RunProgress(run)
    try:
        run.running.append("Load")
        bar.update(run, force=True)
        run.running.remove("Load")
        run.done = 1
        bar.update(run, force=True)  # between two steps: nothing runs
        run.running.append("Clean")
        bar.update(run)  # unforced, inside the throttling window, yet the new step is named at once
        assert "running <b>Clean</b>" in bar.html
    finally:
        run.finished = True
        bar.update(run, force=True)


def test_the_no_context_legend_cell_is_not_a_white_box():
    label = legend_label()
    cell = re.search(r'<TD BGCOLOR="([^"]+)" COLOR="([^"]+)" STYLE="dotted">', label)
    assert cell is not None
    assert cell.group(1).lower() not in ("#ffffff", "white", "#fff")
