"""The execution plan as an HTML table: markers as badges, run state, last duration, cached value, legend.

Rows come in execution order, as in ``str(plan)``. Inline styles only (no ``<style>`` block), so the table
survives notebook sanitizers, nbconvert and GitHub, and inherits the theme's text colour.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from job_orchestra.group_view import Expand, counts_text, expanded_groups, group_status, item_groups
from job_orchestra.plan import Availability

from .runs import Run, last_duration, last_failure
from .storage_view import persisted_contexts, store_url, usage_html, where
from .summary import describe_entry, format_seconds
from .theme import FONT, REDEFINED, RUN_STATE, SCHEDULE, Badge, availability_badge, badge_html, legend_html

if TYPE_CHECKING:
    from job_orchestra import ExecutionPlan, PlanRow

__all__ = ["MAX_ROWS", "interrupt_summary", "progress_html", "render_plan"]

#: Plans longer than this show their first and last rows only (a 100,000-step table helps nobody).
MAX_ROWS = 200

_CELL = "text-align:left;padding:2px 8px;vertical-align:top"
_DIM = "opacity:0.75"


def _schedule_badge(row: PlanRow) -> Badge:
    marker = getattr(row.schedule, "value", str(row.schedule))
    return SCHEDULE.get(marker) or Badge(marker, marker, "#e4e4e4", "#7a7a7a")


def _row_html(
    plan: ExecutionPlan, index: int, row: PlanRow, status: str | None, show_class: bool, stored: bool = False
) -> str:
    step = plan.graph.steps[row.name]
    avail = availability_badge(row.availability)
    sched = _schedule_badge(row)
    run_cell = badge_html(sched, title=sched.words)
    if status in RUN_STATE:
        failure = last_failure(step) if status == "failed" else None
        run_cell += " " + badge_html(RUN_STATE[status], words=True, title=failure or RUN_STATE[status].words)
    name = f"<b>{html.escape(row.name)}</b>"
    reason = getattr(row, "reason", None)
    if reason:
        name += f'<br><span class="jo-reason" style="{_DIM};font-size:11px">{html.escape(str(reason))}</span>'
    redefined = plan.redefined.get(row.name) if hasattr(plan, "redefined") else None
    if redefined:
        run_cell += " " + badge_html(REDEFINED, words=True, title=redefined)
        name += f'<br><span class="jo-redefined" style="font-size:11px">{html.escape(redefined)}</span>'
    if status == "failed":
        failure = last_failure(step)
        if failure:
            short = failure if len(failure) <= 80 else failure[:79] + "\u2026"
            name += f'<br><span class="jo-error" style="font-size:11px">{html.escape(short)}</span>'
    seconds = last_duration(step, row.name)
    # Always a span (empty before the first run), so tools can find or mask run times in saved outputs.
    duration = f'<span class="jo-dur">{format_seconds(seconds) if seconds is not None else ""}</span>'
    ctx = step.ctx
    value = ""
    if ctx is not None and row.name in ctx:
        value = f'<span class="jo-value">{html.escape(describe_entry(ctx, row.name))}</span>'
    cells = [
        f'<td style="{_CELL};{_DIM}">{index}</td>',
        f'<td style="{_CELL}">{badge_html(avail, title=avail.words)}</td>',
        f'<td style="{_CELL}">{run_cell}</td>',
        f'<td style="{_CELL}">{name}</td>',
    ]
    if show_class:
        cls = html.escape(row.step_class) if row.step_class != row.name else ""
        cells.append(f'<td style="{_CELL};font-family:var(--jp-code-font-family,monospace)">{cls}</td>')
    cells += [f'<td style="{_CELL}">{duration}</td>', f'<td style="{_CELL}">{value}</td>']
    if stored:  # where the result lives: in memory, on disk, in s3://...
        place = where(ctx, row.name) or ""
        url = html.escape(store_url(ctx) or "", quote=True)
        cells.append(f'<td style="{_CELL}"><span class="jo-where" title="{url}">{html.escape(place)}</span></td>')
    return f'<tr data-step="{html.escape(row.name, quote=True)}">' + "".join(cells) + "</tr>"


def progress_html(run: Run) -> str:
    """One line: steps done / total, the running step(s), elapsed time (or how the run ended)."""
    elapsed = f'<span class="jo-elapsed">{format_seconds(run.elapsed)}</span>'
    if not run.finished:
        state = f"running <b>{html.escape(_running_names(run)) or chr(0x2026)}</b>"
    elif isinstance(run.error, KeyboardInterrupt):  # stopped on purpose: neutral words, no "failed"
        left = run.total - run.done
        return (
            f'<div class="jo-progress jo-interrupted" style="margin:2px 0;{FONT}">'
            f"materialize({html.escape(run.head)}): <b>interrupted</b>: {interrupt_summary(run)}, {elapsed}"
            + (" \u00b7 materialize() again runs only what is left" if left else "")
            + "</div>"
        )
    elif run.error is not None:
        state = f"failed in <b>{html.escape(run.failed or run.head)}</b>"
    else:
        state = "done"
    return (
        f'<div class="jo-progress" style="margin:2px 0;{FONT}">materialize({html.escape(run.head)}): '
        f"{run.done}/{run.total} steps{_group_progress(run)}, {state}, {elapsed}</div>"
    )


#: The progress line names at most this many mapped steps' item counts.
PROGRESS_GROUPS = 3


def _group_progress(run: Run) -> str:
    """`` (cv_fold 3/5 items)``: the items done per mapped step of the run (the first few groups)."""
    totals = getattr(run, "group_total", None)
    if not totals:
        return ""
    parts = [
        f"{html.escape(g)} {run.group_done.get(g, 0):,}/{n:,} items" for g, n in list(totals.items())[:PROGRESS_GROUPS]
    ]
    if len(totals) > PROGRESS_GROUPS:
        parts.append(f"+{len(totals) - PROGRESS_GROUPS} groups")
    return f' <span class="jo-group-progress">({", ".join(parts)})</span>'


def _running_names(run: Run) -> str:
    """The running steps, the running items of one mapped step shown as the group and their count."""
    group_of = getattr(run, "group_of", {})
    per_group: dict[str, list[str]] = {}
    names = []
    for name in run.running:
        group = group_of.get(name)
        if group is None:
            names.append(name)
        else:
            if group not in per_group:
                names.append(group)
            per_group.setdefault(group, []).append(name)
    return ", ".join(
        (per_group[n][0] if len(per_group[n]) == 1 else f"{n} \u00d7{len(per_group[n])}") if n in per_group else n
        for n in names
    )


def interrupt_summary(run: Run) -> str:
    """ "5 of 8 steps done, kept; 3 left": what an interrupted run leaves behind."""
    left = run.total - run.done
    kept = ", kept" if run.done else ""
    return f"{run.done} of {run.total} steps done{kept}; {left} left"


def _group_availability(row: PlanRow, items: list[tuple[int, PlanRow]]) -> object:
    """One marker for a group: its items' when they agree, else stale, else not computed."""
    shown = {item.availability for _, item in items}
    if not shown:
        return Availability.MISSING if row.reason else row.availability  # pending dynamic group: not known yet
    if len(shown) == 1:
        return next(iter(shown))
    return Availability.STALE if Availability.STALE in shown else Availability.MISSING


