"""Context snapshots: a directory with a JSON manifest and one pickle file per top-level key.

Writing is atomic: everything goes to a temporary sibling directory which is renamed into place only once
complete, so a crash leaves either nothing or a whole snapshot at the target path, and the next store() in
that directory removes what a killed one left (see :mod:`job_orchestra.snapshot_files`). ``store()`` never
replaces anything; ``store(..., replace=True)`` (the command line's ``--snapshot``) replaces only a
job-orchestra snapshot or an empty directory, atomically, keeping the old one until the new one is complete.
Reading is in :mod:`job_orchestra.snapshot_load`; the manifest's schema in :mod:`job_orchestra.manifest`.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import platform
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache_index import MARKER as CACHE_MARKER
from .errors import (
    HiddenKeyError,
    SnapshotError,
    SnapshotExistsError,
    SnapshotWriteError,
    UnserializableValueError,
)
from .graph import Node
from .manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SIGNATURE,
    SIGNATURE_SCHEME,
    check_key,
    check_path,
    entry_record,
    looks_like_manifest,
    parse,
    signature,
)
from .snapshot_files import (
    MARKER,
    UnsafeFile,
    exchange,
    make_temp,
    read_file,
    remove_abandoned,
    remove_temp,
    rename_noreplace,
)
from .snapshot_load import load
from .snapshot_pickle import dump, is_hidden
from .value_codec import encode

if TYPE_CHECKING:
    from .context import Context
    from .step import Step

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "dump", "load", "store"]


def _versions() -> dict[str, str | None]:
    """The versions of the libraries that pickled the values: job-orchestra, dill, and numpy and pandas when
    they are imported (a value can need them only then). Read from the modules themselves: reading package
    metadata costs milliseconds per package on every store."""
    out: dict[str, str | None] = {"job-orchestra": sys.modules[__package__].__version__}  # loaded before us
    for dist, module in (("dill", "dill"), ("numpy", "numpy"), ("pandas", "pandas")):
        version = getattr(sys.modules.get(module), "__version__", None)
        if isinstance(version, str):
            out[dist] = version
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(file: Path, data: bytes) -> None:
    with open(file, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _dump(value: Any, file: Path, *, context: Context | None = None) -> tuple[int, dict[str, Any]]:
    """Write one entry (see :mod:`job_orchestra.value_codec`); its size and its record's digest fields."""
    first = "cloudpickle" if context is not None else "dill"
    encoded = encode(value, context=context, first=first, hide=context is None)
    with open(file, "wb", buffering=0) as raw:
        fields = encoded.write_to(raw)
        os.fsync(raw.fileno())
    return encoded.nbytes, fields


_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or store the snapshot elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or store the snapshot elsewhere",
    errno.EFBIG: "the file is larger than the file system or this process (RLIMIT_FSIZE) allows",
    errno.EROFS: "the file system is read-only: store the snapshot elsewhere",
    errno.EACCES: "permission denied: store the snapshot in a directory you may write to",
    errno.EPERM: "the operation is not permitted: store the snapshot in a directory you may write to",
}


def _os_error(exc: OSError, what: str, target: Path) -> SnapshotWriteError:
    """The OSError ``exc`` told as what it is, naming what was being written; nothing was left behind."""
    code = exc.errno or 0
    name = errno.errorcode.get(code, "unknown error")
    hint = _HINTS.get(code)
    message = (
        f"Cannot store the Context at {str(target)!r}: writing {what} failed with {name} "
        f"({exc.strerror or exc}){': ' + hint if hint else ''}. Nothing was stored there (the partial copy was "
        "removed)."
    )
    return SnapshotWriteError(code, message)


