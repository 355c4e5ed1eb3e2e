"""Data files as pipeline inputs: what ``Step.from_file(path_or_glob)`` reads, hashes and reports.

A file input names one file, a directory (every file under it, recursively) or a glob. Its fingerprint is
the content of those files, not their dates: each file's size, ``mtime_ns``, inode (and ``ctime_ns``, which
``os.utime`` cannot set back) are a fast path that
skips re-reading a file seen unchanged in this process (a per-file memo), and a content hash (xxh3, through
:mod:`job_orchestra.value_hash`) decides. A touched but unchanged file therefore changes nothing, and a
directory of 10,000 files is re-read only for the files whose size, date or inode moved. A file modified
within :data:`RACY_NS` of being hashed is not memoised (its date may not move on the next write).

The plan (:mod:`job_orchestra.staleness`) asks :func:`scan` for a step's files and :func:`change_reason`
for the words of a stale row, ``file data/meta.csv changed``; what the files were is kept per plan in this
process, and in the record of a reader's fingerprint for inputs of up to :data:`RECORDED_FILES` files.
"""

from __future__ import annotations

import glob
import json
import os
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from .errors import FileInputError
from .value_hash import digest, new_hasher

__all__ = [
    "FILES_KEY",
    "FileSpec",
    "Manifest",
    "change_reason",
    "earlier_files",
    "file_digest",
    "output_of",
    "record_of",
    "remember",
    "scan",
]

FILES_KEY = "_jo_files"
"""The attribute of a file-input step holding its :class:`FileSpec` (``_jo_`` keys are not parameters)."""
RACY_NS = 2_000_000_000
"""A file whose modification time is this close to the moment it is hashed is re-read at the next check:
file systems with coarse dates could see a second write within the same tick (git calls this "racy")."""
RECORDED_FILES = 1000
"""Inputs with up to this many files list them (8 hex digits each) in their readers' fingerprint records,
so a fresh process can still say which files changed."""
_CHUNK = 1 << 20
_SHOWN = 2  # names shown in a reason before "+N more"


@dataclass(frozen=True)
class FileSpec:
    """What a file input reads: ``given`` exactly as the user wrote it (a file, a directory or a glob)."""

    given: str

    @property
    def is_glob(self) -> bool:
        return glob.has_magic(self.given)


class Manifest(NamedTuple):
    """The files of an input as they stand: shown path -> content digest, in path order, and their total."""

    kind: str  # "file", "directory" or "glob"
    files: dict[str, str]
    total: str


# -- hashing, with the per-file memo ---------------------------------------------------------------------
_memo: dict[str, tuple[int, int, int, int, str]] = {}  # absolute path -> (size, mtime_ns, ctime_ns, inode, digest)
_memo_lock = threading.Lock()


def _hash_file(path: str) -> str:
    """The content digest of one file (32 hex digits), read in 1 MiB chunks."""
    h = new_hasher()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str, st: os.stat_result | None = None, absolute: bool = False) -> str:
    """The content digest of ``path``, re-read only when its size, ``mtime_ns``, ``ctime_ns`` or inode moved
    since this process last read it (or when that read was too close to a write to be trusted). The change
    time cannot be set back by ``os.utime``, so an edit whose date was restored is still seen. ``absolute``:
    ``path`` is already absolute (the memo's key)."""
    if st is None:
        st = os.stat(path)
    key = path if absolute else os.path.abspath(path)
    seen = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    entry = _memo.get(key)
    if entry is not None and entry[:4] == seen:
        return entry[4]
    started = time.time_ns()
    value = _hash_file(path)
    after = os.stat(path)
    if (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
        after.st_ino,
    ) == seen and st.st_mtime_ns < started - RACY_NS:
        with _memo_lock:
            _memo[key] = (*seen, value)
    elif entry is not None:
        with _memo_lock:
            _memo.pop(key, None)
    return value


# -- listing ---------------------------------------------------------------------------------------------
def _join(base: str, name: str) -> str:
    return name if base in ("", ".") else base.rstrip("/" + os.sep) + "/" + name


def _walk(top: str, shown: str, out: list[tuple[str, str, os.stat_result]], owner: str) -> None:
    """Every file under ``top`` (following links to files, not to directories), appended to ``out``."""
    stack = [(top, shown)]
    while stack:
        path, label = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)  # in any order: the listing is sorted by path afterwards
        except FileNotFoundError:
            continue  # removed while being listed: its files are gone (and said so)
        except OSError as exc:  # unreadable: never leave its files out silently
            raise FileInputError(
                f"{owner}: cannot list the directory {label!r} ({type(exc).__name__}: {exc.strerror}). Make it "
                "readable, or give Step.from_file() a glob that leaves it out.",
                owner,
                label,
            ) from None
        subdirs = []
        for entry in entries:
            name = _join(label, entry.name)
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append((entry.path, name))
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue  # a dangling link or a file removed meanwhile
            if stat.S_ISREG(st.st_mode):
                out.append((entry.path, name, st))
        stack.extend(subdirs)


