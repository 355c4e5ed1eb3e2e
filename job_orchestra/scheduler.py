"""Run the steps a plan schedules, in execution order, writing each result to its Context at once.

The scheduler keeps its state in one place (what must run, who still needs which result) and reports
progress through :mod:`job_orchestra.events`. A result is released as soon as no remaining step needs it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .attrdict import as_attrdict
from .errors import InvalidStepError
from .events import Callback, Dispatcher, gather
from .graph import PipelineGraph, collect, run_arity
from .plan import ExecutionPlan

if TYPE_CHECKING:
    from .step import Step

__all__ = ["check_runnable", "materialize"]


def check_runnable(graph: PipelineGraph, names: Iterable[str]) -> None:
    """Refuse, before anything runs, a step without ``run()`` or whose ``run()`` cannot take its inputs."""
    from .step import Step

    checked: set[tuple[type, int]] = set()
    for name in names:
        step = graph.steps[name]
        kind = type(step)
        n_inputs = len(graph.deps[name])
        if (kind, n_inputs) in checked:
            continue
        bound = step.run
        if getattr(bound, "__func__", None) is Step.run:
            raise InvalidStepError(
                f"Step {name!r} ({kind.__name__}) does not define run(self, *inputs): subclass Step and override run()."
            )
        if "run" in vars(step):  # run() replaced on the instance: let Python check the call
            continue
        low, high = run_arity(kind)
        if not low <= n_inputs <= high:
            wanted = f"{low}" if low == high else f"{low} to {high:g}"
            raise InvalidStepError(
                f"Step {name!r} ({kind.__name__}) has {n_inputs} dependencies "
                f"({', '.join(graph.deps[name]) or 'none'}) but its run() takes {wanted} inputs. Make run() "
                "take one argument per dependency, in depends_on order, or use run(self, *inputs)."
            )
        checked.add((kind, n_inputs))


def _note_failure(exc: BaseException, name: str, step: Step, finished: int) -> None:
    kind = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    exc.add_note(
        f"job-orchestra: step {name!r} ({type(step).__name__}) {kind}. {finished} step(s) finished in this "
        "run; those with a Context kept their results, so the next materialize() runs only what is left."
    )


def materialize(
    head: Step,
    executor: Any = None,
    max_workers: int | None = None,
    callbacks: Callback | Iterable[Callback] | None = None,
) -> Any:
    """Run what ``head`` needs and return its output (see :meth:`Step.materialize`)."""
    graph = collect(head)
    plan = ExecutionPlan.from_graph(head, graph)
    to_run = plan.to_run
    check_runnable(graph, to_run)
    events = gather(callbacks)
    if executor is not None:
        raise NotImplementedError("parallel executors are not available yet")
    if events:
        events.emit("start", plan)
    error: BaseException | None = None
    try:
        return _run_serial(plan, to_run, events)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if events:
            events.emit("finish", plan, error)


def record_result(plan: ExecutionPlan, step: Step, name: str, output: Any) -> Any:
    """Normalize a step's output (dicts get attribute access) and write it to the step's Context.

    Every executor calls this as soon as a step finishes, so a later failure cannot lose the result.
    """
    output = as_attrdict(output)
    ctx = step.ctx
    if ctx is not None and output is not None:
        ctx._put_result(name, output, plan.fingerprint(name))
    return output


def _run_serial(plan: ExecutionPlan, to_run: list[str], events: Dispatcher) -> Any:
    graph = plan.graph
    steps, deps, head = graph.steps, graph.deps, graph.head
    if not to_run:  # the head's own result is cached
        if events:
            events.emit("step_cached", head)
        return steps[head].ctx[head]  # type: ignore[index]

    scheduled = set(to_run)
    waiting: dict[str, int] = {}  # results still needed by this many scheduled steps
    for name in to_run:
        for d in deps[name]:
            if d in scheduled:
                waiting[d] = waiting.get(d, 0) + 1
    results: dict[str, Any] = {}
    taken_from_context: set[str] = set()
    finished = 0
    clock = time.perf_counter

    for name in to_run:
        step = steps[name]
        inputs = []
        for d in deps[name]:
            if d in scheduled:
                inputs.append(results[d])
                left = waiting[d] - 1
                waiting[d] = left
                if left == 0:
                    del results[d]
            else:
                inputs.append(steps[d].ctx[d])  # type: ignore[index]
                if events and d not in taken_from_context:
                    taken_from_context.add(d)
                    events.emit("step_cached", d)
        if events:
            events.emit("step_start", name)
        started = clock()
        try:
            output = step.run(*inputs)
        except BaseException as exc:
            del inputs
            _note_failure(exc, name, step, finished)
            if events:
                events.emit("step_fail", name, exc)
            raise
        del inputs
        output = record_result(plan, step, name, output)
        finished += 1
        if events:
            events.emit("step_finish", name, clock() - started)
        if name in waiting or name == head:
            results[name] = output
        del output
    return results[head]