def _group_html(
    plan: ExecutionPlan,
    index: int,
    row: PlanRow,
    items: list[tuple[int, PlanRow]],
    statuses: dict[str, str],
    show_class: bool,
    opened: bool,
    max_rows: int,
    stored: bool = False,
) -> str:
    """A mapped step: one row with its counts; its item rows inside a ``<details>`` (no script needed)."""
    summary = plan.groups[row.name]
    avail = availability_badge(_group_availability(row, items))
    sched = _schedule_badge(row)
    run_cell = badge_html(sched, title=sched.words)
    status = group_status(summary, statuses)
    if status in RUN_STATE:
        run_cell += " " + badge_html(RUN_STATE[status], words=True)
    counts = f'<span class="jo-counts">{html.escape(counts_text(summary, statuses))}</span>'
    head = f"<b>{html.escape(row.name)}</b> {counts}"
    width = 4 + show_class + stored
    if not items:
        body = f'<div class="jo-group-head">{head}</div>'
    else:
        if len(items) > max_rows:
            half = max_rows // 2
            hidden = len(items) - 2 * half
            more = f'<tr><td colspan="{width + 3}" style="{_CELL};{_DIM}">\u2026 {hidden:,} more items</td></tr>'
            inner = [*(_row_html(plan, i, r, statuses.get(r.name), show_class, stored) for i, r in items[:half]), more]
            inner += [_row_html(plan, i, r, statuses.get(r.name), show_class, stored) for i, r in items[-half:]]
        else:
            inner = [_row_html(plan, i, r, statuses.get(r.name), show_class, stored) for i, r in items]
        body = (
            f'<details class="jo-group"{" open" if opened else ""}>'
            f'<summary class="jo-group-head" style="cursor:pointer">{head}</summary>'
            f'<table class="jo-group-items" style="border-collapse:collapse;margin:2px 0 2px 12px">'
            f"<tbody>{''.join(inner)}</tbody></table></details>"
        )
    cells = [
        f'<td style="{_CELL};{_DIM}">{index}</td>',
        f'<td style="{_CELL}">{badge_html(avail, title=avail.words)}</td>',
        f'<td style="{_CELL}">{run_cell}</td>',
        f'<td style="{_CELL}" colspan="{width}">{body}</td>',
    ]
    return f'<tr class="jo-group-row" data-group="{html.escape(row.name, quote=True)}">' + "".join(cells) + "</tr>"


