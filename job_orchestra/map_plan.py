"""Mapped steps in plans: each item row names its group, each group gets a summary, and a dynamic group
(one mapped over an upstream step's output) is expanded once that step's result is in its Context.

The lower layers know a group only by its attributes (``_jo_is_group``, ``_jo_items``, ``_jo_source``,
``_jo_expand``, ``_jo_collapse``); :class:`job_orchestra.mapping.MapGroup` is the class that has them.
A pipeline without any mapped step pays one truth test of a weak set per plan.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from .errors import MapSourceError
from .file_input import FILES_KEY
from .graph import Node, collect

__all__ = [
    "DYNAMIC",
    "GROUPS",
    "GroupSummary",
    "annotate",
    "group_marks",
    "pending_groups",
    "placeholder_reason",
    "refresh",
    "summaries",
]

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
    if source in GROUPS:  # a map over another map's output: collected from its items' cached results
        deps = source.dependencies
        if source._jo_pending or any(d.ctx is None for d in deps) or plan_of(source).to_run != [source._name]:
            return False, None
        return True, source.run(*(d.ctx[d._name] for d in deps))
    if FILES_KEY in source.__dict__:  # Step.from_file(...): its files are listed (and hashed) at plan time
        value = source.run()
        return True, group._jo_from if value == group._jo_from else value  # the same files: the same items
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
    keeper = next((d for d in source.dependencies if d.ctx is None), None) if source in GROUPS else source
    if keeper is not None and keeper.ctx is None:
        raise MapSourceError(
            f"{group._name} is mapped over the output of {source._name}, which has no Context"
            f"{f' for {keeper._name}' if keeper is not source else ''}: its items are known only after "
            f"{source._name} runs, and its result must be kept for them. Give {keeper._name} ctx= (the same "
            "Context as the items).",
            group._name,
            source._name,
        )


def groups_in(steps: dict[str, Node]) -> bool:
    """Whether any mapped step's group is among ``steps``."""
    return bool(GROUPS) and any(steps.get(g._name) is g for g in list(GROUPS))


def group_marks(steps: dict[str, Node]) -> list[tuple[Any, str, list, str | None]]:
    """What :func:`annotate` needs of the groups among ``steps`` as they stand now, in execution order:
    ``(group, name, items, pending source or None)``. One look per group: a plan keeps it and builds its
    rows only when asked (``_jo_items`` is replaced, never changed in place, when a group expands)."""
    here = [g for g in list(GROUPS) if steps.get(g._name) is g] if GROUPS else []
    if len(here) > 1:
        position = dict(zip(steps, range(len(steps))))
        here.sort(key=lambda g: position[g._name])
    return [(g, g._name, g._jo_items, g._jo_source._name if g._jo_pending else None) for g in here]


def annotate(steps: dict[str, Node], rows: list, marks: list[tuple[Any, str, list, str | None]]) -> list:
    """``rows`` (in ``steps`` order) with ``group`` set on item rows and the placeholder reason on the rows of
    groups whose items were not known, as ``marks`` (:func:`group_marks`) saw the groups. Steps are found by
    identity, so a name changed since does not move a mark. One pass over the steps and each group's items."""
    if not marks:
        return rows
    position = {id(step): i for i, step in enumerate(steps.values())}
    new, row_type = tuple.__new__, type(rows[0])
    for group, name, items, pending in marks:
        for item in items:
            i = position.get(id(item))
            if i is not None:
                rows[i] = new(row_type, (*rows[i][:-1], name))  # row._replace(group=name), faster at 10,000
        if pending is not None:
            i = position[id(group)]
            rows[i] = rows[i]._replace(reason=placeholder_reason(pending))
    return rows


def summaries(
    steps: dict[str, Node], rows: list, marks: list[tuple[Any, str, list, str | None]]
) -> dict[str, GroupSummary]:
    """A :class:`GroupSummary` per group of ``marks`` (:func:`group_marks`), counting its item rows."""
    position = dict(zip(steps, range(len(steps)))) if marks else {}
    groups: dict[str, GroupSummary] = {}
    for _, group_name, items, pending in marks:
        counts = dict.fromkeys(COUNT_KEYS, 0)
        names = [item._name for item in items]
        for item_name in names:
            i = position.get(item_name)
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
        groups[group_name] = GroupSummary(group_name, names, counts, pending)
    return groups


def stuck(group: Any) -> MapSourceError:
    """The error for a dynamic group whose source ran but left no fresh result to build the items from."""
    source = group._jo_source._name
    return MapSourceError(
        f"{group._name}: its source {source} ran but its Context holds no fresh result of it to build the "
        f"items from (was it removed meanwhile?). Run the pipeline again.",
        group._name,
        source,
    )


def warn_run_twice(graph: Any, to_run: list[str], ran_first: set[str]) -> None:
    """Say so when a step without a Context ran in a source's pass and must run again for the items."""
    steps = graph.steps  # a group's own collect step is cheap: it only gathers its items' cached results
    again = [n for n in to_run if n in ran_first and steps[n].ctx is None and steps[n] not in GROUPS]
    if again:
        shown = ", ".join(again[:5]) + (f" and {len(again) - 5} more" if len(again) > 5 else "")
        warnings.warn(
            f"{shown} ran to give a mapped step its items and runs again for the rest of the pipeline: without "
            "a Context its result is not kept between the two passes. Give it ctx= to run it once.",
            RuntimeWarning,
            stacklevel=4,
        )
