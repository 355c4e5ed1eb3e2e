"""Persistent caches: ``Context.open(path_or_url)``, a Context whose step results are written through to a Store.

Each result is written as soon as its step finishes (a small value inside its index record, one file; a
larger one to a value file, then its record: see :mod:`job_orchestra.cache_index`), every version is kept by
(key, fingerprint), and values are read lazily.
A snapshot directory opens as a cache and a cache directory loads as a snapshot (one format).
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

from .cache_index import (
    CACHE_FORMAT,
    CACHE_FORMAT_VERSION,
    INLINE_MAX,
    MARKER,
    VALUE_NAME,
    inline_record_bytes,
    key_id,
    lazy_value,
    new_record,
    parse_record,
    read_index,
    record_bytes,
    record_rel,
    version_of,
)
from .errors import CacheError, CacheWriteWarning, UntrustedCacheError
from .manifest import MANIFEST, MAX_MANIFEST_BYTES, SIGNATURE, check_key, decode_key, parse
from .snapshot_load import _check_signature, check_signature_text
from .snapshot_pickle import is_hidden
from .stores import TEMP_SUFFIX, LocalStore, Store, open_store
from .value_codec import digest_fields, encode

if TYPE_CHECKING:
    from .context import Context

__all__ = ["CacheBinding", "CachedVersion", "DiskUsage", "load_cache", "open_cache"]

ORPHAN_GRACE = 3600.0  # a value or temporary file without a record is removed by prune() only when older than this


class DiskUsage(NamedTuple):
    """How much a cache holds: bytes of values, number of (key, version) entries, bytes per step."""

    total_bytes: int
    entries: int
    per_step: dict[str, int]


class CachedVersion(NamedTuple):
    """One (key, version) of a cache, as ``prune()`` reports what it removed."""

    key: Any
    fingerprint: str
    size: int
    written: float


class CacheBinding:
    """What ties a Context to its Store: the known versions of each key and the write-through."""

    def __init__(self, ctx: Context, store: Store, secret: bytes | None) -> None:
        self.ctx = ctx
        self.store = store
        self.secret = secret
        self.versions: dict[Any, dict[str, dict[str, Any]]] = {}
        self.current: dict[Any, str] = {}  # key -> version held by the Context (when it is on disk)
        self.lock = threading.RLock()

    # -- reading ---------------------------------------------------------------------------------------
    def show(self, key: Any, record: dict[str, Any]) -> None:
        """Put a version into the Context, lazily, as the result of ``key``."""
        ctx = self.ctx
        with ctx._lock:
            dict.__setitem__(ctx, key, lazy_value(self.store, record, key, self.secret))
            ctx._given.pop(key, None)
            ctx._fingerprints[key] = record["fingerprint"]
            if "seconds" in record:
                ctx._durations[key] = (record["fingerprint"], float(record["seconds"]))
            else:
                ctx._durations.pop(key, None)
        self.current[key] = version_of(record["fingerprint"])

    def find(self, key: Any, version: str) -> dict[str, Any] | None:
        """The record of (key, version), known or on the store now (another process may have written it)."""
        known = self.versions.get(key, {}).get(version)
        if known is not None:
            return known
        rel = record_rel(key_id(key), version)
        try:
            record = parse_record(self.store.read(rel), rel, self.store.url, self.secret)
        except FileNotFoundError:
            return None
        with self.lock:
            self.versions.setdefault(key, {})[version] = record
        return record

    def reuse(self, key: Any, fingerprint_or_version: str) -> bool:
        """Show the stored version of ``key`` with that fingerprint, if there is one (for the plan)."""
        record = self.find(key, version_of(fingerprint_or_version))
        if record is None:
            return False
        self.show(key, record)
        return True

    # -- writing ---------------------------------------------------------------------------------------
    def put(self, key: Any, value: Any, fingerprint: str | None, seconds: float | None) -> None:
        """Write a step's result through to the store: a small value inside its index record (one file),
        a larger one to its value file first, then its index record."""
        if fingerprint is None or is_hidden(key):
            self.current.pop(key, None)
            return
        kid, version = key_id(key), version_of(fingerprint)
        try:  # pickled once, buffers out of band: its size decides where it goes
            encoded = encode(value, first="dill", hide=True)
        except Exception as exc:
            self._not_written(key, exc)
            return
        if encoded.nbytes <= INLINE_MAX:  # inline: the record and the value in one file, written and synced once
            rel = record_rel(kid, version)
            try:
                small = encoded.to_bytes()
                record = new_record(key, rel, len(small), digest_fields(small), value, fingerprint, seconds)
                record["inline"] = True
                self.store.write(rel, inline_record_bytes(record, small, self.secret))
            except Exception as exc:
                self._not_written(key, exc)
                return
            with self.lock:
                self.versions.setdefault(key, {})[version] = record
            self.current[key] = version
            return
        file = f"values/{kid}.{version}.{secrets.token_hex(8)}.dill"
        written: list[tuple[int, dict[str, Any]]] = []

        def fill(out: Any) -> None:
            written.append((encoded.nbytes, encoded.write_to(out)))

        try:
            self.store.write_from(file, fill)
            size, fields = written[-1]
            record = new_record(key, file, size, fields, value, fingerprint, seconds)
            self.store.write(record_rel(kid, version), record_bytes(record, self.secret))
        except Exception as exc:
            self.current.pop(key, None)
            try:
                self.store.delete(file)
            except Exception:
                pass
            warnings.warn(
                f"The result of {key!r} was not written to the cache {self.store.url} "
                f"({type(exc).__name__}: {exc}); it is kept in memory only and runs again in a new process.",
                CacheWriteWarning,
                stacklevel=4,
            )
            return
        with self.lock:
            self.versions.setdefault(key, {})[version] = record
        self.current[key] = version

    def _not_written(self, key: Any, exc: Exception) -> None:
        """The warning of a result not written (as the value-file branch of ``put`` gives it)."""
        self.current.pop(key, None)
        warnings.warn(
            f"The result of {key!r} was not written to the cache {self.store.url} "
            f"({type(exc).__name__}: {exc}); it is kept in memory only and runs again in a new process.",
            CacheWriteWarning,
            stacklevel=5,
        )

    def forget(self, key: Any) -> None:
        """Remove the version of ``key`` the Context holds from the store (``del ctx[key]``, invalidate)."""
        version = self.current.pop(key, None)
        if version is None:
            return
        record = self.versions.get(key, {}).pop(version, None)
        self.store.delete(record_rel(key_id(key), version))  # the record first: no reader finds a lost value
        if record is not None and VALUE_NAME.match(record["file"]):
            self.store.delete(record["file"])

    # -- reports and pruning ---------------------------------------------------------------------------
    def refresh(self) -> None:
        fresh = read_index(self.store, self.secret)
        with self.lock:
            self.versions = fresh

    def disk_usage(self) -> DiskUsage:
        self.refresh()
        per_step: dict[str, int] = {}
        entries = 0
        for key, versions in self.versions.items():
            entries += len(versions)
            per_step[str(key)] = sum(r["size"] for r in versions.values())
        return DiskUsage(sum(per_step.values()), entries, per_step)

    def prune(self, older_than: float | datetime.timedelta | None, keep: int | None, max_bytes: int | None):
        """Remove versions by age, count per key (newest kept) and total size (oldest first)."""
        if isinstance(older_than, datetime.timedelta):
            older_than = older_than.total_seconds()
        for name, value in (("older_than", older_than), ("keep", keep), ("max_bytes", max_bytes)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"Context.prune(): {name}= must be a number >= 0 (or None), got {value!r}")
        self.refresh()
        now = time.time()
        doomed: dict[tuple[Any, str], dict[str, Any]] = {}
        kept: list[tuple[Any, str, dict[str, Any]]] = []
        for key, versions in self.versions.items():
            newest_first = sorted(versions.items(), key=lambda item: item[1]["written"], reverse=True)
            for rank, (version, record) in enumerate(newest_first):
                if (older_than is not None and record["written"] < now - older_than) or (
                    keep is not None and rank >= keep
                ):
                    doomed[(key, version)] = record
                else:
                    kept.append((key, version, record))
        if max_bytes is not None:
            total = sum(r["size"] for _, _, r in kept)
            for key, version, record in sorted(kept, key=lambda item: item[2]["written"]):
                if total <= max_bytes:
                    break
                doomed[(key, version)] = record
                total -= record["size"]
        removed = []
        for (key, version), record in doomed.items():
            self.store.delete(record_rel(key_id(key), version))  # the record first, then its value
            if VALUE_NAME.match(record["file"]):
                self.store.delete(record["file"])
            self.versions[key].pop(version, None)
            if self.current.get(key) == version:
                self.current.pop(key)
                if not self.ctx.is_loaded(key):
                    self.ctx._forget_in_memory(key)
            removed.append(CachedVersion(key, record["fingerprint"], record["size"], record["written"]))
        self._remove_orphans(now)
        return removed

    def _remove_orphans(self, now: float) -> None:
        """Value files no record names (a writer killed between value and record) and temporary files of
        writers killed mid-write, once older than ORPHAN_GRACE: on every store (an object store has no
        temporary files, its writes being single requests, but may have such value files)."""
        store = self.store
        named = {r["file"] for versions in self.versions.values() for r in versions.values()}
        for rel in store.list("values"):
            if VALUE_NAME.match(rel) is None or rel in named:
                continue
            try:
                age = now - store.modified(rel)
            except FileNotFoundError:
                continue
            if age > ORPHAN_GRACE and not store.exists(record_rel(*rel[7:].split(".")[:2])):
                store.delete(rel)
        for folder in ("values", "index"):
            for rel, modified in store.leftovers(folder):
                if now - modified > ORPHAN_GRACE:
                    store.delete(rel)

    def drop_gone(self, key: Any) -> bool:
        """Forget the version of ``key`` whose bytes are gone (CachedResultGoneError), here and its record on
        the store if it still names them, so the plan runs the step again. False if ``key`` is not shown."""
        version = self.current.pop(key, None)
        if version is None:
            return False
        with self.lock:
            record = self.versions.get(key, {}).pop(version, None)
        self.ctx._forget_in_memory(key)
        rel = record_rel(key_id(key), version)
        if record is not None and VALUE_NAME.match(record["file"]):
            try:
                on_store = parse_record(self.store.read(rel), rel, self.store.url, self.secret)
            except (FileNotFoundError, CacheError):
                return True
            if on_store["file"] == record["file"]:
                self.store.delete(rel)  # it names a value that is gone: no reader could use it
        return True


def _check_place(store: Store, trust: bool, secret: bytes | None) -> None:
    """Refuse a store owned by someone else (unless trusted or signed) and a directory that is not ours."""
    if not trust and secret is None and not store.owner_trusted():
        owner = store.owner_uid() if isinstance(store, LocalStore) else None
        raise UntrustedCacheError(
            f"The cache {store.url} belongs to another user{f' (uid {owner})' if owner is not None else ''}: "
            "loading its values would run code that user wrote. Open it with trust=True if you trust them, "
            "or have it signed and open it with key=.",
            store.url,
        )
    if store.exists(MARKER) or store.exists(MANIFEST):
        return
    ours = ("values", "index", MARKER)  # another process may be creating the same cache right now (its marker too)
    if isinstance(store, LocalStore) and any(
        e.name not in ours and not e.name.endswith(TEMP_SUFFIX) for e in os.scandir(store.root)
    ):
        raise CacheError(
            f"{store.url} is a directory holding other files, neither a cache nor a snapshot: refusing to write "
            "a cache into it. Give Context.open() a new or empty directory."
        )


def _bind(ctx: Context, store: Store, secret: bytes | None) -> CacheBinding:
    """Fill ``ctx`` with the snapshot's entries (if any) and every key's newest cached version."""
    binding = CacheBinding(ctx, store, secret)
    if store.exists(MANIFEST):
        body = store.read(MANIFEST)
        if len(body) > MAX_MANIFEST_BYTES:
            raise CacheError(f"The cache {store.url}: its manifest is too large to be one.")
        if secret is not None:  # before anything of the manifest is used, on every kind of store
            if isinstance(store, LocalStore):
                _check_signature(store.root, body, secret)  # no symlinks, no special files
            else:
                try:
                    text: bytes | None = store.read(SIGNATURE)
                except FileNotFoundError:
                    text = None
                check_signature_text(store.url, text, body, secret)
        for record in parse(body, store.url)["entries"]:
            key = decode_key(record, store.url)
            if record["fingerprint"] is None:  # a value put in by hand: shown, not versioned
                dict.__setitem__(ctx, key, lazy_value(store, record, key))
                if "given" in record:
                    ctx._given[key] = record["given"]
                continue
            binding.versions.setdefault(key, {})[version_of(record["fingerprint"])] = {**record, "written": 0.0}
    for key, versions in read_index(store, secret).items():
        binding.versions.setdefault(key, {}).update(versions)
    for key, versions in binding.versions.items():
        binding.show(key, max(versions.values(), key=lambda r: r["written"]))
    return binding


def open_cache(cls: type[Context], path_or_url: Any, *, key: bytes | str | None = None, trust: bool = False) -> Context:
    """A Context bound to the cache at ``path_or_url`` (created if new): see ``Context.open``."""
    secret = check_key(key, "Context.open()")
    store = open_store(path_or_url)
    _check_place(store, trust, secret)
    if not store.exists(MARKER):
        marker = {"format": CACHE_FORMAT, "format_version": CACHE_FORMAT_VERSION, "signed": secret is not None}
        store.write(MARKER, json.dumps(marker).encode())
    ctx = cls()
    dict.clear(ctx)
    binding = _bind(ctx, store, secret)
    object.__setattr__(ctx, "_cache", binding)
    return ctx


def load_cache(cls: type[Context], path: Any, *, key: bytes | str | None = None) -> Context:
    """``Context.load`` of a cache directory: its newest versions, in memory only (no write-through)."""
    secret = check_key(key, "Context.load()")
    store = open_store(path)
    ctx = cls()
    dict.clear(ctx)
    _bind(ctx, store, secret)
    return ctx
