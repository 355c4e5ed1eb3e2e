"""``DependencyGraph``: the pipeline drawn with Graphviz, styled by each step's plan status."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import graphviz

from . import rendering
from .group_view import Expand, counts_text, expanded_groups, group_status, item_groups
from .plan import Availability, ExecutionPlan, PlanRow, Schedule

if TYPE_CHECKING:
    from .map_plan import GroupSummary
    from .step import Step

__all__ = ["INSTALL_HINT", "NODE_STYLES", "NO_CONTEXT_BORDER", "SVG_DOTS", "DependencyGraph"]

INSTALL_HINT = (
    "Graphviz's 'dot' program was not found, so the graph is shown as text. Install it with "
    "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) or "
    "'conda install -c conda-forge graphviz'."
)

# Filled nodes with dark text and mid-grey edges read on light and dark backgrounds alike; the shape
# and border carry the status too, so colour is never the only cue.
NODE_STYLES: dict[str, dict[str, str]] = {
    "head": {"fillcolor": "#f6c177", "color": "#8a5a00", "penwidth": "2.5", "shape": "doubleoctagon"},
    "scheduled": {"fillcolor": "#9ccfff", "color": "#1f5f99", "penwidth": "1.5"},
    "cached": {"fillcolor": "#a6e3a1", "color": "#2f7a2a", "penwidth": "1.5"},
    "stale": {"fillcolor": "#f9d29d", "color": "#8a5a00", "penwidth": "2", "style": "rounded,filled,bold,dashed"},
    "skipped": {"fillcolor": "#e4e4e4", "color": "#7a7a7a"},
    "running": {"fillcolor": "#ffe08a", "color": "#8a6d00", "penwidth": "3", "style": "rounded,filled,bold"},
    "failed": {"fillcolor": "#f5a3a3", "color": "#9b1c1c", "penwidth": "3", "shape": "octagon"},
}
#: The dotted border of a step without a Context: a mid-tone that shows on the light fills and on dark
#: backgrounds alike (the border colour of the status vanished on dark themes).
NO_CONTEXT_BORDER = "#7a5fc0"
#: The dash pattern of that dotted border in SVG: Graphviz's own ("1,5") leaves specks one unit long that
#: vanish on dark themes; "2,3" stays a dotted line, visible on every background.
SVG_DOTS = 'stroke-dasharray="2,3"'
_GRAPHVIZ_DOTS = 'stroke-dasharray="1,5"'
# Statuses that come from a run in progress rather than from the plan; their name is written in the node.
RUN_STATUSES = frozenset({"running", "failed"})


def status_of(row: PlanRow) -> str:
    """The drawing status of a plan row: head, cached, stale, scheduled or skipped."""
    if row.schedule is Schedule.HEAD:
        return "head"
    if row.availability is Availability.STALE:
        return "stale"
    if row.availability is Availability.AVAILABLE or row.availability is Availability.UNSURE:
        return "cached"  # [?]: used as cached; its tooltip says what cannot be told
    if row.schedule is Schedule.RUN:
        return "scheduled"
    return "skipped"


def _step_node(row: PlanRow, status: str, plan: ExecutionPlan) -> dict[str, str]:
    """The node attributes of one step: label with its markers, style of its status, tooltip, id."""
    label = html.escape(row.name)
    if row.step_class != row.name:
        label += f'<BR/><FONT POINT-SIZE="9">{html.escape(row.step_class)}</FONT>'
    markers = row.availability.value + " " + row.schedule.value
    if status in RUN_STATUSES:
        markers += f" {status}"
    redefined = getattr(plan, "redefined", {}).get(row.name)
    if redefined:
        markers += " (!) redefined"
    label += f'<BR/><FONT POINT-SIZE="9">{html.escape(markers)}</FONT>'
    attrs = dict(NODE_STYLES.get(status, {}))
    if redefined:  # old code: a red double border, whatever the status
        attrs.update(color="#b42318", penwidth="3", peripheries="2")
    if row.availability is Availability.NO_CONTEXT:  # no Context: a dotted border
        base = "filled" if "shape" in attrs else "rounded,filled"  # rounded octagons blur when dotted
        attrs["style"] = attrs.get("style", base) + ",dotted"
        attrs["penwidth"] = "2.5"  # with SVG_DOTS: dots that show on dark themes, yet no blur
        if status not in RUN_STATUSES and not redefined:
            attrs["color"] = NO_CONTEXT_BORDER
    tooltip = f"{row.name}: {status}" + (f" ({row.reason})" if row.reason else "")
    if redefined:
        tooltip += f"; {redefined}"
    return dict(label=f"<{label}>", tooltip=tooltip, id=f"step-{row.name}", **attrs)


def _group_node(row: PlanRow, summary: GroupSummary, statuses: dict[str, str], plan: ExecutionPlan) -> dict[str, str]:
    """The stacked node of a mapped step: its name, item count and counts, styled by its items' state."""
    status = "head" if row.schedule is Schedule.HEAD else group_status(summary, statuses)
    counts = counts_text(summary, statuses)
    label = f"<B>{html.escape(row.name)}</B><BR/>" + f'<FONT POINT-SIZE="9">{html.escape(counts)}</FONT>'
    attrs = {k: v for k, v in NODE_STYLES.get(status, {}).items() if k != "shape"}
    style = attrs.get("style", "filled").replace("rounded,", "")
    attrs.update(shape="box3d", style=style)
    tooltip = f"{row.name}: mapped step, {counts}"
    return dict(label=f"<{label}>", tooltip=tooltip, id=f"group-{row.name}", **attrs)


