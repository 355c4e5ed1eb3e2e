"""The legends of the HTML plan and the SVG graph: one vocabulary, readable borders, a margin around the legend."""

from __future__ import annotations

import re

import pytest

from job_orchestra import Context, Step
from job_orchestra.drawing import SVG_DOTS
from job_orchestra.plan import LEGEND
from jupyter_ext.graph_svg import legend_label, render_svg
from jupyter_ext.plan_html import render_plan
from jupyter_ext.theme import AVAILABILITY

pytest.importorskip("graphviz")

# job-orchestra 1.1's legend, as it printed it (the text plan must keep it byte for byte).
LEGEND_1_1 = (
    "Execution plan. Result availability: [*] available - [ ] n/a - [x] no context. "
    "Scheduled execution: (H) head - (>) scheduled run on materialize - ( ) no run required."
)


class Load(Step):
    def run(self):
        return 1


class Use(Step):
    def __init__(self, x: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.x = x

    def run(self, *xs):
        return xs


def pipeline(with_context: list[bool]) -> Step:
    """A chain of steps, each with or without a Context; the first one computed when it has one."""
    ctx = Context()
    step = Load(ctx=ctx if with_context[0] else None)
    if with_context[0]:
        step.materialize()
    for i, has in enumerate(with_context[1:]):
        step = Use(depends_on=[step], ctx=ctx if has else None, name_alias=f"use{i}")
    return step


def test_the_text_legend_is_1_1s():
    assert LEGEND == LEGEND_1_1
    assert str(pipeline([True, True]).execution_plan(show=False)).splitlines()[0] == LEGEND_1_1


@pytest.mark.parametrize("marker", ["[*]", "[ ]", "[x]", "[~]"])
def test_html_and_svg_legends_use_the_same_words(marker):
    words = f"{marker} {AVAILABILITY[marker].words}"
    plan = pipeline([True, False, True]).execution_plan(show=False)
    assert words in render_plan(plan).replace("&gt;", ">")
    assert words in legend_label()
    assert "n/a" not in render_plan(plan) and "n/a" not in legend_label()


@pytest.mark.parametrize("layout", [[True, False], [False, False, False], [True, True, False, True], [False]])
def test_dotted_borders_use_visible_dots_and_the_legend_has_a_margin(layout):
    head = pipeline(layout)
    plan = head.execution_plan(show=False)
    svg = render_svg(plan)
    assert svg is not None
    assert 'stroke-dasharray="1,5"' not in svg  # Graphviz's specks vanish on dark themes
    assert svg.count(SVG_DOTS) >= 1 + layout.count(False)  # the legend cell and every node without a Context
    assert SVG_DOTS in head.dependency_graph()._repr_mimebundle_()["image/svg+xml"]
    assert SVG_DOTS.encode() in head.dependency_graph().pipe(format="svg")
    width = float(re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) ', svg)[1])
    shift = float(re.search(r"translate\(([\d.]+) ", svg)[1])
    xs = [float(x) for points in re.findall(r'points="([^"]+)"', svg) for x in re.findall(r"(-?[\d.]+),", points)]
    assert max(xs) + shift <= width - 12  # nothing, the legend included, touches the right edge


@pytest.mark.parametrize("groups", [False, True])
def test_a_small_graph_with_its_legend_fits_a_notebook_output(groups):
    """The legend is drawn in two rows: in one it was 760pt wide and ran past JupyterLab's output area."""
    head = pipeline([True, True])
    if groups:
        head = Use(depends_on=[head, Use.map(x=range(2), name_alias="pair")], name_alias="both")
    svg = render_svg(head.execution_plan(show=False))
    width = float(re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) ', svg)[1])
    assert width <= 600
    assert ("mapped step \u00d7 items (stacked)" in svg.replace("&#215;", "\u00d7")) is groups
