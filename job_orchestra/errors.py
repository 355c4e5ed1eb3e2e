"""The exception hierarchy of job-orchestra.

Every error names the step (or the snapshot key) at fault and says how to fix it. Where job-orchestra 1.1
raised a built-in exception, ours subclasses that built-in so ``except TypeError`` and friends keep working.
"""

from __future__ import annotations

__all__ = [
    "AcceptError",
    "CycleError",
    "DuplicateStepName",
    "InvalidStepError",
    "PipelineError",
    "SnapshotError",
    "SnapshotExistsError",
    "UnserializableValueError",
]


class PipelineError(Exception):
    """Base class of every error raised by job-orchestra itself."""


class InvalidStepError(PipelineError, TypeError):
    """A step is declared wrongly: a non-Step dependency, a bad argument type, a ``run()`` that cannot
    take its inputs."""


class DuplicateStepName(PipelineError, ValueError):
    """Two different step objects in one pipeline share a name."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class CycleError(PipelineError, ValueError):
    """The dependencies of the pipeline form a cycle."""

    def __init__(self, message: str, cycle: list[str]) -> None:
        super().__init__(message)
        self.cycle = cycle


class SnapshotError(PipelineError):
    """A Context snapshot cannot be written or read."""


class SnapshotExistsError(SnapshotError, FileExistsError):
    """``Context.store()`` refuses to overwrite an existing path (as 1.1 did)."""


class UnserializableValueError(SnapshotError, TypeError):
    """A Context entry cannot be serialized with dill; the message names its key."""

    def __init__(self, message: str, key: object) -> None:
        super().__init__(message)
        self.key = key


class AcceptError(PipelineError, ValueError):
    """``Step.accept_code()`` cannot accept: the step has no cached result, or it is stale for more than its
    code (parameters or inputs changed too)."""