class DependencyGraph(graphviz.Digraph):
    """A :class:`graphviz.Digraph` of a pipeline; in Jupyter it displays as inline SVG.

    Without Graphviz's ``dot`` program it still displays, as text plus a line telling how to install it.
    """

    plan: ExecutionPlan
    expand: Expand = None
    node_count: int = 0
    """How many nodes are drawn (a collapsed group is one)."""

    @classmethod
    def of(
        cls,
        head: Step,
        plan: ExecutionPlan | None = None,
        statuses: dict[str, str] | None = None,
        *,
        expand: Expand = None,
    ) -> DependencyGraph:
        """Draw the graph of ``head``; ``statuses`` overrides a node's status (e.g. running, failed).

        A mapped step (``Step.map``) is one stacked node with its counts; ``expand`` says which groups are
        drawn item by item instead, in a box: None (the default) those of at most
        :data:`~job_orchestra.group_view.EXPAND_ITEMS` items, True all, False none, or a list of group names.
        """
        plan = plan if plan is not None else ExecutionPlan.of(head)
        statuses = statuses or {}
        graph = cls(name=str(head), comment=f"job-orchestra pipeline of {head}")
        graph.plan = plan
        graph.expand = expand
        # pad: a margin around the drawing, so a legend wider than the graph does not touch the edge
        graph.attr(rankdir="LR", bgcolor="transparent", fontname="Helvetica", pad="0.15")
        graph.attr(
            "node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="11", fontcolor="#1b1b1b"
        )
        graph.attr("edge", color="#8c8c8c", arrowsize="0.7")
        groups = getattr(plan, "groups", None) or {}
        opened = expanded_groups(plan, expand) if groups else set()
        member = item_groups(plan)
        hidden = {name: g for name, g in member.items() if g not in opened}  # items drawn as their group
        clusters: dict[str, list[tuple[str, dict[str, str]]]] = {g: [] for g in opened}
        count = 0
        for row in plan.rows:
            if row.name in hidden:
                continue
            if row.name in groups:
                attrs = _group_node(row, groups[row.name], statuses, plan)
            else:
                attrs = _step_node(row, statuses.get(row.name) or status_of(row), plan)
            count += 1
            cluster = member.get(row.name) or (row.name if row.name in opened else None)
            if cluster is None:
                graph.node(row.name, **attrs)
            else:
                clusters[cluster].append((row.name, attrs))
        for name, nodes in clusters.items():
            with graph.subgraph(name=f"cluster_{name}") as box:
                box.attr(label=f"{name} {counts_text(groups[name], statuses)}", style="rounded,dashed")
                box.attr(color="#8c8c8c", fontcolor="#8c8c8c", fontsize="10", id=f"cluster-{name}")
                for node, attrs in nodes:
                    box.node(node, **attrs)
        seen: set[tuple[str, str]] = set()
        for name, deps in plan.graph.deps.items():
            target = hidden.get(name, name)
            for d in deps:
                edge = (hidden.get(d, d), target)
                if edge[0] != target and edge not in seen:
                    seen.add(edge)
                    graph.edge(*edge)
        graph.node_count = count
        return graph

    def pipe(self, format: str | None = None, *args: Any, **kwargs: Any) -> Any:
        """Graphviz's output; in SVG the dotted borders get :data:`SVG_DOTS` (visible on dark themes)."""
        out = super().pipe(format, *args, **kwargs)
        if (format or self.format) == "svg":
            if isinstance(out, bytes):
                return out.replace(_GRAPHVIZ_DOTS.encode(), SVG_DOTS.encode())
            return out.replace(_GRAPHVIZ_DOTS, SVG_DOTS)
        return out

    def as_text(self) -> str:
        """The plan as text: what is shown when Graphviz is not installed."""
        return str(self.plan).rstrip("\n")

    def svg_or_text(self) -> str:
        """The SVG drawing, or the text form plus the install hint when ``dot`` is missing."""
        try:
            return self.pipe(format="svg", encoding="utf-8")
        except graphviz.ExecutableNotFound:
            return f"<pre>{html.escape(self.as_text())}\n{html.escape(INSTALL_HINT)}</pre>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        text = f"Dependency graph of {self.name} ({len(self.plan)} steps)\n{self.as_text()}"
        try:
            svg = self.pipe(format="svg", encoding="utf-8")
        except graphviz.ExecutableNotFound:
            return {"text/plain": f"{text}\n{INSTALL_HINT}"}
        return {"image/svg+xml": svg, "text/plain": text}

    def _ipython_display_(self) -> None:
        """In IPython, show the graph through the display layer (a live drawing with a legend)."""
        rendering.ipython_display(self, fallback=self._repr_mimebundle_())

    def __repr__(self) -> str:
        return f"<DependencyGraph of {self.name!r}: {len(self.plan)} steps>"
