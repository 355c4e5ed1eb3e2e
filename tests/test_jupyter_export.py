"""Static exports show the pictures: an executed example exported with nbconvert, with every <script> removed
(as GitHub does), still shows the plan table and the graph where the PipelineWidget was, and the finished
progress bar where materialize() ran."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)
CELL = re.compile(r'<div\s[^>]*class="jp-Cell jp-CodeCell\b')


def _cells_of(page: str) -> list[str]:
    """The page cut into its code cells (nbconvert's lab template: one jp-CodeCell div per code cell)."""
    starts = [m.start() for m in CELL.finditer(page)]
    return [page[a:b] for a, b in zip(starts, [*starts[1:], len(page)], strict=True)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    here = tmp_path_factory.mktemp("export")
    shutil.copy(EXAMPLES / "pasta_recipe.py", here)
    nb = nbformat.read(EXAMPLES / "03-widget-and-live-plans.ipynb", as_version=4)
    nb.metadata.pop("widgets", None)
    # store_widget_state=False: what JupyterLab saves by default (its "save widget state" setting is off).
    NotebookClient(
        nb, timeout=300, kernel_name="python3", store_widget_state=False, resources={"metadata": {"path": str(here)}}
    ).execute()
    body, _ = HTMLExporter().from_notebook_node(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    return code, _cells_of(SCRIPT.sub("", body))


def test_the_widget_cell_shows_the_plan_table_and_the_graph_without_scripts(exported):
    code, cells = exported
    assert len(cells) == len(code)
    (index,) = [i for i, c in enumerate(code) if "PipelineWidget(head)" in c.source]
    page = cells[index]
    assert '<div class="jo-static jo-static-widget">' in page
    static = page[page.index("jo-static-widget") :]
    assert "jo-plan-table" in static and "<svg" in static and "Pipeline Summary" in static
    assert "&lt;PipelineWidget of Summary&gt;" not in page  # not the bare text/plain any more


def test_every_materialize_cell_shows_the_finished_progress_bar(exported):
    code, cells = exported
    runs = [i for i, c in enumerate(code) if c.source.strip() == "head.materialize()"]
    assert runs
    for i in runs:
        assert 'class="jo-static jo-static-progress"' in cells[i], code[i].source
        assert re.search(r"materialize\(Summary\): (\d+)/\1 steps, done", cells[i])
        assert "&lt;job-orchestra progress" not in cells[i]


def test_the_saved_outputs_keep_the_widget_view_beside_the_fallback(exported):
    code, _ = exported
    (panel,) = [c for c in code if "PipelineWidget(head)" in c.source]
    (out,) = [o for o in panel.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert "jo-plan-table" in out["data"]["text/html"]  # a live kernel shows the widget, the rest the picture
