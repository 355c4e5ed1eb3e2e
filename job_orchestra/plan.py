"""``ExecutionPlan``: what is cached and what will run, one row per step in execution order."""

from __future__ import annotations

import contextlib
import contextvars
import html
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from . import map_plan, plan_memo, rendering
from .graph import PipelineGraph, collect, gc_paused, run_order
from .map_plan import GroupSummary
from .redefined import find_redefined
from .staleness import Fingerprints as _Fingerprints
from .staleness import fingerprint_pass

if TYPE_CHECKING:
    from .step import Step

__all__ = ["LEGEND", "STALE_POLICIES", "Availability", "ExecutionPlan", "PlanRow", "Schedule", "StalePolicy"]

StalePolicy = Literal["rerun", "use"]
STALE_POLICIES: tuple[str, ...] = ("rerun", "use")
"""``stale="rerun"`` (the default): a cached result whose fingerprint no longer matches is stale and runs
again, with its dependents. ``stale="use"``: whatever is cached is used, as job-orchestra 1.1 did."""

_stale_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_orchestra_stale", default=None)


def check_stale_policy(stale: object) -> str:
    """Validate a ``stale=`` argument; None means the current default ("rerun" unless overridden)."""
    if stale is None:
        return _stale_override.get() or "rerun"
    if stale not in STALE_POLICIES:
        raise ValueError(
            f"stale= takes 'rerun' (run stale results again, the default) or 'use' (use whatever is cached, "
            f"as job-orchestra 1.1 did), got {stale!r}."
        )
    return stale  # type: ignore[return-value]


@contextlib.contextmanager
def stale_policy(stale: StalePolicy | None) -> Iterator[str]:
    """Within the block, plans built without an explicit ``stale=`` use ``stale`` (how
    ``Step.materialize(stale=...)`` reaches the scheduler's plan)."""
    policy = check_stale_policy(stale)
    token = _stale_override.set(policy)
    try:
        yield policy
    finally:
        _stale_override.reset(token)


class Availability(StrEnum):
    """Whether a step's result is in its Context (the first marker of a plan row)."""

    AVAILABLE = "[*]"
    STALE = "[~]"
    """The Context holds a result computed from other code, parameters or inputs: it will run again."""
    MISSING = "[ ]"
    NO_CONTEXT = "[x]"
    UNSURE = "[?]"
    """The Context holds a result, but the plan cannot tell whether it is fresh (the ``reason`` says what
    could not be hashed, e.g. an open file): it is used as it is, and says so."""

    @property
    def marker(self) -> str:
        return self.value


class Schedule(StrEnum):
    """What ``materialize()`` on the head will do with a step (the second marker of a plan row)."""

    HEAD = "(H)"
    RUN = "(>)"
    SKIP = "( )"

    @property
    def marker(self) -> str:
        return self.value


LEGEND = (
    "Execution plan. Result availability: [*] available - [ ] n/a - [x] no context. "
    "Scheduled execution: (H) head - (>) scheduled run on materialize - ( ) no run required."
)
LEGEND_WITH_STALE = LEGEND.replace("[*] available", "[*] available - [~] stale")
"""The legend of a plan that has a stale row (a plan without one prints exactly 1.1's text)."""


def legend_for(rows: list[PlanRow]) -> str:
    """1.1's legend, plus ``[~] stale`` and ``[?] cannot tell`` when some row shows them."""
    shown = {row.availability for row in rows}
    legend = LEGEND_WITH_STALE if Availability.STALE in shown else LEGEND
    if Availability.UNSURE in shown:
        legend = legend.replace(" - [ ] n/a", " - [?] cannot tell - [ ] n/a")
    return legend


