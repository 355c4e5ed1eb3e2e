"""The on-disk format of a persistent cache: one small index record per (key, version), and its value.

A cache directory is a snapshot directory that may also hold ``cache.json`` (the marker), ``values/`` and
``index/`` (see docs/concepts/persistent-cache.md). A record has the fields of a snapshot manifest entry (key,
file, size, blake3 or sha256, format, type, fingerprint, seconds: see :mod:`job_orchestra.value_codec`) plus
``written`` (a UNIX time) and, in a signed cache, ``hmac``. A large value has a file of its own, written first
under a name of its own, then its record: a record always names a complete value. A small value is *inline*: the
record's file holds the record (one line of JSON with ``"inline": true`` and ``file`` naming the record itself), a
newline, then the value's entry bytes, all written at once. Either way the value's size and checksum (and the
record's HMAC, which covers that checksum) are checked before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import json
import re
import time
from typing import Any

from . import value_codec
from .errors import CachedResultGoneError, CacheError, StorePathError, UntrustedCacheError
from .lazy import LazyEntry
from .manifest import _ENTRY, _check_fields, _check_key, decode_key, encode_key, entry_record, signature
from .snapshot_load import _EntryLoader
from .stores import LocalStore, Store

__all__ = [
    "CACHE_FORMAT",
    "INLINE_MAX",
    "MARKER",
    "inline_record_bytes",
    "key_id",
    "parse_record",
    "read_index",
    "record_bytes",
    "record_rel",
]

CACHE_FORMAT = "job-orchestra-cache"
CACHE_FORMAT_VERSION = 1
MARKER = "cache.json"
INLINE_MAX = 1 << 16  # a value pickled to at most this many bytes is stored inside its index record
MAX_RECORD_BYTES = 1 << 20  # files of index/ larger than this are not records (an inline one is far smaller)
RECORD_NAME = re.compile(r"^index/(?P<kid>[0-9a-f]{32})\.(?P<total>[0-9a-f]{32})\.json$")
VALUE_NAME = re.compile(r"^values/[0-9a-f]{32}\.[0-9a-f]{32}\.[0-9a-f]{16}\.dill$")
_SNAPSHOT_FILE = re.compile(r"^entries/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")
_RECORD: dict[str, Any] = {
    **_ENTRY,
    "file": (
        lambda v: type(v) is str and bool(VALUE_NAME.match(v) or _SNAPSHOT_FILE.match(v)),
        "a value file such as 'values/<key>.<version>.<random>.dill'",
        True,
    ),
    "fingerprint": (lambda v: type(v) is str and ":" in v, "a step's fingerprint", True),
    "written": (lambda v: type(v) in (int, float) and v >= 0, "a UNIX time", True),
    "hmac": (lambda v: type(v) is str and bool(re.match(r"^[0-9a-f]{64}$", v)), "an HMAC-SHA256 in hex", False),
    "inline": (lambda v: v is True, "true (the value follows the record in its file)", False),
}
_RECORD_FILE: dict[str, Any] = {
    **_RECORD,
    "file": (lambda v: type(v) is str and bool(RECORD_NAME.match(v)), "the record's own file", True),
}


def key_id(key: Any) -> str:
    """The 32 hex digits naming a Context key's files (the key itself is in the record)."""
    return hashlib.sha256(json.dumps(encode_key(key), sort_keys=True).encode()).hexdigest()[:32]


def version_of(fingerprint: str) -> str:
    """The version of a result: the total part of its fingerprint (it covers code, parameters and inputs)."""
    return fingerprint.partition(":")[0]


def record_rel(kid: str, total: str) -> str:
    return f"index/{kid}.{total}.json"


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in record.items() if k != "hmac"}, sort_keys=True).encode()


def record_bytes(record: dict[str, Any], secret: bytes | None) -> bytes:
    """The bytes of an index record, signed with ``secret`` when given."""
    if secret is not None:
        record = {**record, "hmac": signature(_canonical(record), secret)}
    return json.dumps(record, sort_keys=True).encode()


def new_record(
    key: Any, file: str, size: int, digest: dict[str, Any] | str, value: Any, fingerprint: str, seconds: float | None
):
    """The record of a value just written to ``file``."""
    record = entry_record(key, file, size, digest, value, fingerprint)
    record["written"] = time.time()
    if seconds is not None:
        record["seconds"] = seconds
    return record


def inline_record_bytes(record: dict[str, Any], payload: bytes, secret: bytes | None) -> bytes:
    """The bytes of an inline record's file: the record (signed when ``secret``), a newline, the value."""
    return b"%s\n%s" % (record_bytes(record, secret), payload)


def parse_record(data: bytes, rel: str, url: str, secret: bytes | None) -> dict[str, Any]:
    """The checked record at ``rel``: CacheError if damaged, UntrustedCacheError if a signature fails."""
    return parse_inline(data, rel, url, secret)[0]