def check_replaceable(target: Path, replace: bool) -> tuple[str, os.stat_result] | None:
    """None when ``target`` is free; else what ``replace=True`` may replace there; SnapshotExistsError for
    anything job-orchestra did not write (a file, a symbolic link, another directory, a 1.1 snapshot)."""
    try:
        info = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):  # (the parent's problems are told by store())
        return None
    where = f"Cannot store the Context at {str(target)!r}"
    if not replace:
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a file"
        raise SnapshotExistsError(
            f"{where}: that path exists already ({kind}). Choose a new path or remove the old snapshot first "
            "(store() never overwrites)."
        )
    advice = "Choose another path, or move or delete it yourself if you no longer need it."
    if stat.S_ISLNK(info.st_mode):
        raise SnapshotExistsError(f"{where}: it is a symbolic link, which is never replaced. {advice}")
    if not stat.S_ISDIR(info.st_mode):
        raise SnapshotExistsError(f"{where}: it is a file, not a snapshot directory; it is never replaced. {advice}")
    names = sorted(os.listdir(target))
    if not names:
        return "empty", info
    try:
        body = read_file(target, MANIFEST, limit=1 << 26)
        ours = looks_like_manifest(body)
    except (OSError, UnsafeFile):
        ours = False
    if not ours:
        what = "a job-orchestra 1.1 snapshot" if "master_record.json" in names else "not a job-orchestra snapshot"
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise SnapshotExistsError(
            f"{where}: that directory is {what} (it holds {shown}); only a snapshot written by job-orchestra 2 "
            f"is replaced. {advice}"
        )
    try:
        foreign = _not_written_by_store(target, parse(body, repr(str(target))))
    except SnapshotError as exc:
        raise SnapshotExistsError(f"{where}: {exc} Only a whole, readable snapshot is replaced. {advice}") from None
    if foreign:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        cache = ""
        if CACHE_MARKER in foreign:
            cache = " (it is also used as a cache: Context.open() added cache.json and index/)"
        raise SnapshotExistsError(
            f"{where}: that directory is a job-orchestra snapshot, but it also holds what store() did not write: "
            f"{shown}{cache}. Replacing it would delete them. {advice}"
        )
    return "snapshot", info


def _not_written_by_store(target: Path, manifest: dict[str, Any]) -> list[str]:
    """The paths in the snapshot directory ``target`` that store() did not write (by its ``manifest``):
    replacing the directory must not delete a user's notes, or a cache opened in it."""
    files = {record["file"] for record in manifest["entries"]}
    if manifest["pipeline"] is not None:
        files.add(manifest["pipeline"]["file"])
    top = {MANIFEST, SIGNATURE, MARKER} | {f for f in files if "/" not in f}
    inside = {f.partition("/")[2] for f in files if f.startswith("entries/")}
    foreign = []
    for entry in os.scandir(target):
        if entry.name == "entries" and entry.is_dir(follow_symlinks=False):
            foreign += [f"entries/{e.name}" for e in os.scandir(entry.path) if not _plain(e, inside)]
        elif not _plain(entry, top):
            foreign.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
    return sorted(foreign)