def _top_rows(plan: ExecutionPlan, rows: list[PlanRow]) -> tuple[list, dict[str, list[tuple[int, PlanRow]]]]:
    """The numbered rows shown at the top level (item rows folded into their group), and each group's items."""
    if not getattr(plan, "groups", None):
        return list(enumerate(rows, 1)), {}
    member = item_groups(plan)
    items: dict[str, list[tuple[int, PlanRow]]] = {name: [] for name in plan.groups}
    top = []
    for i, row in enumerate(rows, 1):
        group = member.get(row.name)
        if group is None:
            top.append((i, row))
        else:
            items[group].append((i, row))
    return top, items


def render_plan(
    plan: ExecutionPlan, statuses: dict[str, str] | None = None, *, max_rows: int = MAX_ROWS, expand: Expand = None
) -> str:
    """The HTML table of ``plan``; ``statuses`` marks steps ``running`` or ``failed`` (see :mod:`.runs`).

    A mapped step is one row with its counts, expandable to its items; ``expand`` says which groups start
    open (None: those of at most 12 items, True, False, or a list of group names)."""
    statuses = statuses or {}
    rows = list(plan.rows)
    show_class = any(r.step_class != r.name for r in rows)
    stores = persisted_contexts(plan)
    heads = ["#", "Result", "Schedule", "Step"] + (["Class"] if show_class else []) + ["Last run", "Cached value"]
    heads += ["Stored"] if stores else []
    header = "".join(f'<th style="{_CELL};font-weight:600">{h}</th>' for h in heads)
    top, items = _top_rows(plan, rows)
    opened = expanded_groups(plan, expand) if items else set()
    if len(top) > max_rows:
        half = max_rows // 2
        shown = [*top[:half], None, *top[-half:]]
    else:
        shown = top
    body = []
    for item in shown:
        if item is None:
            hidden = len(top) - 2 * (max_rows // 2)
            body.append(f'<tr><td colspan="{len(heads)}" style="{_CELL};{_DIM}">\u2026 {hidden:,} more steps</td></tr>')
            continue
        index, row = item
        if row.name in items:
            body.append(
                _group_html(
                    plan, index, row, items[row.name], statuses, show_class, row.name in opened, max_rows, bool(stores)
                )
            )
        else:
            body.append(_row_html(plan, index, row, statuses.get(row.name), show_class, bool(stores)))
    n_run = len(plan.to_run)
    n_cached = sum(1 for r in rows if getattr(r.availability, "value", None) == "[*]")
    head = html.escape(plan.graph.head)
    running = [n for n, s in statuses.items() if s == "running"]
    failed = [n for n, s in statuses.items() if s == "failed"]
    extra = ""
    if running:
        extra += f" \u00b7 running: {html.escape(', '.join(running))}"
    if failed:
        extra += f" \u00b7 failed: {html.escape(', '.join(failed))}"
    redefined = getattr(plan, "redefined", {})
    if redefined:
        extra += f" \u00b7 <b>{len(redefined)} built from an old class definition: call {head}.rebind()</b>"
    title = (
        f'<div class="jo-title" style="margin:0 0 4px 0"><b>Execution plan of {head}</b> '
        f'<span style="{_DIM}">\u00b7 {len(rows)} steps \u00b7 {n_cached} cached \u00b7 {n_run} to run on '
        f"materialize(){extra}</span></div>"
    )
    return (
        f'<div class="jo-plan" style="font-size:13px;line-height:1.45;{FONT}">'
        + title
        + '<table class="jo-plan-table" style="border-collapse:collapse;margin:0">'
        + f"<thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        + legend_html(tuple(r.availability for r in rows))
        + usage_html(stores)
        + "</div>"
    )
