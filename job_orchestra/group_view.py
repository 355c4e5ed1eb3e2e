"""How plans and graphs show a mapped step (``Step.map``): one group with counts, expanded only when small.

Shared by the SVG drawing (:mod:`.drawing`) and the display layer's HTML plan, so both count and word a
group the same way: ``cv_fold \u00d75: 3 cached, 2 to run, 1 running``, or ``? items (known after ListFiles
runs)`` while a dynamic group waits for its source.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from .errors import UnknownGroupError
from .map_plan import placeholder_reason

if TYPE_CHECKING:
    from .map_plan import GroupSummary
    from .plan import ExecutionPlan

__all__ = ["EXPAND_ITEMS", "Expand", "counts_text", "expanded_groups", "group_status", "item_groups"]

#: Groups of at most this many items are shown expanded (every item) unless asked otherwise.
EXPAND_ITEMS = 12

Expand = bool | None | Collection[str]
"""``None``: expand the groups of at most :data:`EXPAND_ITEMS` items; ``True``/``False``: all or none;
a collection of group names: those."""


def expanded_groups(plan: ExecutionPlan, expand: Expand = None) -> set[str]:
    """The names of the groups of ``plan`` to show item by item."""
    groups = getattr(plan, "groups", None) or {}
    if expand is None:
        return {name for name, g in groups.items() if 0 < len(g.items) <= EXPAND_ITEMS}
    if expand is True:
        return set(groups)
    if expand is False:
        return set()
    if isinstance(expand, str):
        expand = [expand]
    unknown = [name for name in expand if name not in groups]
    if unknown:
        known = ", ".join(groups) or "none"
        raise UnknownGroupError(
            f"expand= names no mapped step of this pipeline: {', '.join(unknown)} (its mapped steps: {known}). "
            "Give the name_alias (or class name) of a Step.map group, or expand=True for all of them.",
            unknown,
        )
    return set(expand)


def item_groups(plan: ExecutionPlan) -> dict[str, str]:
    """``{item name: group name}`` for every item row of ``plan``."""
    if not getattr(plan, "groups", None):
        return {}
    return {row.name: row.group for row in plan.rows if getattr(row, "group", None) in plan.groups}


def _run_counts(summary: GroupSummary, statuses: dict[str, str]) -> tuple[int, int]:
    """How many items of the group are running, and how many failed last time."""
    if not statuses:
        return 0, 0
    items = set(summary.items)
    found = [status for name, status in statuses.items() if name in items]
    return found.count("running"), found.count("failed")


def counts_text(summary: GroupSummary, statuses: dict[str, str] | None = None) -> str:
    """``\u00d75: 3 cached, 2 to run (1 stale), 1 running`` (zero counts left out); the placeholder reason of a
    dynamic group whose items are not known yet."""
    if summary.pending_source is not None:
        return placeholder_reason(summary.pending_source)
    counts = summary.counts
    parts = []
    if counts.get("cached"):
        parts.append(f"{counts['cached']:,} cached")
    if counts.get("to run"):
        stale = f" ({counts['stale']:,} stale)" if counts.get("stale") else ""
        parts.append(f"{counts['to run']:,} to run{stale}")
    if counts.get("not needed"):
        parts.append(f"{counts['not needed']:,} not needed")
    running, failed = _run_counts(summary, statuses or {})
    if running:
        parts.append(f"{running:,} running")
    if failed:
        parts.append(f"{failed:,} failed")
    return f"\u00d7{len(summary.items):,}: " + (", ".join(parts) or "no items")


def group_status(summary: GroupSummary, statuses: dict[str, str] | None = None) -> str:
    """The drawing status of a group: running or failed when an item is, else from the counts."""
    running, failed = _run_counts(summary, statuses or {})
    counts = summary.counts
    if running:
        return "running"
    if failed:
        return "failed"
    if summary.pending_source is not None or counts.get("to run"):
        return "stale" if counts.get("stale") else "scheduled"
    if summary.items and counts.get("cached") == len(summary.items):
        return "cached"
    return "skipped"
