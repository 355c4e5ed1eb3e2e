"""The schema of a snapshot's ``manifest.json``, checked in one place before anything else is read.

:func:`parse` turns the manifest's bytes into a checked dict or raises :class:`SnapshotError` saying what
is wrong: not JSON, nested too deeply, a field missing, unknown, or of the wrong type, a format version
that is not a positive integer, a file name that could leave the snapshot or name anything but a plain
file (empty, ".", "..", a separator, NUL, the manifest itself), a key that does not match its type, a
checksum that is not one, two entries with one key or one file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dill

from . import safe_dill
from .errors import SnapshotError

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_MANIFEST_BYTES", "decode_key", "encode_key", "parse"]

FORMAT = "job-orchestra-snapshot"
FORMAT_VERSION = 2  # 2: entries may be out-of-band ("format": "oob1") and checked with BLAKE3
MAX_MANIFEST_BYTES = 1 << 26
MANIFEST = "manifest.json"
SIGNATURE = "manifest.hmac"
SIGNATURE_SCHEME = "hmac-sha256"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^(?:[0-9a-f]{2})*$")
_NAME = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}"
_ENTRY_FILE = re.compile(rf"^(?:entries/)?{_NAME}$")
_RESERVED = {"manifest.json", "manifest.hmac", "entries"}
_MAX_SIZE = 1 << 48


def _is_int(value: object) -> bool:
    return type(value) is int


def _str(value: object) -> bool:
    return type(value) is str


def _str_or_none(value: object) -> bool:
    return value is None or type(value) is str


def _size(value: object) -> bool:
    return _is_int(value) and 0 <= value <= _MAX_SIZE  # type: ignore[operator]


def _sha(value: object) -> bool:
    return _str(value) and bool(_HEX64.match(value))  # type: ignore[arg-type]


def _file(value: object) -> bool:
    return _str(value) and bool(_ENTRY_FILE.match(value)) and value not in _RESERVED  # type: ignore[arg-type]


def _packages(value: object) -> bool:
    return type(value) is dict and all(_str(k) and _str_or_none(v) for k, v in value.items())


Check = Callable[[object], bool]
# field -> (check, what it must be, required)
_TOP: dict[str, tuple[Check, str, bool]] = {
    "format": (_str, "a string", True),
    "format_version": (_is_int, "an integer", True),
    "created": (_str, "a string", True),
    "python": (_str, "a string", True),
    "packages": (_packages, "an object of package names to version strings", True),
    "signed": (lambda v: type(v) is bool, "true or false", True),
    "entries": (lambda v: type(v) is list, "a list", True),
    "pipeline": (lambda v: v is None or type(v) is dict, "null or an object", True),
}
_FILE_FIELDS: dict[str, tuple[Check, str, bool]] = {
    "file": (_file, "a plain file name such as 'entries/000001.dill' (no '..', '/', NUL, leading '.')", True),
    "size": (_size, "a byte count (an integer >= 0)", True),
    "sha256": (_sha, "64 lowercase hexadecimal digits", False),  # entries written before BLAKE3
    "blake3": (_sha, "64 lowercase hexadecimal digits", False),
    "format": (lambda v: v == "oob1", "'oob1' (an entry with out-of-band buffers)", False),
}
_ENTRY: dict[str, tuple[Check, str, bool]] = {
    "key": (lambda v: _str(v) or _is_int(v), "a string or an integer", True),
    "key_type": (lambda v: v in ("str", "int", "dill"), "'str', 'int' or 'dill'", True),
    "key_dill": (lambda v: _str(v) and bool(_HEX.match(v)), "hexadecimal digits", False),  # type: ignore[arg-type]
    "key_sha256": (_sha, "64 lowercase hexadecimal digits", False),
    **_FILE_FIELDS,
    "type": (_str, "a string", True),
    "fingerprint": (_str_or_none, "a string or null", True),
    "given": (_str, "a string", False),
    "seconds": (
        lambda v: type(v) in (int, float) and v >= 0 and v == v and v != float("inf"),
        "a run time in seconds (a finite number >= 0)",
        False,
    ),
}
_PIPELINE: dict[str, tuple[Check, str, bool]] = {**_FILE_FIELDS, "head": (_str, "a string", True)}


def _check_fields(obj: dict[str, Any], schema: dict[str, tuple[Check, str, bool]], where: str) -> None:
    extra = sorted(set(obj) - set(schema), key=str)
    if extra:
        raise ValueError(f"{where} has unknown field(s) {', '.join(map(repr, extra))}")
    for field, (check, what, required) in schema.items():
        if field not in obj:
            if required:
                raise ValueError(f"{where} lacks the field {field!r}")
            continue
        if not check(obj[field]):
            raise ValueError(f"{where}: {field!r} must be {what}, not {_show(obj[field])}")
    if "blake3" in schema and "sha256" not in obj and "blake3" not in obj:
        raise ValueError(f"{where} lacks a checksum (the field 'blake3', or 'sha256' in older entries)")


def _show(value: object) -> str:
    text = json.dumps(value, default=str)
    return (text[:60] + "...") if len(text) > 60 else text


def looks_like_manifest(body: bytes) -> bool:
    """True when ``body`` is JSON naming our format (used to recognise our own directories)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def parse(body: bytes, where: str) -> dict[str, Any]:
    """The checked manifest; ``where`` (the snapshot's path) starts every error message."""
    try:
        manifest = json.loads(body)
    except RecursionError:
        raise SnapshotError(f"Snapshot {where}: manifest.json is nested too deeply to be a manifest.") from None
    except ValueError as exc:
        raise SnapshotError(f"Snapshot {where}: manifest.json is damaged (not JSON: {exc}).") from None
    if type(manifest) is not dict or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{where}: manifest.json is not a job-orchestra snapshot manifest.")
    version = manifest.get("format_version")
    if not _is_int(version) or version < 1:
        raise SnapshotError(
            f"Snapshot {where}: manifest.json has format version {_show(version)}, which is not a positive "
            "integer: the manifest is damaged."
        )
    if version > FORMAT_VERSION:
        raise SnapshotError(
            f"Snapshot {where} has format version {version}, newer than this job-orchestra understands "
            f"({FORMAT_VERSION}); upgrade job-orchestra to read it."
        )
    try:
        _check_fields(manifest, _TOP, "the manifest")
        keys: set[tuple[str, Any]] = set()
        files: set[str] = set()
        for index, record in enumerate(manifest["entries"]):
            at = f"entry {index} of the manifest"
            if type(record) is not dict:
                raise ValueError(f"{at} is {_show(record)}, not an object")
            _check_fields(record, _ENTRY, at)
            _check_key(record, at)
            identity = (record["key_type"], record.get("key_sha256", record["key"]))
            if identity in keys:
                raise ValueError(f"{at} repeats the key {record['key']!r}")
            keys.add(identity)
            _check_unique_file(record["file"], files, at)
        if manifest["pipeline"] is not None:
            _check_fields(manifest["pipeline"], _PIPELINE, "the pipeline of the manifest")
            _check_unique_file(manifest["pipeline"]["file"], files, "the pipeline of the manifest")
    except ValueError as exc:
        raise SnapshotError(f"Snapshot {where}: manifest.json is damaged: {exc}.") from None
    return manifest


