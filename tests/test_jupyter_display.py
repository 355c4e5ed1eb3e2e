"""The display layer's pictures: HTML plan, SVG graph, step view, value summaries, fallbacks."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum

import graphviz
import pytest

from job_orchestra import Context, ExecutionPlan, Step
from job_orchestra.plan import Availability, Schedule
from jupyter_ext import display, graph_svg, plan_html, summary


class Boil(Step):
    def run(self):
        return [1, 2, 3]


class Season(Step):
    def run(self, water):
        return {"salt": 2, "water": water}


class Serve(Step):
    def run(self, water, seasoned):
        return len(water) + seasoned.salt


def pasta(ctx=None):
    water = Boil(ctx=ctx)
    seasoned = Season(depends_on=water, ctx=ctx, name_alias="Salt")
    return Serve(depends_on=[water, seasoned], ctx=ctx)


def test_plan_bundle_keeps_the_11_text_and_lists_rows_in_execution_order():
    ctx = Context()
    head = pasta(ctx)
    ctx["Boil"] = [1]
    plan = head.execution_plan(show=False)
    bundle = plan._repr_mimebundle_()
    assert bundle["text/plain"] == str(plan).rstrip("\n")
    assert bundle["text/plain"].splitlines()[1:] == [" [*] ( ) Boil", " [ ] (>) Salt", " [ ] (H) Serve"]
    page = bundle["text/html"]
    assert page == plan._repr_html_()
    positions = [page.index(f'data-step="{n}"') for n in ("Boil", "Salt", "Serve")]
    assert positions == sorted(positions)
    assert "[*]" in page and "(&gt;)" in page and "(H)" in page
    assert "2 to run on materialize()" in page and "1 cached" in page
    assert "Legend:" in page


def test_class_column_only_when_a_step_is_aliased():
    aliased = plan_html.render_plan(ExecutionPlan.of(pasta()))
    assert ">Class</th>" in aliased and ">Season</td>" in aliased
    plain = plan_html.render_plan(ExecutionPlan.of(Boil()))
    assert ">Class</th>" not in plain


def test_cached_values_are_summarized_and_durations_shown_after_a_tracked_run():
    from jupyter_ext.runs import TRACKER

    ctx = Context()
    head = pasta(ctx)
    head.materialize(callbacks=TRACKER)
    page = plan_html.render_plan(ExecutionPlan.of(head))
    assert "list of 3" in page
    assert "AttrDict (2 keys: salt, water)" in page
    assert "int 5" in page
    assert len(re.findall(r'class="jo-dur">[\d.]+ (µs|ms|s)<', page)) == 3


def test_summaries_of_common_values():
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    assert summary.describe_value(np.zeros((3, 4))) == "ndarray 3x4 float64, 96 B"
    frame = pd.DataFrame({"a": range(5), "b": [0.5] * 5})
    assert summary.describe_value(frame).startswith("DataFrame 5x2, ")
    assert summary.describe_value("abc") == "str, 3 chars"
    assert summary.describe_value({}) == "dict (empty)"
    assert summary.describe_value(object()) == "object"
    assert summary.format_seconds(0.0123) == "12 ms"
    assert summary.format_seconds(125) == "2 min 05 s"
    assert summary.format_bytes(1536) == "1.5 kB"


def test_a_snapshot_entry_is_described_without_being_loaded(tmp_path):
    ctx = Context()
    head = pasta(ctx)
    head.materialize()
    ctx.store(tmp_path / "snap")
    loaded = Context.load(tmp_path / "snap")
    Serve_again = pasta(loaded)
    page = plan_html.render_plan(ExecutionPlan.of(Serve_again))
    assert "on disk, not loaded" in page
    assert not loaded.is_loaded("Boil")


class FutureAvailability(StrEnum):
    STALE = "[~]"
    ODD = "[!]"  # a marker the display layer does not know ([?] is now "cannot tell")


@dataclass(frozen=True)
class RowWithReason:
    name: str
    step_class: str
    availability: object
    schedule: Schedule
    reason: str | None = None

    @property
    def runs(self):
        return self.schedule is not Schedule.SKIP


def test_unknown_availability_values_still_show_their_marker_and_reason():
    head = pasta()
    plan = ExecutionPlan.of(head)
    rows = [
        RowWithReason("Boil", "Boil", FutureAvailability.STALE, Schedule.RUN, reason="code of Boil.run changed"),
        RowWithReason("Salt", "Season", FutureAvailability.ODD, Schedule.RUN),
        RowWithReason("Serve", "Serve", Availability.MISSING, Schedule.HEAD),
    ]
    odd = ExecutionPlan(head, plan.graph, rows)
    page = plan_html.render_plan(odd)
    assert "[~]" in page and "stale" in page
    assert "[!]" in page and "odd" in page
    assert "code of Boil.run changed" in page


def test_run_statuses_show_in_the_table_and_the_drawing():
    plan = ExecutionPlan.of(pasta())
    statuses = {"Boil": "failed", "Salt": "running"}
    page = plan_html.render_plan(plan, statuses)
    assert "running: Salt" in page and "failed: Boil" in page
    svg = graph_svg.render_svg(plan, statuses)
    assert "[x] (&gt;) running" in svg and "[x] (&gt;) failed" in svg
    assert 'fill="#ffe08a"' in svg and 'fill="#f5a3a3"' in svg  # running and failed fills


def test_graph_bundle_is_svg_with_a_legend_and_step_bundle_has_graph_and_plan():
    head = pasta()
    bundle = display.graph_bundle(head.dependency_graph())
    svg = bundle["image/svg+xml"]
    assert svg.lstrip().startswith("<?xml") and 'id="step&#45;Salt"' in svg
    for words in ("(H) head", "[*] cached", "( ) no run needed", "running", "failed", "[x] no context (dotted)"):
        assert words.replace(">", "&gt;") in svg
    assert bundle["text/plain"].startswith("Dependency graph of Serve (3 steps)")
    step = head._repr_mimebundle_()
    assert "<svg" in step["text/html"] and "<?xml" not in step["text/html"]
    assert 'class="jo-plan-table"' in step["text/html"]
    assert step["text/plain"].startswith("<Serve depends_on=[Boil, Salt]>")


def test_without_dot_the_displays_fall_back_to_text_and_say_how_to_install(monkeypatch):
    def no_dot(*args, **kwargs):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Digraph, "pipe", no_dot)
    head = pasta()
    bundle = display.graph_bundle(head.dependency_graph())
    assert set(bundle) == {"text/plain"}
    assert "apt-get install graphviz" in bundle["text/plain"]
    assert "apt-get install graphviz" in head._repr_mimebundle_()["text/html"]


def test_large_plans_are_shortened_and_not_drawn():
    class Link(Step):
        def run(self, *inputs):
            return 1

    head = Link(name_alias="s0")
    for i in range(1, 500):
        head = Link(depends_on=head, name_alias=f"s{i}")
    plan = ExecutionPlan.of(head)
    page = plan_html.render_plan(plan)
    assert page.count("<tr data-step=") == plan_html.MAX_ROWS
    assert "300 more steps" in page
    assert graph_svg.render_svg(plan) is None
    assert "drawings stop at" in display.render("step", plan)["text/html"]


def test_in_ipython_a_plan_is_displayed_once_as_html():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    try:
        shell.user_ns["head"] = pasta()
        with capture_output() as captured:
            shell.run_cell("head.execution_plan()")
    finally:  # later tests must not think they run inside IPython (a singleton, and it sets sys.ps1)
        InteractiveShell.clear_instance()
        for name in ("ps1", "ps2"):
            if hasattr(sys, name):
                delattr(sys, name)
    assert len(captured.outputs) == 1
    assert "jo-plan-table" in captured.outputs[0].data["text/html"]
    assert "Execution plan." not in captured.stdout  # not printed as well (the prompt may be)


def test_the_core_does_not_import_ipython_or_the_display_layer():
    code = (
        "import sys, job_orchestra\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets', 'jupyter_ext') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_show_refuses_other_objects_with_a_hint():
    with pytest.raises(TypeError, match="execution_plan"):
        display.show(42)


def test_a_customized_graph_is_drawn_as_the_user_changed_it():
    graph = pasta().dependency_graph()
    assert not display.is_customized(graph)
    graph.attr(rankdir="TB")
    assert display.is_customized(graph)
    svg = display.graph_bundle(graph)["image/svg+xml"]
    assert "runs on materialize()" not in svg  # no legend added: the user's drawing as it is
    assert 'id="step&#45;Salt"' in svg


def test_the_graph_legend_follows_the_node_styles_of_the_core(monkeypatch):
    from job_orchestra import drawing

    monkeypatch.setitem(drawing.NODE_STYLES, "stale", {"fillcolor": "#f9d29d", "color": "#8a5a00"})
    monkeypatch.setitem(drawing.NODE_STYLES, "queued", {"fillcolor": "#eeeeee", "color": "#777777"})
    label = graph_svg.legend_label()
    assert "[~] stale" in label and ">queued<" in label
    assert label.index("no run needed") < label.index("[~] stale") < label.index("running")
