"""MIME bundles of plans, graphs and steps: what a view shows, live or frozen.

Both :mod:`jupyter_ext.display` (``show()``) and :mod:`jupyter_ext.live` (views that update in place)
build their pictures here. Every bundle has ``text/plain`` (the 1.1 text for a plan) next to its HTML or SVG.
"""

from __future__ import annotations

import html
from typing import Literal

from job_orchestra import ExecutionPlan, Step
from job_orchestra.drawing import DependencyGraph
from job_orchestra.group_view import Expand

from . import runs
from .graph_svg import inline_svg, render_svg, why_no_svg
from .plan_html import render_plan

__all__ = ["Kind", "graph_bundle", "is_customized", "plan_bundle", "render", "step_bundle"]

Kind = Literal["plan", "graph", "step"]


def _plan_text(plan: ExecutionPlan) -> str:
    return str(plan).rstrip("\n")


def render(
    kind: Kind, plan: ExecutionPlan, statuses: dict[str, str] | None = None, *, expand: Expand = None
) -> dict[str, str]:
    """The MIME bundle of a plan, graph or step view of ``plan``, with run ``statuses`` (running/failed);
    ``expand`` says which mapped steps are shown item by item (None: the small ones)."""
    if statuses is None:
        statuses = runs.statuses(plan)
    if kind == "plan":
        return {"text/html": render_plan(plan, statuses, expand=expand), "text/plain": _plan_text(plan)}
    svg = render_svg(plan, statuses, expand=expand)
    if kind == "graph":
        text = f"Dependency graph of {plan.graph.head} ({len(plan)} steps)\n{_plan_text(plan)}"
        if svg is None:
            return {"text/plain": f"{text}\n{why_no_svg(plan)}"}
        return {"image/svg+xml": svg, "text/plain": text}
    head = plan.graph.steps[plan.graph.head]
    if svg is None:
        drawing = f'<p style="opacity:0.75">{html.escape(why_no_svg(plan))}</p>'
    else:
        drawing = f'<div class="jo-graph" style="margin-bottom:6px">{inline_svg(svg)}</div>'
    return {
        "text/html": f'<div class="jo-step">{drawing}{render_plan(plan, statuses, expand=expand)}</div>',
        "text/plain": f"{head!r}\n{_plan_text(plan)}",
    }


def plan_bundle(plan: ExecutionPlan) -> dict[str, str]:
    """Bundle of a plan as it was computed: HTML table (with the current run state) and the 1.1 text."""
    return render("plan", plan)


def is_customized(graph: DependencyGraph) -> bool:
    """True when ``graph`` is not the plain drawing of its plan (its DOT was changed, or statuses given)."""
    expand = getattr(graph, "expand", None)
    return graph.source != DependencyGraph.of(graph.plan.head, plan=graph.plan, expand=expand).source


def graph_bundle(graph: DependencyGraph) -> dict[str, str]:
    """Bundle of a dependency graph: SVG with a legend, or text plus a hint when it cannot be drawn.

    A graph changed by the user (``graph.attr(rankdir="TB")``, statuses, extra nodes) is drawn as it is.
    """
    if not is_customized(graph):
        return render("graph", graph.plan, expand=getattr(graph, "expand", None))
    return graph._repr_mimebundle_()


def step_bundle(step: Step) -> dict[str, str]:
    """Bundle of a step: the graph and plan of the pipeline it heads."""
    return render("step", ExecutionPlan.of(step))
