"""MIME bundles for plans, graphs and steps, and ``show()``: display one, live or frozen.

The core objects reach this module through :mod:`jupyter_ext.renderer` (found by entry point, see
:mod:`job_orchestra.rendering`), so rich display needs no extension loading.
Every bundle has ``text/plain`` (the 1.1 text for a plan) next to its HTML or SVG.
"""

from __future__ import annotations

import html
from typing import Any, Literal

from job_orchestra import ExecutionPlan, Step
from job_orchestra.drawing import DependencyGraph

from . import runs
from .graph_svg import inline_svg, render_svg, why_no_svg
from .plan_html import render_plan

__all__ = [
    "TERMINAL_HINT",
    "Kind",
    "graph_bundle",
    "ipython_display",
    "plan_bundle",
    "render",
    "resolve",
    "show",
    "step_bundle",
]

Kind = Literal["plan", "graph", "step"]

#: The line under a graph shown as text (terminal IPython): where the picture is.
TERMINAL_HINT = (
    "The picture: graph.render('pipeline', format='svg') on this graph writes pipeline.svg, or from a shell "
    "python -m job_orchestra graph FILE.py:HEAD -o pipeline.svg (in Jupyter it is drawn here)."
)


def _plan_text(plan: ExecutionPlan) -> str:
    return str(plan).rstrip("\n")


def render(kind: Kind, plan: ExecutionPlan, statuses: dict[str, str] | None = None) -> dict[str, str]:
    """The MIME bundle of a plan, graph or step view of ``plan``, with run ``statuses`` (running/failed)."""
    if statuses is None:
        statuses = runs.statuses(plan)
    if kind == "plan":
        return {"text/html": render_plan(plan, statuses), "text/plain": _plan_text(plan)}
    svg = render_svg(plan, statuses)
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
        "text/html": f'<div class="jo-step">{drawing}{render_plan(plan, statuses)}</div>',
        "text/plain": f"{head!r}\n{_plan_text(plan)}",
    }


def plan_bundle(plan: ExecutionPlan) -> dict[str, str]:
    """Bundle of a plan as it was computed: HTML table (with the current run state) and the 1.1 text."""
    return render("plan", plan)


def is_customized(graph: DependencyGraph) -> bool:
    """True when ``graph`` is not the plain drawing of its plan (its DOT was changed, or statuses given)."""
    return graph.source != DependencyGraph.of(graph.plan.head, plan=graph.plan).source


def graph_bundle(graph: DependencyGraph) -> dict[str, str]:
    """Bundle of a dependency graph: SVG with a legend, or text plus a hint when it cannot be drawn.

    A graph changed by the user (``graph.attr(rankdir="TB")``, statuses, extra nodes) is drawn as it is.
    """
    if not is_customized(graph):
        return render("graph", graph.plan)
    return graph._repr_mimebundle_()


def step_bundle(step: Step) -> dict[str, str]:
    """Bundle of a step: the graph and plan of the pipeline it heads."""
    return render("step", ExecutionPlan.of(step))


def resolve(obj: Any) -> tuple[Kind, ExecutionPlan]:
    """Which kind of view ``obj`` gets, and its plan."""
    if isinstance(obj, ExecutionPlan):
        return "plan", obj
    if isinstance(obj, DependencyGraph):
        return "graph", obj.plan
    if isinstance(obj, Step):
        return "step", ExecutionPlan.of(obj)
    raise TypeError(
        f"show() takes a Step, an ExecutionPlan or a DependencyGraph, got {type(obj).__name__}. "
        "Call head.execution_plan() or head.dependency_graph() to get one."
    )


def show(obj: Any, live: bool = True) -> None:
    """Display a step, plan or graph; ``live=True`` keeps it updated as the pipeline runs or changes.

    Live views update in place (IPython ``display_id``) while steps run and after every cell. Use
    ``live=False`` to keep a picture of this moment, e.g. the state before a run in a tutorial.
    Returns None, so ``show(...)`` as a cell's last line adds nothing after the picture.
    """
    from IPython.display import display

    from . import live as live_views

    kind, plan = resolve(obj)
    statuses = runs.statuses(plan)
    if kind == "graph" and is_customized(obj):
        live = False  # redrawing would lose the user's changes
        bundle = graph_bundle(obj)
    else:
        bundle = render(kind, plan, statuses)
    if kind == "graph" and not live_views.in_kernel():  # a terminal shows the text: say how to get the picture
        bundle = {**bundle, "text/plain": bundle["text/plain"] + "\n" + TERMINAL_HINT}
    if live and live_views.in_kernel():
        live_views.activate()
        handle = display(bundle, raw=True, display_id=True)
        live_views.register_view(kind, plan, handle, statuses, bundle)
    else:
        display(bundle, raw=True)


def ipython_display(obj: Any) -> None:
    """``_ipython_display_`` of the core objects: a live view in a Jupyter kernel, else a plain display."""
    show(obj, live=True)
