"""job-orchestra: pipelines of Steps for data science, Jupyter-first.

Declare a pipeline as a graph of :class:`Step` subclasses, call ``head.materialize()``, and keep results
in a :class:`Context` so work is not repeated and can be snapshotted to disk.
"""

from .attrdict import AttrDict
from .context import Context
from .errors import (
    CacheError,
    ConcurrentStepError,
    CycleError,
    DuplicateStepName,
    HiddenKeyError,
    InvalidStepError,
    MapKeyError,
    MapSourceError,
    MissingResultError,
    PipelineError,
    RedefinedStepError,
    SnapshotError,
    SnapshotExistsError,
    SnapshotWriteError,
    UnserializableValueError,
    UntrustedCacheError,
    WorkerDiedError,
)
from .events import Callback
from .mapping import MapGroup
from .plan import ExecutionPlan, PlanRow
from .step import Step

__version__ = "2.0.0"

__all__ = [
    "AttrDict",
    "CacheError",
    "Callback",
    "ConcurrentStepError",
    "Context",
    "CycleError",
    "DuplicateStepName",
    "ExecutionPlan",
    "HiddenKeyError",
    "InvalidStepError",
    "MapGroup",
    "MapKeyError",
    "MapSourceError",
    "MissingResultError",
    "PipelineError",
    "PlanRow",
    "RedefinedStepError",
    "SnapshotError",
    "SnapshotExistsError",
    "SnapshotWriteError",
    "Step",
    "UnserializableValueError",
    "UntrustedCacheError",
    "WorkerDiedError",
    "__version__",
]