class PlanRow(NamedTuple):
    """One step of a plan: its name, class, availability and schedule."""

    name: str
    step_class: str
    availability: Availability
    schedule: Schedule
    reason: str | None = None
    """Why a stale row is stale, precisely: ``code: Train.run``, ``constant CV_SEED``,
    ``parameters: lr 0.1 → 0.2``, ``upstream: Clean``; for a ``[?]`` row what cannot be hashed (else None)."""
    group: str | None = None
    """The name of the mapped step (``Step.map``) this row is an item of, else None."""

    @property
    def runs(self) -> bool:
        """True when ``materialize()`` on the head will call this step's ``run()``."""
        return self.schedule is Schedule.RUN or (
            self.schedule is Schedule.HEAD
            and self.availability is not Availability.AVAILABLE
            and self.availability is not Availability.UNSURE
        )

    def __str__(self) -> str:
        text = f" {self.availability.value} {self.schedule.value} {self.name}"
        return f"{text}  - {self.reason}" if self.reason else text


def availability(step: Step, name: str) -> Availability:
    """Where a step's result stands in its Context."""
    ctx = step.ctx
    if ctx is None:
        return Availability.NO_CONTEXT
    return Availability.AVAILABLE if name in ctx else Availability.MISSING


class _RowSource(NamedTuple):
    """What a plan's rows are made of, kept instead of the rows until someone reads them: a run needs only
    the names to run, and 100,000 row tuples would be so many more objects for the garbage collector."""

    names: list[str]
    classes: list[str]
    avail: dict[str, Availability]
    runs: list[bool]
    """By position: True for the steps ``materialize()`` runs."""
    reasons: dict[str, str]

    def rows(self) -> list[PlanRow]:
        """One row per step in execution order (the head last, marked (H)), without map annotations."""
        run, skip = Schedule.RUN, Schedule.SKIP
        get_reason = self.reasons.get
        rows = [
            PlanRow(name, kind, a, run if runs else skip, get_reason(name))
            for name, kind, a, runs in zip(self.names, self.classes, self.avail.values(), self.runs)
        ]
        rows[-1] = rows[-1]._replace(schedule=Schedule.HEAD)  # the head comes last
        return rows


def _rows(graph: PipelineGraph, policy: str) -> tuple[_RowSource, _Fingerprints | None, tuple[list[str], list[int]]]:
    """What the rows of a plan are made of, its fingerprints, and the names ``materialize()`` will run with
    their positions in the graph, in the order it runs them."""
    found = plan_memo.lookup(graph, policy)
    if found is not None:
        return found
    names, nodes = graph.names, graph.nodes
    available, missing, no_context = Availability.AVAILABLE, Availability.MISSING, Availability.NO_CONTEXT
    marks: list[Availability] = []
    mark = marks.append
    has_ctx = False
    for name, step in zip(names, nodes):
        ctx = step.ctx
        if ctx is None:
            mark(no_context)
        else:
            has_ctx = True
            mark(available if name in ctx else missing)
    avail = dict(zip(names, marks))  # in execution order, as the rows
    reasons: dict[str, str] = {}
    fingerprints = None
    stale = unsure = {}
    if has_ctx:
        fingerprints, stale, unsure = fingerprint_pass(graph, avail, available, policy)
        for name in stale:
            avail[name] = Availability.STALE
        for name in unsure:
            avail[name] = Availability.UNSURE
        reasons.update(stale)
        reasons.update(unsure)
        reasons.update(fingerprints.reused)
        marks = list(avail.values())
    # (>) : not available (missing, stale or no context), and reached from the head through such steps.
    usable = (available, Availability.UNSURE)
    inputs = graph.inputs
    needed = bytearray(len(names))  # by position, walked from the head: consumers come before their inputs
    needed[-1] = 1
    for p in range(len(names) - 1, -1, -1):
        if needed[p] and marks[p] not in usable:
            for d in inputs[p]:
                needed[d] = 1
    runs = [bool(need) and a not in usable for need, a in zip(needed, marks)]  # as PlanRow.runs
    run_at = run_order(inputs, runs, _groups_at(graph))  # 1.1's order: depth first, in depends_on order
    to_run = [names[p] for p in run_at]
    source = _RowSource(list(names), [type(step).__name__ for step in nodes], avail, runs, reasons)
    plan_memo.remember_plan(graph, policy, source, (to_run, run_at), fingerprints, stale, unsure)
    return source, fingerprints, (to_run, run_at)