def parse_inline(data: bytes, rel: str, url: str, secret: bytes | None) -> tuple[dict[str, Any], memoryview]:
    """The checked record at ``rel`` and its inline value's bytes, not copied (empty for a record naming a
    file). Only the value's size is checked against the record here; its checksum when the value is read."""
    where = f"the cache {url}: the index record {rel!r}"
    end = data.find(b"\n")  # json.dumps never writes a raw newline: the first one ends the record
    header, payload = (data, memoryview(b"")) if end < 0 else (data[:end], memoryview(data)[end + 1 :])
    try:
        record = json.loads(header)
        if type(record) is not dict:
            raise ValueError("not a JSON object")
        inline = record.get("inline") is True
        _check_fields(record, _RECORD_FILE if inline else _RECORD, "it")
        _check_key(record, "it")
        if inline and (record["file"] != rel or len(payload) != record["size"]):
            raise ValueError(
                f"its value is {len(payload)} bytes, not {record['size']}"
                if record["file"] == rel
                else "it is an inline record whose 'file' names another record"
            )
        if not inline and bytes(payload).strip():
            raise ValueError("it has bytes after the record but is not an inline record")
    except (ValueError, RecursionError) as exc:
        raise CacheError(
            f"In {where} is damaged ({exc}); nothing of it was unpickled. Delete that file (its value is "
            "computed again) or restore the cache from a copy."
        ) from None
    match = RECORD_NAME.match(rel)
    if match is None or match["total"] != version_of(record["fingerprint"]):
        raise CacheError(f"In {where}: its name does not match its fingerprint; it was moved or edited. Delete it.")
    if secret is not None:
        given = record.get("hmac")
        if given is None or not _hmac.compare_digest(given, signature(_canonical(record), secret)):
            raise UntrustedCacheError(
                f"In {where}: it is {'not signed' if given is None else 'signed with another key or altered'}, "
                "but the cache was opened with key=: refusing it. Delete the file, or open the cache with the "
                "key that wrote it.",
                url,
            )
    return record, payload


class StoreLoader(_EntryLoader):
    """Reads one cached value through a Store on first access: its bytes, their size and checksum, then dill."""

    def __init__(self, store: Store, record: dict[str, Any], label: str, key: Any = None) -> None:
        super().__init__(_Where(store.url), record, label)
        self.store = store
        self.key = key

    def _damaged(self, why: str) -> CacheError:
        return CacheError(
            f"The cache {self.store.url}: {self.label} is damaged: {why} (file {self.record['file']!r}). Nothing "
            "of it was unpickled. Delete the entry with del ctx[key] (it is computed again), or restore the cache."
        )

    def _fetch(self) -> tuple[Any, str | None]:
        """The stored bytes of the value, not checked yet (CachedResultGoneError if they are gone), and their
        checksum when it was computed while reading (a local store reads once into memory, hashing meanwhile)."""
        name = self.record["file"]
        hasher = value_codec.hasher_for(self.record, self.record["size"])
        try:
            if isinstance(self.store, LocalStore):
                data = self.store.read_into(name, value_codec.allocate, hasher.update, size=self.record["size"])
                return data, hasher.hexdigest()
            return self.store.read(name), None
        except StorePathError as exc:  # a link, not a regular file, or not of its size: never read
            raise self._damaged(str(exc)) from None
        except FileNotFoundError:
            raise self._gone(f"the value file {name!r}") from None
        except (OSError, CacheError) as exc:
            raise CacheError(f"The cache {self.store.url}: {self.label} cannot be read: {exc}") from exc
        finally:
            hasher.close()

    def _gone(self, what: str) -> CachedResultGoneError:
        return CachedResultGoneError(
            f"The cache {self.store.url}: {what} of {self.label} is gone (pruned or deleted by another "
            "process?): the result is lost, not damaged. materialize() runs its step again; or delete the "
            "entry with del ctx[key].",
            self.key,
            self.store.url,
        )

    def read(self) -> Any:
        """The value's verified bytes (size and checksum checked against its record)."""
        data, computed = self._fetch()
        self.check(data, computed)
        return data


class InlineLoader(StoreLoader):
    """Reads a value stored inside its index record: the record's file again (the value is not kept in
    memory from ``Context.open``), its record checked (and its HMAC), then the value's size and checksum."""

    def __init__(self, store: Store, record: dict[str, Any], label: str, key: Any, secret: bytes | None) -> None:
        super().__init__(store, record, label, key)
        self.secret = secret

    def _fetch(self) -> tuple[Any, str | None]:
        rel = self.record["file"]
        try:
            data = self.store.read(rel)
        except FileNotFoundError:
            raise self._gone(f"the index record {rel!r}") from None
        except (OSError, CacheError) as exc:
            raise CacheError(f"The cache {self.store.url}: {self.label} cannot be read: {exc}") from exc
        record, payload = parse_inline(data, rel, self.store.url, self.secret)
        if record["fingerprint"] != self.record["fingerprint"]:
            raise self._gone(f"the version listed at first (its record {rel!r} now holds another result)")
        self.record = record  # another process may have written this version again since: its own bytes
        return (payload, None) if record.get("inline") is True else StoreLoader._fetch(self)


class _Where(str):
    """The store's URL where _EntryLoader's messages expect a path (``root / file`` reads as the URL's)."""

    def __truediv__(self, other: str) -> str:
        return f"{self}/{other}"


def lazy_value(store: Store, record: dict[str, Any], key: Any, secret: bytes | None = None) -> LazyEntry:
    """The placeholder of a cached value, read and checked on first use (inline or from its value file)."""
    if record.get("inline") is True:  # its record is read again: checked (and its HMAC) as at open
        loader: StoreLoader = InlineLoader(store, record, f"the entry {key!r}", key, secret)
    else:
        loader = StoreLoader(store, record, f"the entry {key!r}", key)
    return LazyEntry(loader, f"{record['type']}, {record['size']} bytes")


def read_index(store: Store, secret: bytes | None) -> dict[Any, dict[str, dict[str, Any]]]:
    """Every record of the cache: ``{key: {version: record}}``."""
    versions: dict[Any, dict[str, dict[str, Any]]] = {}
    for rel, data in store.read_all("index", MAX_RECORD_BYTES):
        if RECORD_NAME.match(rel) is None:
            continue  # not ours: never read, never deleted
        record = parse_record(data, rel, store.url, secret)
        key = decode_key(record, store.url)
        versions.setdefault(key, {})[version_of(record["fingerprint"])] = record
    return versions
