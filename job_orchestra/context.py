"""``Context``: where steps keep their results, with snapshots to disk (see :mod:`job_orchestra.snapshot`)."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from os import PathLike
from typing import TYPE_CHECKING, Any

from .attrdict import AttrDict
from .cleverdict_compat import CleverDictCompat
from .fingerprint import hash_value
from .lazy import LazyEntry

if TYPE_CHECKING:
    from .step import Step

__all__ = ["Context"]

_MISSING = object()


@functools.cache
def _version(dist: str) -> str | None:
    """An installed distribution's version, read once per process (package metadata is slow to read)."""
    from importlib import metadata  # a few ms to import: paid by the first Context, not by `import`

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def _python_version() -> str:
    import platform  # about a millisecond to import: paid by the first Context, not by `import`

    return platform.python_version()


def _context_meta() -> AttrDict:
    meta = AttrDict(
        created_on=time.strftime("%Y-%m-%d"),  # today's local date, as datetime.date.today().isoformat()
        python=_python_version(),
        job_orchestra=_version("job-orchestra"),
    )
    sklearn = _version("scikit-learn")
    if sklearn:
        meta["sklearn"] = sklearn
    return meta


class Context(CleverDictCompat, AttrDict):
    """A dict with attribute access that keeps step results, and snapshots them to disk.

    Pass it to a step with ``ctx=``; that step's result is stored under the step's name and reused by
    later ``materialize()`` calls. ``store(path)`` writes a snapshot, ``Context.load(path)`` reads it back
    (values are read lazily, on first access).
    """

    __slots__ = ("_cache", "_durations", "_fingerprints", "_given", "_lock", "_pipeline")
    _internal = frozenset(__slots__)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_lock", threading.RLock())
        object.__setattr__(self, "_fingerprints", {})
        object.__setattr__(self, "_durations", {})  # key -> (fingerprint, seconds) of the run that made it
        object.__setattr__(self, "_given", {})  # key -> content hash of a value put in by hand
        object.__setattr__(self, "_pipeline", None)
        object.__setattr__(self, "_cache", None)  # the CacheBinding of a Context.open()ed Context
        dict.__setitem__(self, "context_meta", _context_meta())  # first, as in 1.1; data may replace it
        dict.update(self, *args, **kwargs)

    # -- attribute access for internals ---------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if name in Context._internal:
            object.__setattr__(self, name, value)
        else:
            AttrDict.__setattr__(self, name, value)

    # -- lazy values ----------------------------------------------------------------------------------
    def _resolve(self, key: Any, value: Any) -> Any:
        if type(value) is not LazyEntry:
            return value
        with self._lock:
            current = dict.get(self, key, _MISSING)
            if current is not value:  # another thread loaded (or replaced) it meanwhile
                return self._resolve(key, current) if current is not _MISSING else value.loader()
            loaded = value.loader()
            dict.__setitem__(self, key, loaded)
            return loaded

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        if type(value) is LazyEntry:
            return self._resolve(key, value)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        value = dict.get(self, key, _MISSING)
        if value is _MISSING:
            return default
        return self._resolve(key, value)

    def __iter__(self) -> Iterator[Any]:  # also makes dict(ctx) go through __getitem__
        return dict.__iter__(self)

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[k] for k in dict.keys(self)]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        return [(k, self[k]) for k in dict.keys(self)]

    def pop(self, key: Any, *default: Any) -> Any:
        with self._lock:
            self._fingerprints.pop(key, None)
            self._given.pop(key, None)
            if key not in self and default:
                return default[0]
            value = self[key]
            dict.pop(self, key)
            if self._cache is not None:
                self._cache.forget(key)
            return value

    def popitem(self) -> tuple[Any, Any]:
        with self._lock:
            key = next(reversed(dict.keys(self)))
            return key, self.pop(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            if key in self:
                return self[key]
            self[key] = default
            return default

    def copy(self) -> Context:
        """A shallow copy, fingerprints included (lazy entries are read first)."""
        new = Context()
        dict.clear(new)
        for key, value in self.items():
            dict.__setitem__(new, key, value)
        new._fingerprints.update(self._fingerprints)
        new._durations.update(self._durations)
        new._given.update(self._given)
        return new

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            return dict(self.items()) == dict(other.items()) if len(self) == len(other) else False
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def is_loaded(self, key: Any) -> bool:
        """False while ``key`` is a snapshot entry not read from disk yet."""
        return type(dict.__getitem__(self, key)) is not LazyEntry

    # -- writes -----------------------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        # A value put in by hand has no fingerprint: it counts as available whatever the code says.
        with self._lock:
            self._fingerprints.pop(key, None)
            self._given.pop(key, None)
            dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        with self._lock:
            self._fingerprints.pop(key, None)
            self._given.pop(key, None)
            dict.__delitem__(self, key)
            if self._cache is not None:
                self._cache.forget(key)

    def _forget_in_memory(self, key: Any) -> None:
        with self._lock:
            self._fingerprints.pop(key, None)
            self._given.pop(key, None)
            dict.pop(self, key, None)

    def clear(self) -> None:
        with self._lock:
            if self._cache is not None:
                for key in list(dict.keys(self)):
                    self._cache.forget(key)
            self._fingerprints.clear()
            self._given.clear()
            dict.clear(self)

    def _put_result(self, key: str, value: Any, fingerprint: str | None = None, seconds: float | None = None) -> None:
        """Record a step's result (called by the scheduler as soon as the step finishes) and how long it took."""
        if type(value) is LazyEntry and self._cache is not None:  # a cache keeps values, not another file's promise
            value = value.loader()
        with self._lock:
            dict.__setitem__(self, key, value)
            self._given.pop(key, None)
            if fingerprint is None:
                self._fingerprints.pop(key, None)
            else:
                self._fingerprints[key] = fingerprint
            if fingerprint is not None and seconds is not None:
                self._durations[key] = (fingerprint, seconds)
            else:
                self._durations.pop(key, None)
        if self._cache is not None:  # write-through, outside the lock: other threads keep reading
            self._cache.put(key, value, fingerprint, seconds)

    def last_duration(self, key: Any) -> float | None:
        """Seconds the run that computed ``key``'s result took (None for a value put in by hand or replaced)."""
        entry = self._durations.get(key)
        if entry is None or self._fingerprints.get(key) != entry[0]:  # the result changed since that run
            return None
        return entry[1]

    def fingerprint(self, key: Any) -> str | None:
        """The fingerprint recorded with a step's result, or None for a value put in by hand."""
        return self._fingerprints.get(key)

    def _value_token(self, key: Any) -> str:
        """A content hash of a value put in by hand (computed once per assignment), so that replacing it
        makes the results computed from it stale, while assigning an equal value again does not."""
        token = self._given.get(key)
        if token is None:
            token = hash_value(self[key])
            with self._lock:
                self._given[key] = token
        return token

    def invalidate(self, *names: str | Step) -> list[str]:
        """Drop the results of the given steps (names or Step objects); return the names dropped."""
        dropped = []
        with self._lock:
            for name in names:
                key = str(name)
                if key in self:
                    del self[key]
                    dropped.append(key)
        return dropped

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {dict.__getitem__(self, k)!r}" for k in dict.keys(self))
        return f"Context({{{inner}}})"

    # -- pickling (dill/pickle of a Context inside other objects) --------------------------------------
    def __reduce__(self) -> tuple:
        return (_rebuild_context, (dict(self.items()), dict(self._fingerprints), dict(self._durations)))

    def __copy__(self) -> Context:
        return self.copy()

    # -- snapshots --------------------------------------------------------------------------------------
    @property
    def pipeline(self) -> Step | None:
        """The head step stored with ``store(path, pipeline=head)``, attached to this Context."""
        pipeline = self._pipeline
        if type(pipeline) is LazyEntry:
            with self._lock:
                if type(self._pipeline) is LazyEntry:
                    object.__setattr__(self, "_pipeline", self._pipeline.loader())
                pipeline = self._pipeline
        return pipeline

    def store(
        self,
        path: str | PathLike[str] | None = None,
        pipeline: Step | None = None,
        *,
        key: bytes | str | None = None,
        dir_path: str | PathLike[str] | None = None,
        fullcopy: bool = False,
    ) -> None:
        """Write a snapshot directory at ``path`` (which must not exist), atomically.

        Every entry is kept exactly (type, order, attributes, shared and cyclic references), or refused
        naming its key. Keys (``str``) starting with ``"."`` are skipped: top-level ones, and the items of
        every dict inside a value at any depth (in lists, tuples, attributes...), without rebuilding any
        container. An existing path is never replaced. With ``pipeline=head`` the steps are stored too,
        attached to this Context on load.
        ``key=`` signs the snapshot with an HMAC, which ``load(path, key=...)`` then checks.
        ``dir_path=`` and ``fullcopy=`` are 1.1's spellings; snapshots are always full copies now.
        """
        if isinstance(pipeline, bool):  # 1.1's store(dir_path, fullcopy)
            pipeline = None
        from .snapshot import store  # imports dill (about 20 ms): paid by the first store(), not at import

        store(self, _snapshot_path(path, dir_path, "store"), pipeline=pipeline, key=key)

    # -- persistent caches (see job_orchestra.cache) ----------------------------------------------------
    @classmethod
    def open(cls, path_or_url: str | PathLike[str], *, key: bytes | str | None = None, trust: bool = False) -> Context:
        """A Context bound to a cache directory (or URL): every step result is written there as its step
        finishes, every version is kept by fingerprint, values load on first use. ``key=`` signs (and
        checks) its records; a cache owned by another user is refused unless ``trust=True`` or signed."""
        from .cache import open_cache  # imports dill (about 20 ms): paid by the first open(), not at import

        return open_cache(cls, path_or_url, key=key, trust=trust)

    @property
    def store_url(self) -> str | None:
        """The URL of the cache this Context writes through to (None for an in-memory Context)."""
        return None if self._cache is None else self._cache.store.url

    def location(self, key: Any) -> str | None:
        """Where ``key``'s result lives: the cache's URL, ``"memory"`` (not on disk), or None (no result)."""
        if key not in self:
            return None
        cache = self._cache
        return cache.store.url if cache is not None and key in cache.current else "memory"

    def version_for(self, key: Any, fingerprint: str) -> bool:
        """Whether the cache holds a result of ``key`` with this fingerprint (any version, any process)."""
        return self._cache is not None and self._cache.find(key, fingerprint.partition(":")[0]) is not None

    def disk_usage(self) -> Any:
        """``DiskUsage(total_bytes, entries, per_step)`` of the cache (zeros for an in-memory Context)."""
        if self._cache is not None:
            return self._cache.disk_usage()
        from .cache import DiskUsage  # imports dill: only when asked

        return DiskUsage(0, 0, {})

    def prune(self, *, older_than: Any = None, keep: int | None = None, max_bytes: int | None = None) -> list[Any]:
        """Remove cached versions older than ``older_than`` (seconds or timedelta), beyond the ``keep`` newest
        per step, and the oldest until at most ``max_bytes`` remain; returns what it removed (``CachedVersion``)."""
        if self._cache is None:
            return []
        return self._cache.prune(older_than, keep, max_bytes)

    @classmethod
    def load(
        cls,
        path: str | PathLike[str] | None = None,
        *,
        key: bytes | str | None = None,
        dir_path: str | PathLike[str] | None = None,
    ) -> Context:
        """Open a snapshot written by :meth:`store` (or by job-orchestra 1.1); values load on first use.

        Loading runs code from the snapshot, like any pickle: only load snapshots you trust.
        """
        chosen = _snapshot_path(path, dir_path, "load")
        if isinstance(chosen, (str, PathLike)) and os.path.lexists(os.path.join(os.fspath(chosen), "cache.json")):
            from .cache import load_cache  # a cache directory: its newest versions (imports dill, as below)

            return load_cache(cls, chosen, key=key)
        from .snapshot_load import load  # imports dill (about 20 ms): paid by the first load(), not at import

        return load(cls, chosen, key=key)


def _snapshot_path(path: object, dir_path: object, verb: str) -> object:
    """``path``, or 1.1's ``dir_path=`` keyword; exactly one of them."""
    if path is not None and dir_path is not None:
        raise TypeError(f"Context.{verb}() takes path or dir_path (1.1's name), not both")
    chosen = path if path is not None else dir_path
    if chosen is None:
        raise TypeError(f"Context.{verb}(): path must be the path of the snapshot directory, got None")
    return chosen


def _rebuild_context(items: dict, fingerprints: dict, durations: dict | None = None) -> Context:
    ctx = Context()
    dict.clear(ctx)
    dict.update(ctx, items)
    ctx._fingerprints.update(fingerprints)
    ctx._durations.update(durations or {})
    return ctx
