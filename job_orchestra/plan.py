"""``ExecutionPlan``: what is cached and what will run, one row per step in execution order."""

from __future__ import annotations

import contextlib
import contextvars
import html
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from . import rendering
from .graph import PipelineGraph, collect, gc_paused
from .redefined import find_redefined

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


class PlanRow(NamedTuple):
    """One step of a plan: its name, class, availability and schedule."""

    name: str
    step_class: str
    availability: Availability
    schedule: Schedule
    reason: str | None = None
    """Why a stale row is stale: "code", "parameters" or "upstream step X changed" (None otherwise)."""

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


def _rows(graph: PipelineGraph, policy: str) -> tuple[list[PlanRow], _Fingerprints | None]:
    steps, deps = graph.steps, graph.deps
    available, missing, no_context = Availability.AVAILABLE, Availability.MISSING, Availability.NO_CONTEXT
    avail: dict[str, Availability] = {}
    has_ctx = False
    for name, step in steps.items():
        ctx = step.ctx
        if ctx is None:
            avail[name] = no_context
        else:
            has_ctx = True
            avail[name] = available if name in ctx else missing
    reasons: dict[str, str] = {}
    fingerprints = _fingerprint_pass(graph, avail, reasons, policy) if has_ctx else None
    # (>) : not available (missing, stale or no context), and reached from the head through such steps.
    needed = {graph.head}
    for name in reversed(steps):  # consumers come before their dependencies
        if name in needed and avail[name] is not available:
            needed.update(deps[name])
    run, skip = Schedule.RUN, Schedule.SKIP
    if reasons:
        get_reason = reasons.get
        rows = [
            PlanRow(
                name, type(step).__name__, a, run if name in needed and a is not available else skip, get_reason(name)
            )
            for name, step in steps.items()
            for a in (avail[name],)
        ]
    else:
        rows = [
            PlanRow(name, type(step).__name__, a, run if name in needed and a is not available else skip)
            for name, step in steps.items()
            for a in (avail[name],)
        ]
    last = rows[-1]  # the head comes last
    rows[-1] = last._replace(schedule=Schedule.HEAD)
    return rows, fingerprints


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
        self.rows = rows
        self.stale = stale
        self._fp = fingerprints
        self.redefined: dict[str, str] = {}
        """``{name: reason}``: steps built from a class defined again since (see :mod:`.redefined`)."""

    @classmethod
    def of(cls, head: Step, *, stale: StalePolicy | None = None) -> ExecutionPlan:
        """Collect and validate the graph of ``head`` and compute each row."""
        return cls.from_graph(head, collect(head), stale=stale)

    @classmethod
    def from_graph(cls, head: Step, graph: PipelineGraph, *, stale: StalePolicy | None = None) -> ExecutionPlan:
        """The plan of an already collected graph. ``stale``: "rerun" (default) or "use" (1.1 behaviour)."""
        policy = check_stale_policy(stale)
        with gc_paused():  # the fingerprint pass runs no user code but the pickling of odd parameters
            rows, fingerprints = _rows(graph, policy)
            plan = cls(head, graph, rows, fingerprints, policy)
        plan.redefined = find_redefined(graph)
        return plan

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
        if not fp.changed and name not in fp.params:  # the common case, inlined: once per step run
            deps = self.graph.deps[name]
            head = fp.heads.get(name)
            if head is not None and len(deps) == 1:
                return f"{head}:{fp.effective[deps[0]][:8]}"
        return fp.fingerprint(name, self.graph)

    def planned_key(self, name: str) -> str | None:
        """``"<total>:<code>:<parameters>"`` hashes of what ``name`` is planned to run with (None without
        fingerprints): two runs planning the same key compute the same result."""
        fp = self._fp
        return fp.heads.get(name) if fp is not None else None

    @property
    def stale_rows(self) -> list[PlanRow]:
        """The rows whose cached result is stale, in execution order."""
        return [row for row in self.rows if row.availability is Availability.STALE]

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
        stale = Availability.STALE
        legend = LEGEND_WITH_STALE if any(row.availability is stale for row in self.rows) else LEGEND
        text = legend + "\n" + "\n".join(map(str, self.rows)) + "\n"
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


