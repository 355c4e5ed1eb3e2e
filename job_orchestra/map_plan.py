"""Mapped steps in plans: each item row names its group, each group gets a summary, and a dynamic group
(one mapped over an upstream step's output) is expanded once that step's result is in its Context.

The lower layers know a group only by its attributes (``_jo_is_group``, ``_jo_items``, ``_jo_source``,
``_jo_expand``, ``_jo_collapse``); :class:`job_orchestra.mapping.MapGroup` is the class that has them.
A pipeline without any mapped step pays one truth test of a weak set per plan.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from .errors import MapSourceError
from .graph import Node, collect

__all__ = ["DYNAMIC", "GROUPS", "GroupSummary", "annotate", "pending_groups", "placeholder_reason", "refresh"]

GROUPS: weakref.WeakSet = weakref.WeakSet()
"""Every MapGroup alive: when empty, plans skip the group pass."""
DYNAMIC: weakref.WeakSet = weakref.WeakSet()
"""Every MapGroup whose items come from an upstream step's output."""

COUNT_KEYS = ("cached", "to run", "stale", "not needed")


class GroupSummary(NamedTuple):
    """A mapped step in a plan: its items' names in item order and how many are ``cached``, ``to run``,
    ``stale`` (a subset of to run) or ``not needed``; ``pending_source`` names the step that must run
    before the items are known (None once they are)."""

    name: str
    items: list[str]
    counts: dict[str, int]
    pending_source: str | None = None


def placeholder_reason(source: str) -> str:
    """The reason shown on a dynamic group's row before its items are known."""
    return f"? items (known after {source} runs)"


def _source_ready(group: Any, plan_of: Callable[[Node], Any]) -> tuple[bool, Any]:
    source = group._jo_source
    if source.ctx is None:
        return False, None
    head_row = plan_of(source).rows[-1]
    if head_row.runs:
        return False, None
    return True, source.ctx[head_row.name]


def refresh(head: Node, plan_of: Callable[[Node], Any]) -> None:
    """Expand every dynamic group of ``head``'s pipeline whose source result is cached and fresh (from that
    result), and fold back to a placeholder those whose source must run again."""
    if not DYNAMIC:
        return
    for _ in range(len(DYNAMIC) + 1):  # an expansion may bring in another dynamic group
        changed = False
        steps = collect(head).steps
        for step in steps.values():
            if step in DYNAMIC:
                ready, value = _source_ready(step, plan_of)
                if ready:
                    changed |= step._jo_expand(value)
                elif step._jo_items:
                    step._jo_collapse()
                    changed = True
        if not changed:
            return


def pending_groups(head: Node) -> list[Any]:
    """The dynamic groups of ``head``'s pipeline whose items are not known yet (their source must run)."""
    if not DYNAMIC:
        return []
    return [step for step in collect(head).steps.values() if step in DYNAMIC and step._jo_pending]


def refuse_without_context(group: Any) -> None:
    """A dynamic source must keep its result: the items are built from it between two scheduler passes."""
    source = group._jo_source
    if source.ctx is None:
        raise MapSourceError(
            f"{group._name} is mapped over the output of {source._name}, which has no Context: its items are "
            f"known only after {source._name} runs, and its result must be kept for them. Give "
            f"{source._name} ctx= (the same Context as the items).",
            group._name,
            source._name,
        )


def annotate(steps: dict[str, Node], rows: list) -> tuple[list, dict[str, GroupSummary]]:
    """Rows with ``group`` set on item rows and the placeholder reason on pending groups, and the summaries."""
    if not GROUPS:
        return rows, {}
    index = {}
    groups: dict[str, GroupSummary] = {}
    for i, (name, step) in enumerate(steps.items()):
        item = step.__dict__.get("_jo_map")
        if item is not None:
            rows[i] = rows[i]._replace(group=item.group)
            index[name] = i
        elif step in GROUPS:
            source = step._jo_source
            pending = source._name if source is not None and step._jo_pending else None
            if pending is not None:
                rows[i] = rows[i]._replace(reason=placeholder_reason(pending))
            names = [s._name for s in step._jo_items]
            groups[name] = GroupSummary(name, names, {}, pending)
    for summary in groups.values():
        counts = dict.fromkeys(COUNT_KEYS, 0)
        for item_name in summary.items:
            i = index.get(item_name)
            if i is None:
                continue
            row = rows[i]
            if row.runs:
                counts["to run"] += 1
                if row.availability == "[~]":
                    counts["stale"] += 1
            elif row.availability in ("[*]", "[?]"):
                counts["cached"] += 1
            else:
                counts["not needed"] += 1
        summary.counts.update(counts)
    return rows, groups


def stuck(group: Any) -> MapSourceError:
    """The error for a dynamic group whose source ran but left no fresh result to build the items from."""
    source = group._jo_source._name
    return MapSourceError(
        f"{group._name}: its source {source} ran but its Context holds no fresh result of it to build the "
        f"items from (was it removed meanwhile?). Run the pipeline again.",
        group._name,
        source,
    )