def _list(spec: FileSpec, owner: str) -> tuple[str, list[tuple[str, str, os.stat_result]]]:
    """``(kind, [(absolute path, shown path, stat)])`` of an input, or a FileInputError naming ``owner``."""
    given = spec.given
    found: list[tuple[str, str, os.stat_result]] = []
    if spec.is_glob:
        for match in sorted(glob.glob(given, recursive=True)):
            if os.path.isdir(match):
                _walk(os.path.abspath(match), match, found, owner)
            elif os.path.isfile(match):
                found.append((os.path.abspath(match), match, os.stat(match)))
        if not found:
            raise FileInputError(
                f"{owner}: the pattern {given!r} matches no file{_where(given)}. A pipeline does not run on an "
                "empty list by accident: check the pattern, or create the files before planning.",
                owner,
                given,
            )
        found.sort(key=lambda item: item[1])
        return "glob", found
    if os.path.isdir(given):
        _walk(os.path.abspath(given), given.rstrip("/" + os.sep) or given, found, owner)
        if not found:
            raise FileInputError(
                f"{owner}: the directory {given!r} holds no file{_where(given)}. A pipeline does not run on an "
                "empty list by accident: add the files, or point Step.from_file() at another directory.",
                owner,
                given,
            )
        found.sort(key=lambda item: item[1])
        return "directory", found
    try:
        st = os.stat(given)
    except OSError as exc:
        raise FileInputError(
            f"{owner}: the data file {given!r} does not exist{_where(given)} ({type(exc).__name__}). Create it, "
            "or fix the path given to Step.from_file().",
            owner,
            given,
        ) from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end: not data
        raise FileInputError(
            f"{owner}: {given!r} is not a regular file (nor a directory). Step.from_file() reads files, "
            "directories of files and globs.",
            owner,
            given,
        )
    return "file", [(os.path.abspath(given), given, st)]


def _where(given: str) -> str:
    return "" if os.path.isabs(given) else f" (relative to the working directory {os.getcwd()})"


# -- what the plan asks for ------------------------------------------------------------------------------
_history: OrderedDict[tuple[str, str, str], dict[str, str]] = OrderedDict()  # (cwd, given, total[:8]) -> files
_HISTORY = 64


def scan(spec: FileSpec, owner: str) -> Manifest:
    """The files of ``spec`` and their digests now (raises FileInputError naming ``owner`` when there are none)."""
    kind, found = _list(spec, owner)
    files = {}
    for path, shown, st in found:
        try:
            files[shown] = file_digest(path, st, True)
        except OSError as exc:  # unreadable, or removed since it was listed
            raise FileInputError(
                f"{owner}: cannot read the data file {shown!r} ({type(exc).__name__}: {exc.strerror}).",
                owner,
                shown,
            ) from None
    total = digest(json.dumps([kind, list(files.items())], separators=(",", ":")).encode("utf-8", "surrogatepass"))
    return Manifest(kind, files, total)


def remember(spec: FileSpec, step_total: str, manifest: Manifest) -> None:
    """Keep what the files were when the input step's fingerprint total was ``step_total``, so that a later
    plan in this process can say which files changed (readers record that total's first 8 hex digits)."""
    key = (os.getcwd(), spec.given, step_total[:8])
    with _memo_lock:
        _history[key] = manifest.files
        _history.move_to_end(key)
        while len(_history) > _HISTORY:
            _history.popitem(last=False)


def output_of(spec: FileSpec, owner: str) -> str | list[str]:
    """A file input's output: the path as given for a file, else the sorted list of the files' paths."""
    kind, found = _list(spec, owner)
    return spec.given if kind == "file" else [shown for _, shown, _ in found]


def record_of(manifest: Manifest) -> dict[str, str] | int:
    """What a reader's fingerprint record keeps of an input: its files (8 hex digits each), or their count
    when there are more than :data:`RECORDED_FILES`."""
    if len(manifest.files) > RECORDED_FILES:
        return len(manifest.files)
    return {path: d[:8] for path, d in manifest.files.items()}


def earlier_files(spec: FileSpec, total8: str, recorded: object) -> dict[str, str] | None:
    """The files the input had when its total began with ``total8`` (8 hex digits each): from the reader's
    record, else from this process's plans, else None (not known)."""
    if isinstance(recorded, dict):
        return {str(k): str(v) for k, v in recorded.items()}
    files = _history.get((os.getcwd(), spec.given, total8))
    return None if files is None else {path: d[:8] for path, d in files.items()}


def change_reason(spec: FileSpec, before: dict[str, str] | None, now: Manifest, recorded: object = None) -> str:
    """The words of a stale row: ``file data/meta.csv changed``, ``file data/b.csv added``,
    ``3 files changed: data/a.csv, data/b.csv (new), +1 more``; ``recorded`` is what the reader's record
    kept of the input (its files, or their count when there were too many to list)."""
    if before is None:
        if now.kind == "file":
            return f"file {spec.given} changed"
        if isinstance(recorded, int):
            return (
                f"files of {spec.given} changed (which ones is not recorded for inputs of over {RECORDED_FILES} "
                "files, and this process did not plan the earlier ones)"
            )
        return f"files of {spec.given} changed"
    after = {path: d[:8] for path, d in now.files.items()}
    changed = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old is None:
            changed.append((path, "added", " (new)"))
        elif new is None:
            changed.append((path, "removed", " (removed)"))
        elif old != new:
            changed.append((path, "changed", ""))
    if not changed:  # the same files and digests, in another kind of listing (a file became a directory...)
        return f"files of {spec.given} changed"
    if len(changed) == 1:
        path, verb, _ = changed[0]
        return f"file {path} {verb}"
    shown = ", ".join(path + note for path, _, note in changed[:_SHOWN])
    more = f", +{len(changed) - _SHOWN} more" if len(changed) > _SHOWN else ""
    return f"{len(changed)} files changed: {shown}{more}"