class _Fingerprints:
    """What a plan knows about fingerprints: for each step ``"<total>:<code>:<parameters>"`` (the inputs part
    is added when the fingerprint is asked for), the total each step's dependents hash, and the per-parameter
    digests of steps with parameters (to tell, after a run, which ones ``run()`` changed)."""

    __slots__ = ("changed", "effective", "heads", "params")

    def __init__(self, heads: dict[str, str], effective: dict[str, str], params: dict) -> None:
        self.heads = heads
        self.effective = effective
        self.params = params
        self.changed: set[str] = set()

    def fingerprint(self, name: str, graph: PipelineGraph) -> str | None:
        """The fingerprint of ``name`` as things stand (called right after the step ran, to record it)."""
        head = self.heads.get(name)
        if head is None:
            return None
        deps = graph.deps[name]
        effective = self.effective
        planned = self.params.get(name)
        changed = self.changed
        if planned is None and not (changed and any(d in changed for d in deps)):
            if len(deps) == 1:  # the common case: nothing moved since the plan
                return f"{head}:{effective[deps[0]][:8]}"
            from .fingerprint import make_fingerprint

            return make_fingerprint(*head.split(":")[1:], [effective[d] for d in deps])[1]
        from .fingerprint import _NO_PARAMS, combine_params, drop_state, make_fingerprint, param_digests

        step = graph.steps[name]
        params = _NO_PARAMS
        if planned is not None:
            now = param_digests(step)
            state = [k for k, digest in now.items() if planned.get(k) != digest]
            if state:
                drop_state(step, state)
                now = {k: v for k, v in now.items() if k not in state}
                self.params[name] = now
            params = combine_params(now)
        old_total, code, _ = head.split(":")
        total, new = make_fingerprint(code, params, [effective[d] for d in deps])
        if total != old_total:
            self.heads[name] = f"{total}:{code}:{params}"
            effective[name] = total
            changed.add(name)
        return new


def _fingerprint_pass(
    graph: PipelineGraph, avail: dict[str, Availability], reasons: dict[str, str], policy: str
) -> _Fingerprints:
    """Fingerprint every step in execution order; mark stale results in ``avail`` and say why in ``reasons``.

    Dependents hash the fingerprint of the value they will actually receive: the recorded one for a result
    used from a Context, the hash of its content for a value put in by hand, the new one for a step that runs.
    """
    from .fingerprint import (
        PARAMETER_EXCLUDE,
        FingerprintPass,
        digest,
        given_fingerprint,
        make_fingerprint,
        stale_reason,
        total_of,
    )
    from .step import defines_run

    exclude = PARAMETER_EXCLUDE
    fp_pass = FingerprintPass()
    step_fingerprint = fp_pass.step
    steps, deps = graph.steps, graph.deps
    heads: dict[str, str] = {}  # name -> "<total>:<code>:<parameters>"
    effective: dict[str, str] = {}  # name -> total of the value its dependents receive
    rerun = policy == "rerun"
    available = Availability.AVAILABLE
    codes: dict[type, str] = {}
    no_params = "0" * 16
    for name, step in steps.items():
        step_deps = deps[name]
        attrs = step.__dict__
        code = codes.get(type(step))
        keys = attrs.get("_jo_parameters")
        if keys is None:  # first sight of this step: its attributes now are its parameters
            keys = [k for k in attrs if k not in exclude]
            keys = attrs["_jo_parameters"] = tuple(sorted(keys)) if keys else ()
        if code is None or keys:
            total, fingerprint = step_fingerprint(name, step, [effective[d] for d in step_deps])
            head = fingerprint.rpartition(":")[0]
            codes.setdefault(type(step), head.split(":")[1])
        else:  # the common case inlined (no parameters): this runs once per step per plan
            joined = effective[step_deps[0]] if len(step_deps) == 1 else "|".join([effective[d] for d in step_deps])
            total = digest(f"{code}|{no_params}|{joined}".encode())
            head = f"{total}:{code}:{no_params}"
        heads[name] = head
        if avail[name] is available:
            ctx = step.ctx
            recorded = ctx._fingerprints.get(name)  # type: ignore[union-attr]
            if recorded is None:  # put in by hand: it stands for itself, dependents hash its content
                effective[name] = given_fingerprint(ctx._value_token(name))  # type: ignore[union-attr]
                continue
            if recorded.startswith(total) and recorded[len(total)] == ":":  # the totals cover everything
                effective[name] = total
                continue
            if not rerun or not defines_run(step):  # a bare Step(name_alias=...) cannot recompute: use it
                effective[name] = total_of(recorded)
                continue
            avail[name] = Availability.STALE
            inputs = [effective[d] for d in step_deps]
            fingerprint = make_fingerprint(*head.split(":")[1:], inputs)[1]
            kind, index = stale_reason(recorded, fingerprint, list(step_deps), inputs)
            if kind != "upstream":
                reasons[name] = kind
            else:
                reasons[name] = _upstream_reason(name, index, deps, avail, reasons)
        effective[name] = total
    return _Fingerprints(heads, effective, fp_pass.params)


def _upstream_reason(
    name: str, index: int | None, deps: dict[str, tuple[str, ...]], avail: dict[str, Availability], reasons: dict
) -> str:
    """ "upstream step X changed", X being the step where the change started when the plan can tell."""
    candidates = deps[name] if index is None else (deps[name][index],)
    if index is None:  # prefer an input that is itself stale, then one that will be computed afresh
        ordered = [d for d in candidates if avail[d] is Availability.STALE]
        ordered += [d for d in candidates if avail[d] is not Availability.AVAILABLE]
        candidates = tuple(ordered) or candidates
    if not candidates:
        return "upstream steps changed"
    changed = candidates[0]
    upstream = reasons.get(changed)
    if upstream and upstream.startswith("upstream step "):
        return upstream  # name the root of the change, not every step on the way
    return f"upstream step {changed} changed"
