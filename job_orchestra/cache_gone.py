"""A cached result whose bytes are gone is lost, not damaged: ``materialize()`` forgets it and runs its step.

Another process may prune (or delete) a result after this one listed the cache: its record is still
shown, its bytes are not there any more, and reading it raises
:class:`~job_orchestra.errors.CachedResultGoneError`. :func:`forget_gone` drops that entry (and its record
on the store, if it still names the missing bytes), warns naming the step and the cache, and lets
``materialize()`` plan again, which runs the step. A value that is there but damaged (its checksum
differs) is never treated so: it raises ``CacheError``, loudly.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .errors import CachedResultGoneError, CachedResultGoneWarning
from .graph import collect

if TYPE_CHECKING:
    from .step import Step

__all__ = ["forget_gone"]


def forget_gone(head: Step, exc: CachedResultGoneError) -> bool:
    """Forget the gone result ``exc`` names if it is a step of ``head``'s pipeline shown from its Context's
    cache (True: plan again), else False (re-raise it)."""
    step = collect(head).steps.get(exc.key) if isinstance(exc.key, str) else None
    binding = getattr(getattr(step, "ctx", None), "_cache", None)
    if binding is None or binding.store.url != exc.url or not binding.drop_gone(exc.key):
        return False
    warnings.warn(
        f"The cached result of step {exc.key!r} in the cache {exc.url} is gone (pruned or deleted by another "
        "process after this one listed it): it is lost, not damaged, so the step runs again.",
        CachedResultGoneWarning,
        stacklevel=4,
    )
    return True
