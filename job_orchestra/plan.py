"""``ExecutionPlan``: what is cached and what will run, one row per step in execution order."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from .graph import PipelineGraph, collect, gc_paused

if TYPE_CHECKING:
    from .step import Step

__all__ = ["LEGEND", "Availability", "ExecutionPlan", "PlanRow", "Schedule"]


class Availability(StrEnum):
    """Whether a step's result is in its Context (the first marker of a plan row)."""

    AVAILABLE = "[*]"
    MISSING = "[ ]"
    NO_CONTEXT = "[x]"

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


class PlanRow(NamedTuple):
    """One step of a plan: its name, class, availability and schedule."""

    name: str
    step_class: str
    availability: Availability
    schedule: Schedule

    @property
    def runs(self) -> bool:
        """True when ``materialize()`` on the head will call this step's ``run()``."""
        return self.schedule is Schedule.RUN or (
            self.schedule is Schedule.HEAD and self.availability is not Availability.AVAILABLE
        )

    def __str__(self) -> str:
        return f" {self.availability.value} {self.schedule.value} {self.name}"


def availability(step: Step, name: str) -> Availability:
    """Where a step's result stands in its Context."""
    ctx = step.ctx
    if ctx is None:
        return Availability.NO_CONTEXT
    return Availability.AVAILABLE if name in ctx else Availability.MISSING


def _rows(graph: PipelineGraph) -> list[PlanRow]:
    steps, deps = graph.steps, graph.deps
    available, missing, no_context = Availability.AVAILABLE, Availability.MISSING, Availability.NO_CONTEXT
    avail = {}
    for name, step in steps.items():
        ctx = step.ctx
        avail[name] = no_context if ctx is None else (available if name in ctx else missing)
    # (>) : not cached, and reached from the head through steps that are not cached.
    needed = {graph.head}
    for name in reversed(steps):  # consumers come before their dependencies
        if name in needed and avail[name] is not available:
            needed.update(deps[name])
    run, skip = Schedule.RUN, Schedule.SKIP
    rows = [
        PlanRow(name, type(step).__name__, a, run if name in needed and a is not available else skip)
        for name, step in steps.items()
        for a in (avail[name],)
    ]
    last = rows[-1]  # the head comes last
    rows[-1] = PlanRow(last.name, last.step_class, last.availability, Schedule.HEAD)
    return rows


class ExecutionPlan:
    """The plan of a head step: ``str(plan)`` is job-orchestra 1.1's text; iterate for :class:`PlanRow`."""

    def __init__(self, head: Step, graph: PipelineGraph, rows: list[PlanRow]) -> None:
        self.head = head
        self.graph = graph
        self.rows = rows

    @classmethod
    def of(cls, head: Step) -> ExecutionPlan:
        """Collect and validate the graph of ``head`` and compute each row."""
        return cls.from_graph(head, collect(head))

    @classmethod
    def from_graph(cls, head: Step, graph: PipelineGraph) -> ExecutionPlan:
        with gc_paused():
            return cls(head, graph, _rows(graph))

    def refresh(self) -> ExecutionPlan:
        """The plan of the same head as it stands now (after a run, or a change to a Context)."""
        return type(self).of(self.head)

    def fingerprint(self, name: str) -> str | None:
        """The fingerprint recorded with ``name``'s result when it runs (None: not tracked)."""
        return None

    @property
    def to_run(self) -> list[str]:
        """Names of the steps ``materialize()`` will run, in execution order."""
        return [row.name for row in self.rows if row.runs]

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
        return LEGEND + "\n" + "\n".join(map(str, self.rows)) + "\n"

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython's plain-text form
        printer.text(str(self).rstrip("\n"))

    # Rich display: built by the optional display layer (jupyter_ext), imported only when asked for.
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        """The plan as an HTML table plus the 1.1 text (``text/plain``)."""
        from jupyter_ext.display import plan_bundle

        return plan_bundle(self)

    def _repr_html_(self) -> str:
        """The plan as an HTML table with a legend."""
        return self._repr_mimebundle_()["text/html"]

    def _ipython_display_(self) -> None:
        """In IPython, show the plan through :mod:`jupyter_ext` (live: it updates as the pipeline runs)."""
        from jupyter_ext.display import ipython_display

        ipython_display(self)
