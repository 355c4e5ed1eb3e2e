"""The exception hierarchy of job-orchestra.

Every error names the step (or the snapshot key) at fault and says how to fix it. Where job-orchestra 1.1
raised a built-in exception, ours subclasses that built-in so ``except TypeError`` and friends keep working.
"""

from __future__ import annotations

__all__ = [
    "AcceptError",
    "CacheError",
    "CacheWriteWarning",
    "CachedResultGoneError",
    "CachedResultGoneWarning",
    "ConcurrentStepError",
    "CycleError",
    "DuplicateStepName",
    "FileInputError",
    "FunctionStepError",
    "HiddenKeyError",
    "InvalidStepError",
    "MapKeyError",
    "MapSourceError",
    "MissingResultError",
    "PipelineError",
    "RedefinedStepError",
    "SnapshotError",
    "SnapshotExistsError",
    "SnapshotWriteError",
    "StorePathError",
    "StoreUnavailableError",
    "UnknownGroupError",
    "UnserializableValueError",
    "UntrustedCacheError",
    "WorkerDiedError",
]


class PipelineError(Exception):
    """Base class of every error raised by job-orchestra itself."""


class InvalidStepError(PipelineError, TypeError):
    """A step is declared wrongly: a non-Step dependency, a bad argument type, a ``run()`` that cannot
    take its inputs."""


class FunctionStepError(InvalidStepError):
    """A function decorated with ``@step`` cannot be a step, or one of its steps is built with the wrong inputs
    or parameters; the message names the step."""

    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class MissingResultError(InvalidStepError, KeyError):
    """A step without ``run()`` (a bare ``Step(name_alias=..., ctx=ctx)``) whose Context lacks its result."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


class DuplicateStepName(PipelineError, ValueError, AssertionError):
    """Two different step objects in one pipeline share a name (1.1 raised an AssertionError)."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class CycleError(PipelineError, ValueError):
    """The dependencies of the pipeline form a cycle."""

    def __init__(self, message: str, cycle: list[str]) -> None:
        super().__init__(message)
        self.cycle = cycle


class RedefinedStepError(PipelineError):
    """Steps were built from a class that was defined again since (a notebook cell ran again)."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class SnapshotError(PipelineError):
    """A Context snapshot cannot be written or read."""


class SnapshotExistsError(SnapshotError, FileExistsError):
    """``Context.store()`` refuses to overwrite an existing path (as 1.1 did)."""


class SnapshotWriteError(SnapshotError, OSError):
    """Writing a snapshot failed in the operating system (a full disk, a read-only file system, permissions):
    ``errno`` is the system's, the message names the entry being written; nothing was left behind."""


class CacheError(SnapshotError):
    """A persistent cache (``Context.open``) cannot be opened, read or written."""


class CachedResultGoneError(CacheError):
    """A cached result whose bytes were removed (pruned by another process) after its record was listed:
    lost, not damaged. ``materialize()`` runs its step again (with a ``CacheWriteWarning``); attributes
    ``key`` and ``url`` name the entry and the cache."""

    def __init__(self, message: str, key: object, url: str) -> None:
        super().__init__(message)
        self.key = key
        self.url = url

    def __reduce__(self) -> tuple:  # raised on a Dask worker reading the cache: unpickled in the client
        return (type(self), (str(self), self.key, self.url))


class CachedResultGoneWarning(UserWarning):
    """``materialize()`` found a cached result gone (see :class:`CachedResultGoneError`) and runs its step
    again; the message names the step and the cache."""


class CacheWriteWarning(UserWarning):
    """A step's result could not be written to its cache (it cannot be pickled, or the disk refused it):
    it stays in memory only, and runs again in a new process."""


class StorePathError(CacheError, ValueError):
    """A path inside a cache store could escape it (``..``, absolute) or is not a regular file."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class UntrustedCacheError(CacheError, PermissionError):
    """A cache written by another user: its pickles could run that user's code, so it is not read unless
    the user opts in (``trust=True``) or it is signed with the ``key=`` it is opened with."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class UnserializableValueError(SnapshotError, TypeError):
    """A Context entry cannot be serialized with dill; the message names its key."""

    def __init__(self, message: str, key: object) -> None:
        super().__init__(message)
        self.key = key


class HiddenKeyError(UnserializableValueError):
    """A dict subclass in a Context value holds keys starting with "." (which snapshots leave out) but
    pickles itself in a way they cannot be left out of; the message names the Context key."""


class ConcurrentStepError(PipelineError, RuntimeError):
    """A step this run was waiting for failed in another ``materialize()`` running at the same time."""

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.step = step


class WorkerDiedError(PipelineError, RuntimeError):
    """The worker process running a step died (killed, crashed, or exited) before the step returned."""

    def __init__(self, message: str, step: str, exitcode: int | None = None, pid: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.exitcode = exitcode
        self.pid = pid


class FileInputError(PipelineError, FileNotFoundError):
    """A ``Step.from_file()`` input has no file to read: the path does not exist, or the directory or glob
    holds no file. ``step`` is the step's name, ``path`` the path or pattern as given."""

    def __init__(self, message: str, step: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.path = path

    def __reduce__(self) -> tuple:  # OSError pickles its args only: keep the step and path (process executors)
        return (type(self), (str(self), self.step, self.path))


class AcceptError(PipelineError, ValueError):
    """``Step.accept_code()`` cannot accept: the step has no cached result, or it is stale for more than its
    code (parameters or inputs changed too)."""


class MapKeyError(PipelineError, ValueError):
    """``Step.map`` cannot give every item its own key: duplicate keys, unhashable keys, or grids whose
    lengths do not fit; ``group`` is the mapped step's name and ``keys`` the keys at fault."""

    def __init__(self, message: str, group: str, keys: list) -> None:
        super().__init__(message)
        self.group = group
        self.keys = keys


class MapSourceError(PipelineError, ValueError):
    """The step a dynamic ``Step.map`` fans out over cannot give the items: it keeps no result in a
    Context, or its output is not a list, tuple, range or dict; ``group`` and ``source`` name the steps."""

    def __init__(self, message: str, group: str, source: str) -> None:
        super().__init__(message)
        self.group = group
        self.source = source


class StoreUnavailableError(CacheError, ImportError):
    """A cache URL cannot be opened: fsspec, or the package of its file system (``s3fs``, ``gcsfs``), is not
    installed, or fsspec knows no file system for its scheme. ``url`` is the URL; the message says what to
    install."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class UnknownGroupError(PipelineError, KeyError):
    """``expand=`` (in ``dependency_graph()`` or ``show()``) names a group that is no mapped step of the
    pipeline; ``names`` are the unknown names."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])
