"""What the serial and the parallel run share: recording a result, notes on failures, consumer counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .attrdict import as_attrdict
from .checks import refuse_one_shot

if TYPE_CHECKING:
    from .plan import ExecutionPlan
    from .step import Step

__all__ = ["consumer_counts", "note_failure", "note_interrupt", "record_result"]


def note_failure(exc: BaseException, name: str, step: Step, finished: int, total: int = 0) -> None:
    if isinstance(exc, KeyboardInterrupt) and total:  # stopped on purpose: say what is kept, what is left
        kept = ", kept" if finished else ""
        exc.add_note(
            f"job-orchestra: interrupted in step {name!r}: {finished} of {total} steps done{kept}; "
            f"{total - finished} left. The next materialize() runs only what is left."
        )
        return
    kind = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    exc.add_note(
        f"job-orchestra: step {name!r} ({type(step).__name__}) {kind}. {finished} step(s) finished in this "
        "run; those with a Context kept their results, so the next materialize() runs only what is left."
    )


def note_interrupt(exc: BaseException, running: list[str], finished: int, abandoned: bool) -> None:
    what = ", ".join(map(repr, running)) or "no step"
    after = (
        "was interrupted again and left them running"
        if abandoned
        else "let them finish and kept their results in their Contexts"
    )
    exc.add_note(
        f"job-orchestra: interrupted while running {what}; it started no new step and {after}. "
        f"{finished} step(s) finished in this run; the next materialize() runs only what is left."
    )


def consumer_counts(to_run: list[str], deps: dict[str, tuple[str, ...]], scheduled: set[str]) -> dict[str, int]:
    """For each scheduled step, how many scheduled steps take its result (it is released after the last)."""
    waiting: dict[str, int] = {}
    for name in to_run:
        for d in deps[name]:
            if d in scheduled:
                waiting[d] = waiting.get(d, 0) + 1
    return waiting


def record_result(plan: ExecutionPlan, step: Step, name: str, output: Any, seconds: float | None = None) -> Any:
    """Normalize a step's output (dicts get attribute access) and write it to the step's Context.

    Every executor calls this as soon as a step finishes, so a later failure cannot lose the result. A
    one-shot iterator is refused rather than stored (a later consumer would find it exhausted).
    """
    output = as_attrdict(output)
    ctx = step.ctx
    if ctx is not None and output is not None:
        refuse_one_shot(name, step, output)
        ctx._put_result(name, output, plan.fingerprint(name), seconds)
    return output
