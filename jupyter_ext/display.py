"""``show()``: display a plan, graph or step, live or frozen (the bundles come from :mod:`.bundles`).

The core objects reach this module through :mod:`jupyter_ext.renderer` (found by entry point, see
:mod:`job_orchestra.rendering`), so rich display needs no extension loading.
"""

from __future__ import annotations

from typing import Any

from job_orchestra import ExecutionPlan, Step
from job_orchestra.drawing import DependencyGraph
from job_orchestra.group_view import Expand

from . import live as live_views
from . import runs
from .bundles import Kind, graph_bundle, is_customized, plan_bundle, render, step_bundle

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

#: The line under a graph shown as text (terminal IPython): where the picture is.
TERMINAL_HINT = (
    "The picture: graph.render('pipeline', format='svg') on this graph writes pipeline.svg, or from a shell "
    "python -m job_orchestra graph FILE.py:HEAD -o pipeline.svg (in Jupyter it is drawn here)."
)


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


def show(obj: Any, live: bool = True, expand: Expand = None) -> None:
    """Display a step, plan or graph; ``live=True`` keeps it updated as the pipeline runs or changes.

    Live views update in place (IPython ``display_id``) while steps run and after every cell. Use
    ``live=False`` to keep a picture of this moment, e.g. the state before a run in a tutorial.
    Returns None, so ``show(...)`` as a cell's last line adds nothing after the picture. ``expand`` shows
    mapped steps item by item: None (groups of at most 12 items), True, False, or a list of group names.
    """
    from IPython.display import display  # only called inside IPython

    kind, plan = resolve(obj)
    statuses = runs.statuses(plan)
    if expand is None and kind == "graph":
        expand = getattr(obj, "expand", None)  # head.dependency_graph(expand=...)
    if kind == "graph" and is_customized(obj):
        live = False  # redrawing would lose the user's changes
        bundle = graph_bundle(obj)
    else:
        bundle = render(kind, plan, statuses, expand=expand)
    if kind == "graph" and not live_views.in_kernel():  # a terminal shows the text: say how to get the picture
        bundle = {**bundle, "text/plain": bundle["text/plain"] + "\n" + TERMINAL_HINT}
    if live and live_views.in_kernel():
        live_views.activate()
        handle = display(bundle, raw=True, display_id=True)
        live_views.register_view(kind, plan, handle, statuses, bundle, expand=expand)
    else:
        display(bundle, raw=True)


def ipython_display(obj: Any) -> None:
    """``_ipython_display_`` of the core objects: a live view in a Jupyter kernel, else a plain display."""
    show(obj, live=True)
