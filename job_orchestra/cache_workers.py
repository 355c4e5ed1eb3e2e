"""What Dask workers need to use a persistent cache themselves: a writer, a reader, and the client's record.

A worker gets a :class:`CacheWriter` (the store, by URL or path, the signing key if any, and the entry's key
and fingerprint) and writes the result exactly as the client's write-through would (the value file, then its
index record: :class:`~job_orchestra.cache.CacheBinding`). The client then finds that record in the store and
shows the entry lazily (:func:`adopt`), as if it had been opened from the cache. A result an earlier run put
in the cache is read on the worker that needs it, with the same checked loader the client would use.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .cache import CacheBinding
from .cache_index import StoreLoader, version_of
from .lazy import LazyEntry
from .stores import LocalStore, Store

if TYPE_CHECKING:
    from .context import Context

__all__ = ["CacheWriter", "adopt", "reader_for", "shared_with_workers", "writer_for"]


def shared_with_workers(store: Store) -> bool:
    """Whether worker processes can reach ``store``: a directory (a LocalCluster's, or one every machine
    mounts) or an object store; not ``memory://``, which is one process's memory."""
    return isinstance(store, LocalStore) or bool(getattr(store, "shared_with_workers", False))


class CacheWriter:
    """Writes one step's result into a cache from any process: ``write(value, seconds)`` returns the number of
    bytes of the value file, or a message saying why nothing was written."""

    def __init__(self, store: Store, secret: bytes | None, key: Any, fingerprint: str) -> None:
        self.store, self.secret, self.key, self.fingerprint = store, secret, key, fingerprint

    def write(self, value: Any, seconds: float | None) -> int | str:
        binding = CacheBinding(None, self.store, self.secret)  # type: ignore[arg-type]  # no Context here
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            binding.put(self.key, value, self.fingerprint, seconds)
        record = binding.versions.get(self.key, {}).get(version_of(self.fingerprint))
        if record is None:
            return "; ".join(str(w.message) for w in caught) or f"the result of {self.key!r} was not written"
        return int(record["size"])


def writer_for(ctx: Context | None, key: Any, fingerprint: str | None) -> CacheWriter | None:
    """The writer for ``key``'s result if ``ctx`` is bound to a cache the workers reach, else None."""
    binding = getattr(ctx, "_cache", None)
    if binding is None or fingerprint is None or not shared_with_workers(binding.store):
        return None
    return CacheWriter(binding.store, binding.secret, key, fingerprint)


def reader_for(ctx: Context | None, key: Any) -> StoreLoader | None:
    """The checked loader of ``key``'s cached value, for a worker to call, if it is not read here yet."""
    binding = getattr(ctx, "_cache", None)
    if binding is None or not shared_with_workers(binding.store):
        return None
    entry = dict.get(ctx, key)  # type: ignore[call-overload]
    if type(entry) is LazyEntry and isinstance(entry.loader, StoreLoader):
        return entry.loader
    return None


def adopt(ctx: Context, key: Any, fingerprint: str) -> bool:
    """Show in ``ctx`` (lazily) the entry a worker has just written; False if the store does not have it
    (the workers write to a directory this process does not see)."""
    binding = ctx._cache
    record = binding.find(key, version_of(fingerprint))
    if record is None or record["fingerprint"] != fingerprint:
        return False
    binding.show(key, record)
    return True
