"""Two displays never disagree silently: after a rebuild or a load, earlier live views follow the new
pipeline (held by the same variable, same step name) or say plainly that they are out of date."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

CELLS = [
    """from job_orchestra import Context, Step
from jupyter_ext import PipelineWidget, show
class Load(Step):
    def run(self): return 1
class Train(Step):
    def run(self, x): return x + 1
class Report(Step):
    def run(self, x): return f"score {x}"
def build(ctx):
    return Report(Train(Load(ctx=ctx), ctx=ctx), ctx=ctx)
ctx = Context()
head = build(ctx)
head.materialize()
head.execution_plan()""",
    "panel = PipelineWidget(head)\npanel",
    "head.dependency_graph()",
    "ctx = Context()\nhead = build(ctx)  # rebuilt: same names, new objects, nothing cached",
    "head.execution_plan()",
    "show(build(Context()))  # held by no variable",
    "import gc\ngc.collect()\nNone",
    "{'panel follows': panel.head is head}",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    path = tmp_path_factory.mktemp("follow")
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path)}}).execute()
    return nb.cells


def _data(cell):
    """The cell's last display (the first cell shows the progress bar of its run before its plan)."""
    return [o for o in cell.outputs if o["output_type"] in ("display_data", "execute_result")][-1]["data"]


def test_earlier_views_follow_the_rebuilt_pipeline(executed):
    old_plan, panel, old_graph, _, new_plan, *_ = executed
    expected = [" [ ] (>) Load", " [ ] (>) Train", " [ ] (H) Report"]
    assert _data(new_plan)["text/plain"].splitlines()[1:] == expected
    assert _data(old_plan)["text/plain"].splitlines()[1:] == expected  # not "0 to run" beside "3 to run"
    assert "3 to run on materialize()" in _data(old_plan)["text/html"]
    assert "[ ] (&gt;)" in _data(old_graph)["image/svg+xml"] or "[ ] (>)" in _data(old_graph)["image/svg+xml"]
    static = _data(panel)["text/html"]
    assert "3 to run on materialize()" in static and "Now showing the new pipeline of Report" in static
    assert _data(executed[-1])["text/plain"] == "{'panel follows': True}"


def test_a_view_whose_pipeline_is_gone_says_it_is_out_of_date(executed):
    gone = _data(executed[5])
    assert "Out of date: this view showed the pipeline of Report" in gone["text/plain"]
    assert 'class="jo-out-of-date"' in gone["text/html"] and "jo-plan-table" in gone["text/html"]