def _plain(entry: os.DirEntry, allowed: set[str]) -> bool:
    return entry.name in allowed and entry.is_file(follow_symlinks=False)


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _put_in_place(tmp: Path, target: Path, existing: tuple[str, os.stat_result] | None) -> None:
    """Move the complete snapshot ``tmp`` to ``target``: never over anything but what was checked.

    ``tmp`` keeps our marker until it has left its temporary name, so a kill at any moment leaves only
    directories the next store() can prove are ours; the marker is removed from ``target`` afterwards.
    """
    changed = SnapshotExistsError(
        f"{str(target)!r} changed while the snapshot was being written; nothing was changed there."
    )
    try:
        if existing is not None and not _same(os.lstat(target), existing[1]):
            raise changed
        if existing is None:
            rename_noreplace(tmp, target)
        elif existing[0] == "empty":
            os.rename(tmp, target)  # replaces an empty directory only (ENOTEMPTY otherwise)
        else:
            (target / MARKER).write_text("a previous snapshot, being replaced\n")  # ours once moved aside
            exchange(tmp, target)
    except (FileExistsError, OSError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        if isinstance(exc, FileExistsError) or exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise changed from None
        raise
    if existing is not None and existing[0] == "snapshot":
        if not _same(os.lstat(tmp), existing[1]):  # what was moved aside is not what was checked: put it back
            exchange(tmp, target)
            raise changed
        remove_temp(tmp)  # the previous snapshot, now under the temporary name
    (target / MARKER).unlink(missing_ok=True)


def store(
    ctx: Context,
    path: str | os.PathLike[str],
    *,
    pipeline: Step | None = None,
    key: bytes | str | None = None,
    replace: bool = False,
) -> Path:
    """Write ``ctx`` (and optionally the pipeline of ``pipeline``) to a new snapshot directory.

    ``replace=True`` also accepts an existing job-orchestra snapshot or an empty directory at ``path``.
    """
    target = check_path(path, "Context.store()")
    secret = check_key(key, "Context.store()")
    if pipeline is not None and not isinstance(pipeline, Node):
        raise TypeError(
            f"Context.store(): pipeline= takes the head Step of the pipeline, got {type(pipeline).__name__}."
        )
    existing = check_replaceable(target, replace)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise FileNotFoundError(
            f"Cannot store the Context at {str(target)!r}: the directory {str(parent)!r} does not exist. "
            "Create it first (e.g. Path(...).mkdir(parents=True))."
        )
    if not parent.is_dir():
        raise NotADirectoryError(
            f"Cannot store the Context at {str(target)!r}: {str(parent)!r} is a file, not a directory."
        )
    remove_abandoned(parent)
    try:
        tmp = make_temp(target, parent)
    except OSError as exc:
        raise _os_error(exc, f"a temporary directory in {str(parent)!r}", target) from exc
    what = "the snapshot directory"
    try:
        (tmp / "entries").mkdir()
        entries = []
        for index, k in enumerate(list(dict.keys(ctx))):
            if is_hidden(k):
                continue
            value = ctx[k]
            what = f"the Context entry {k!r}"
            file = f"entries/{index:06d}.dill"
            try:
                size, digest = _dump(value, tmp / file)
            except OSError:
                raise
            except HiddenKeyError as exc:
                raise HiddenKeyError(
                    f"Cannot store the Context entry {k!r}: {exc} Nothing was stored at {str(target)!r}.", k
                ) from exc
            except Exception as exc:
                raise UnserializableValueError(
                    f"Cannot store the Context entry {k!r} (a {type(value).__module__}.{type(value).__qualname__}): "
                    f"dill cannot serialize it ({type(exc).__name__}: {exc}). Nothing was stored at "
                    f"{str(target)!r}. Remove the entry, or hide it from snapshots with a key starting with '.'.",
                    k,
                ) from exc
            record = entry_record(k, file, size, digest, value, ctx.fingerprint(k))
            if record["fingerprint"] is None:  # a value put in by hand: keep the hash of its content
                record["given"] = ctx._value_token(k)
            elif ctx.last_duration(k) is not None:  # how long its run took, for the displays
                record["seconds"] = ctx.last_duration(k)
            entries.append(record)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "packages": _versions(),
            "signed": secret is not None,
            "entries": entries,
            "pipeline": None,
        }
        if pipeline is not None:
            what = f"the pipeline of {str(pipeline)!r}"
            try:
                size, digest = _dump(pipeline, tmp / "pipeline.dill", context=ctx)
            except OSError:
                raise
            except Exception as exc:
                raise UnserializableValueError(
                    f"Cannot store the pipeline of {str(pipeline)!r}: dill cannot serialize it "
                    f"({type(exc).__name__}: {exc}). Nothing was stored at {str(target)!r}.",
                    "pipeline",
                ) from exc
            manifest["pipeline"] = {"file": "pipeline.dill", "size": size, **digest, "head": str(pipeline)}
        what = "the manifest"
        body = json.dumps(manifest, indent=2).encode()
        if secret is not None:
            _write_synced(tmp / SIGNATURE, f"{SIGNATURE_SCHEME} {signature(body, secret)}\n".encode())
        _write_synced(tmp / MANIFEST, body)  # written last: a directory without it is never a snapshot
        _fsync_dir(tmp / "entries")
        _fsync_dir(tmp)
        what = "the snapshot into place"
        _put_in_place(tmp, target, existing)
    except BaseException as exc:
        remove_temp(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, SnapshotError):
            raise _os_error(exc, what, target) from exc
        raise
    try:
        _fsync_dir(parent)
    except OSError:
        pass  # the snapshot is complete; only its durability across a power cut is not confirmed
    return target
