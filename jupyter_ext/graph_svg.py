"""The dependency graph as SVG: the core's :class:`~job_orchestra.drawing.DependencyGraph` plus a legend.

The legend is drawn inside the SVG (a Graphviz HTML-like table under the graph), so the picture explains
itself wherever it ends up: JupyterLab, VS Code, nbconvert HTML, GitHub, a saved file. Every legend cell is
filled with dark text, like the nodes, so it reads on light and dark backgrounds.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

import graphviz

from job_orchestra.drawing import INSTALL_HINT, NO_CONTEXT_BORDER, NODE_STYLES, DependencyGraph
from job_orchestra.group_view import Expand

from .theme import AVAILABILITY, RUN_STATE, SCHEDULE, TEXT, Badge

#: The legend cell of the dotted [x] border: the [x] badge's colours (a white box glared on dark themes).
NO_CONTEXT_FILL = AVAILABILITY["[x]"].fill

if TYPE_CHECKING:
    from job_orchestra import ExecutionPlan

__all__ = ["MAX_NODES", "build_graph", "inline_svg", "legend_label", "render_svg"]

#: Larger pipelines are not laid out in displays (``dot`` would take minutes); the plan still shows.
MAX_NODES = 400


def _words(badge: Badge, note: str = "") -> str:
    return f"{badge.marker} {badge.words}{note}"


# The legend uses the HTML plan's words (one vocabulary: "[ ] not computed" in both, "n/a" only in the
# 1.1 text); the graph writes "running" and "failed" in the node, so its legend does too.
_LEGEND = (
    ("head", _words(SCHEDULE["(H)"])),
    ("scheduled", _words(SCHEDULE["(>)"])),
    ("cached", _words(AVAILABILITY["[*]"])),
    ("missing", _words(AVAILABILITY["[ ]"])),
    ("skipped", _words(SCHEDULE["( )"])),
    ("running", RUN_STATE["running"].words),
    ("failed", RUN_STATE["failed"].words),
    ("no context", _words(AVAILABILITY["[x]"], " (dotted)")),
)
# Words for statuses the core may add to NODE_STYLES later (a status without words shows its name).
_EXTRA_WORDS = {"stale": _words(AVAILABILITY["[~]"], " (dashed)")}
#: Legend cells that explain a marker rather than a node status: the colours of the plan's badge.
_MARKER_CELLS = {"missing": AVAILABILITY["[ ]"], "no context": AVAILABILITY["[x]"]}


#: The legend cell of a mapped step (``Step.map``), shown when the drawing has one.
GROUP_WORDS = "mapped step \u00d7 items (stacked)"


def _cell(fill: str, border: str, words: str, extra: str = "") -> str:
    return (
        f'<TD BGCOLOR="{fill}" COLOR="{border}"{extra}>'
        f'<FONT COLOR="{TEXT}" POINT-SIZE="9">{html.escape(words)}</FONT></TD>'
    )


def _row(cells: list[str]) -> str:
    inner = '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="4" CELLPADDING="3"><TR>' + "".join(cells)
    return f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{inner}</TR></TABLE></TD></TR>'


_FIRST_ROW = frozenset({"head", "scheduled", "cached", "missing"})


def legend_label(groups: bool = False) -> str:
    """A Graphviz HTML-like label: one filled cell per node status, with its marker, in two short rows (a
    single row was wider than most graphs and ran to the output's edge); ``groups`` adds the mapped step."""
    known = {status for status, _ in _LEGEND}
    extra = [(status, _EXTRA_WORDS.get(status, status)) for status in NODE_STYLES if status not in known]
    rows: list[list[str]] = [[], []]
    for status, words in (*_LEGEND[:5], *extra, *_LEGEND[5:]):
        dotted = ""
        if status in _MARKER_CELLS:
            fill, border = _MARKER_CELLS[status].fill, _MARKER_CELLS[status].border
            if status == "no context":
                border, dotted = NO_CONTEXT_BORDER, ' STYLE="dotted"'
        else:
            fill, border = NODE_STYLES[status]["fillcolor"], NODE_STYLES[status]["color"]
        # Rows of about equal width: Graphviz stretches the cells of the shorter one to the longer's width.
        rows[status not in _FIRST_ROW].append(_cell(fill, border, words, dotted))
    if groups:
        rows[0].append(_cell(SCHEDULE["( )"].fill, SCHEDULE["( )"].border, GROUP_WORDS))
    return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">' + "".join(map(_row, rows)) + "</TABLE>>"


def build_graph(
    plan: ExecutionPlan, statuses: dict[str, str] | None = None, *, expand: Expand = None
) -> DependencyGraph:
    """The core drawing of ``plan`` with run statuses and the legend under it (groups as in ``expand``)."""
    graph = DependencyGraph.of(plan.head, plan=plan, statuses=statuses, expand=expand)
    graph.attr(label=legend_label(groups=bool(getattr(plan, "groups", None))), labelloc="b", labeljust="l")
    return graph


def _too_large(plan: ExecutionPlan) -> bool:
    """True when even with every group collapsed the drawing would have more than MAX_NODES nodes."""
    if len(plan) <= MAX_NODES:
        return False
    groups = getattr(plan, "groups", None) or {}
    return len(plan) - sum(len(g.items) for g in groups.values()) > MAX_NODES


def render_svg(plan: ExecutionPlan, statuses: dict[str, str] | None = None, *, expand: Expand = None) -> str | None:
    """The SVG text of the graph, or None when Graphviz's ``dot`` is missing or the graph is too large.

    A mapped step is one stacked node unless ``expand`` (see :func:`job_orchestra.group_view.expanded_groups`)
    opens it; a drawing that would pass :data:`MAX_NODES` nodes collapses every group, or is not drawn."""
    if _too_large(plan):
        return None
    graph = build_graph(plan, statuses, expand=expand)
    if graph.node_count > MAX_NODES:
        graph = build_graph(plan, statuses, expand=False)
    try:
        return graph.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        return None


def why_no_svg(plan: ExecutionPlan) -> str:
    """The line shown instead of a drawing."""
    if _too_large(plan):
        return f"The graph of {plan.graph.head} has {len(plan):,} steps; drawings stop at {MAX_NODES}."
    return INSTALL_HINT


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_SIZE = re.compile(r'<svg width="(\d+(?:\.\d+)?)pt" height="(\d+(?:\.\d+)?)pt"')


def inline_svg(svg: str) -> str:
    """SVG text ready to sit inside HTML: no XML prolog or doctype, and it shrinks to fit narrow outputs."""
    svg = _PROLOG.sub("", svg, count=1)
    return _SIZE.sub(
        lambda m: f'<svg width="{m[1]}pt" height="{m[2]}pt" style="max-width:100%;height:auto"', svg, count=1
    )