def _check_key(record: dict[str, Any], at: str) -> None:
    kind, key = record["key_type"], record["key"]
    if kind == "str" and not _str(key):
        raise ValueError(f"{at}: its key_type is 'str' but its key is {_show(key)}")
    if kind == "int" and not _is_int(key):
        raise ValueError(f"{at}: its key_type is 'int' but its key is {_show(key)}")
    has_bytes = "key_dill" in record or "key_sha256" in record
    if kind == "dill" and not ("key_dill" in record and "key_sha256" in record and _str(key)):
        raise ValueError(f"{at}: a key of key_type 'dill' needs its repr as key, key_dill and key_sha256")
    if kind != "dill" and has_bytes:
        raise ValueError(f"{at}: key_dill and key_sha256 belong to keys of key_type 'dill' only")


def _check_unique_file(name: str, files: set[str], at: str) -> None:
    if name in files:
        raise ValueError(f"{at} names the file {name!r} of another entry")
    files.add(name)


def encode_key(key: Any) -> dict[str, Any]:
    """The manifest fields of a Context key: str and int as they are, others pickled with a checksum."""
    if type(key) is str:
        return {"key": key, "key_type": "str"}
    if type(key) is int:
        return {"key": key, "key_type": "int"}
    data = safe_dill.dumps(key, protocol=dill.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(data).hexdigest()
    return {"key": repr(key), "key_type": "dill", "key_dill": data.hex(), "key_sha256": digest}


def entry_record(
    key: Any, file: str, size: int, digest: dict[str, Any] | str, value: Any, fingerprint: str | None
) -> dict[str, Any]:
    """The fields that describe one stored value, shared by snapshot manifests and cache index records.

    ``digest`` holds the fields ``value_codec`` returns ({"blake3": ..., "format": ...}); a plain string is
    a SHA-256 in hex (entries written as plain pickle streams, as before out-of-band buffers)."""
    record = encode_key(key)
    record.update(file=file, size=size)
    record.update({"sha256": digest} if isinstance(digest, str) else digest)
    record.update(type=f"{type(value).__module__}.{type(value).__qualname__}", fingerprint=fingerprint)
    return record


def decode_key(record: dict[str, Any], where: str) -> Any:
    """The key of a checked manifest entry; a pickled key is unpickled only once its checksum matches."""
    if record["key_type"] != "dill":
        return record["key"]
    data = bytes.fromhex(record["key_dill"])
    if hashlib.sha256(data).hexdigest() != record["key_sha256"]:
        raise SnapshotError(
            f"Snapshot {where}: the key {record['key']!r} is damaged: its bytes do not match their checksum "
            "(key_sha256). It was not unpickled. Restore the snapshot from a copy."
        )
    try:
        key = dill.loads(data)
        hash(key)
    except Exception as exc:
        raise SnapshotError(
            f"Snapshot {where}: the key {record['key']!r} cannot be read back ({type(exc).__name__}: {exc})."
        ) from exc
    return key


def check_key(key: object, action: str) -> bytes | None:
    """Validate a ``key=`` argument: None, or non-empty bytes or str (str is encoded as UTF-8)."""
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(
            f"{action}: key= must be bytes or str (the secret of the HMAC signature), got {type(key).__name__}."
        )
    if not key:
        raise ValueError(f"{action}: key= is empty; an HMAC signature needs a secret, e.g. secrets.token_bytes(32).")
    return bytes(key)


def check_path(path: object, action: str) -> Path:
    """Validate a path argument: a non-empty str or os.PathLike."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"{action}: path must be a str or a pathlib.Path, got {type(path).__name__} ({path!r}).")
    if not str(os.fspath(path)):
        raise ValueError(f"{action}: path is empty; give the directory of the snapshot.")
    return Path(path)


def signature(manifest_bytes: bytes, key: bytes) -> str:
    """The HMAC-SHA256 of the manifest's bytes, as hex."""
    return hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
