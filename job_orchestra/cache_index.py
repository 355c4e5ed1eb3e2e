"""The on-disk format of a persistent cache: one value file and one small index record per (key, version).

A cache directory is a snapshot directory that may also hold ``cache.json`` (the marker), ``values/`` and
``index/`` (see docs/concepts/persistent-cache.md). A record has the fields of a snapshot manifest entry
(key, file, size, blake3 or sha256, format, type, fingerprint, seconds: see :mod:`job_orchestra.value_codec`)
plus ``written`` (a UNIX time) and, in a signed cache, ``hmac``. The value file is written first under a name
of its own, then its record: a record always names a complete value, and its size and checksum (and the
record's HMAC) are checked before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import json
import re
import time
from typing import Any

from . import value_codec
from .errors import CacheError, StorePathError, UntrustedCacheError
from .lazy import LazyEntry
from .manifest import _ENTRY, _check_fields, _check_key, decode_key, encode_key, entry_record, signature
from .snapshot_load import _EntryLoader
from .stores import LocalStore, Store

__all__ = ["CACHE_FORMAT", "MARKER", "key_id", "parse_record", "read_index", "record_bytes", "record_rel"]

CACHE_FORMAT = "job-orchestra-cache"
CACHE_FORMAT_VERSION = 1
MARKER = "cache.json"
MAX_RECORD_BYTES = 1 << 20
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


def parse_record(data: bytes, rel: str, url: str, secret: bytes | None) -> dict[str, Any]:
    """The checked record at ``rel``: CacheError if damaged, UntrustedCacheError if a signature fails."""
    where = f"the cache {url}: the index record {rel!r}"
    try:
        record = json.loads(data)
        if type(record) is not dict:
            raise ValueError("not a JSON object")
        _check_fields(record, _RECORD, "it")
        _check_key(record, "it")
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
    return record


class StoreLoader(_EntryLoader):
    """Reads one cached value through a Store on first access: its bytes, their size and checksum, then dill."""

    def __init__(self, store: Store, record: dict[str, Any], label: str) -> None:
        super().__init__(_Where(store.url), record, label)
        self.store = store

    def _damaged(self, why: str) -> CacheError:
        return CacheError(
            f"The cache {self.store.url}: {self.label} is damaged: {why} (file {self.record['file']!r}). Nothing "
            "of it was unpickled. Delete the entry with del ctx[key] (it is computed again), or restore the cache."
        )

    def read(self) -> Any:
        """The value file's verified bytes: on a local store read once into memory and hashed meanwhile."""
        name = self.record["file"]
        hasher = value_codec.hasher_for(self.record, self.record["size"])
        try:
            if isinstance(self.store, LocalStore):
                data = self.store.read_into(name, value_codec.allocate, hasher.update, size=self.record["size"])
                computed: str | None = hasher.hexdigest()
            else:
                data, computed = self.store.read(name), None
        except StorePathError as exc:  # a link, not a regular file, or not of its size: never read
            raise self._damaged(str(exc)) from None
        except FileNotFoundError:
            raise CacheError(
                f"The cache {self.store.url}: the value file {name!r} of {self.label} is missing (pruned by "
                "another process?). Delete the entry with del ctx[key] and compute it again."
            ) from None
        except (OSError, CacheError) as exc:
            raise CacheError(f"The cache {self.store.url}: {self.label} cannot be read: {exc}") from exc
        finally:
            hasher.close()
        self.check(data, computed)
        return data


class _Where(str):
    """The store's URL where _EntryLoader's messages expect a path (``root / file`` reads as the URL's)."""

    def __truediv__(self, other: str) -> str:
        return f"{self}/{other}"


def lazy_value(store: Store, record: dict[str, Any], key: Any) -> LazyEntry:
    return LazyEntry(StoreLoader(store, record, f"the entry {key!r}"), f"{record['type']}, {record['size']} bytes")


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