def _groups_at(graph: PipelineGraph) -> set[int] | None:
    """The positions of the map groups (:mod:`.map_plan`) in ``graph``, or None when there are none."""
    if not map_plan.GROUPS:
        return None
    steps = graph.steps
    names = [g._name for g in list(map_plan.GROUPS) if steps.get(g._name) is g]
    return set(graph.positions(names)) if names else None


class ExecutionPlan:
    """The plan of a head step: ``str(plan)`` is job-orchestra 1.1's text; iterate for :class:`PlanRow`.

    A cached result whose fingerprint (see :mod:`job_orchestra.fingerprint`) no longer matches the step's
    code, parameters or inputs is *stale* (``[~]``, with a ``reason``): it is not available, so it runs
    again with its dependents. Build the plan with ``stale="use"`` to use whatever is cached, as 1.1 did.
    """

    def __init__(
        self,
        head: Step,
        graph: PipelineGraph,
        rows: list[PlanRow],
        fingerprints: _Fingerprints | None = None,
        stale: str = "rerun",
    ) -> None:
        self.head = head
        self.graph = graph
        self._rows = rows
        self._source: _RowSource | None = None  # rows not built yet (see rows)
        self._marks: list | None = None  # the groups as they stood at plan time (see map_plan.group_marks)
        self.stale = stale
        self._fp = fingerprints
        self.redefined: dict[str, str] = {}
        """``{name: reason}``: steps built from a class defined again since (see :mod:`.redefined`)."""
        self._groups: dict[str, GroupSummary] | None = None
        self._to_run: list[str] | None = None  # computed with the rows when known (see plan_memo)
        self._run_at: list[int] | None = None  # the same as positions in the graph

    @classmethod
    def of(cls, head: Step, *, stale: StalePolicy | None = None) -> ExecutionPlan:
        """Collect and validate the graph of ``head`` and compute each row."""
        if map_plan.DYNAMIC:  # a map over a step's output: expanded when that output is cached and fresh
            with stale_policy(stale):
                map_plan.refresh(head, cls.of)
        return cls.from_graph(head, collect(head), stale=stale)

    @classmethod
    def from_graph(cls, head: Step, graph: PipelineGraph, *, stale: StalePolicy | None = None) -> ExecutionPlan:
        """The plan of an already collected graph. ``stale``: "rerun" (default) or "use" (1.1 behaviour)."""
        policy = check_stale_policy(stale)
        with gc_paused():  # the fingerprint pass runs no user code but the pickling of odd parameters
            source, fingerprints, to_run = _rows(graph, policy)
            plan = cls(head, graph, None, fingerprints, policy)  # type: ignore[arg-type]
            plan._source = source
            # the rows and summaries show the groups as they stand now, though built when first asked for
            plan._marks = map_plan.group_marks(graph.steps) if map_plan.GROUPS else []
            plan._to_run, plan._run_at = to_run
        plan.redefined = find_redefined(graph)
        return plan

    @property
    def rows(self) -> list[PlanRow]:
        """One :class:`PlanRow` per step, in execution order (built on first use: a run does not need them)."""
        if self._rows is None:
            source = self._source
            if source is None:
                return []
            with gc_paused():
                rows = source.rows()
                self._rows = map_plan.annotate(self.graph.steps, rows, self._marks) if self._marks else rows
        return self._rows

    @rows.setter
    def rows(self, rows: list[PlanRow]) -> None:
        self._rows = rows
        self._to_run = self._run_at = None

    def refresh(self) -> ExecutionPlan:
        """The plan of the same head as it stands now (after a run, or a change to a Context)."""
        return type(self).of(self.head, stale=self.stale)  # type: ignore[arg-type]

    def fingerprint(self, name: str) -> str | None:
        """The fingerprint to record with ``name``'s result, called when the step has just run (None when no
        step of the pipeline has a Context, since nothing is recorded then).

        Usually the one computed with the plan. A step whose ``run()`` changed its own attributes gets them
        treated as state rather than parameters (with a warning), and its dependents follow.
        """
        fp = self._fp
        if fp is None:
            return None
        graph = self.graph
        fast = fp.fast(name, graph.steps[name], graph.deps[name])  # the common case: once per step run
        return fast if fast is not None else fp.fingerprint(name, graph)

    def planned_key(self, name: str) -> str | None:
        """``"<total>:<code>:<parameters>"`` hashes of what ``name`` is planned to run with (None without
        fingerprints): two runs planning the same key compute the same result."""
        fp = self._fp
        return fp.heads.get(name) if fp is not None else None

    @property
    def groups(self) -> dict[str, GroupSummary]:
        """``{name: GroupSummary}``: each mapped step (``Step.map``) of the pipeline, in execution order,
        with its items and their counts (computed on first use: runs do not need them)."""
        if self._groups is None:
            marks = self._marks if self._marks is not None else map_plan.group_marks(self.graph.steps)
            self._groups = map_plan.summaries(self.graph.steps, self.rows, marks)
        return self._groups

    @property
    def stale_rows(self) -> list[PlanRow]:
        """The rows whose cached result is stale, in execution order."""
        return [row for row in self.rows if row.availability is Availability.STALE]

    @property
    def to_run(self) -> list[str]:
        """Names of the steps ``materialize()`` will run, in the order it runs them: 1.1's, depth first from
        the head in ``depends_on`` order (the rows are listed in 1.1's plan order, which differs)."""
        if self._to_run is None:
            names = self.graph.names
            running = {row.name for row in self.rows if row.runs}
            self._run_at = run_order(self.graph.inputs, [name in running for name in names], _groups_at(self.graph))
            self._to_run = [names[p] for p in self._run_at]
        return list(self._to_run)

    @property
    def run_at(self) -> list[int]:
        """:attr:`to_run` as positions in the graph (``plan.graph.names[p]``), in the same order."""
        if self._run_at is None:
            self.to_run  # noqa: B018  (computes both)
        return list(self._run_at)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[PlanRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name_or_index: str | int) -> PlanRow:
        if isinstance(name_or_index, int):
            return self.rows[name_or_index]
        for row in self.rows:
            if row.name == name_or_index:
                return row
        raise KeyError(f"no step named {name_or_index!r} in the plan of {self.graph.head!r}")

    def __str__(self) -> str:
        text = legend_for(self.rows) + "\n" + "\n".join(map(str, self.rows)) + "\n"
        if self.redefined:  # 1.1's text is unchanged otherwise
            notes = [f" (!) {name}: {reason}" for name, reason in self.redefined.items()]
            text += "\n".join(notes) + f"\n Call {self.graph.head}.rebind() to use the current classes.\n"
        return text

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython's plain-text form
        printer.text(str(self).rstrip("\n"))

    # Rich display: built by a display layer found through job_orchestra.rendering (jupyter_ext in Jupyter).
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        """The plan as an HTML table plus the 1.1 text (``text/plain``)."""
        bundle = rendering.mimebundle(self)
        if bundle is None:
            bundle = {"text/plain": str(self).rstrip("\n")}
        return bundle

    def _repr_html_(self) -> str:
        """The plan as an HTML table with a legend (preformatted 1.1 text when no display layer is installed)."""
        bundle = self._repr_mimebundle_()
        return bundle.get("text/html") or f"<pre>{html.escape(bundle['text/plain'])}</pre>"

    def _ipython_display_(self) -> None:
        """In IPython, show the plan through the display layer (live: it updates as the pipeline runs)."""
        rendering.ipython_display(self, fallback=self._repr_mimebundle_())
