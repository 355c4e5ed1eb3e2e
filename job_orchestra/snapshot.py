"""Context snapshots: a directory with a JSON manifest and one dill file per top-level key.

Writing is atomic: everything goes to a temporary sibling directory which is renamed into place only
once complete, so a crash leaves either nothing or a whole snapshot at the target path. Each entry carries
a SHA-256 checksum in the manifest, verified when the entry is first read.
"""

from __future__ import annotations

import datetime
import errno
import glob
import hashlib
import hmac
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import dill

from .errors import SnapshotError, SnapshotExistsError, UnserializableValueError

if TYPE_CHECKING:
    from .context import Context
    from .step import Step

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "load", "store"]

MANIFEST = "manifest.json"
FORMAT = "job-orchestra-snapshot"
FORMAT_VERSION = 1
_CONTEXT_PID = "job-orchestra:stored-context"


class _HashingWriter:
    """A file wrapper that hashes and counts what goes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.raw.write(data)


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in ("job-orchestra", "dill", "numpy", "pandas"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _strip_hidden(value: Any) -> Any:
    """A copy of nested dicts without keys starting with "." (1.1 never stored those)."""
    if not isinstance(value, dict):
        return value
    if not any(isinstance(k, str) and k.startswith(".") for k in dict.keys(value)) and not any(
        isinstance(v, dict) for v in dict.values(value)
    ):
        return value
    kept = {k: _strip_hidden(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("."))}
    try:
        new = type(value)()
    except TypeError:
        return kept
    dict.update(new, kept)
    return new


def _key_record(key: Any) -> dict[str, Any]:
    if isinstance(key, str):
        return {"key": key, "key_type": "str"}
    if isinstance(key, bool) or not isinstance(key, int):
        return {"key": repr(key), "key_type": "dill", "key_dill": dill.dumps(key).hex()}
    return {"key": key, "key_type": "int"}


def _key_from_record(record: dict[str, Any]) -> Any:
    kind = record.get("key_type", "str")
    if kind == "dill":
        return dill.loads(bytes.fromhex(record["key_dill"]))
    return record["key"]


_SIGNATURE = "manifest.hmac"
_SIGNATURE_SCHEME = "hmac-sha256"


def _check_key(key: object, action: str) -> bytes | None:
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


def _check_path(path: object, action: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"{action}: path must be a str or a pathlib.Path, got {type(path).__name__} ({path!r}).")
    if not str(os.fspath(path)):
        raise ValueError(f"{action}: path is empty; give the directory of the snapshot.")
    return Path(path)


def _signature(manifest_bytes: bytes, key: bytes) -> str:
    return hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Pickler(dill.Pickler):
    """dill's pickler for snapshots: code defined in a notebook (``__main__``) is carried by value, with
    only the globals it uses (``recurse=True``), so a fresh process can run it."""

    def __init__(self, file: Any, **kwargs: Any) -> None:
        kwargs.setdefault("protocol", dill.HIGHEST_PROTOCOL)
        kwargs.setdefault("recurse", True)
        super().__init__(file, **kwargs)


def _persistent(pickler: Any, context: Context | None) -> None:
    if context is not None:
        pickler.persistent_id = lambda obj: _CONTEXT_PID if obj is context else None


def _write(value: Any, file: Any, context: Context | None, first: str, reset: Any) -> str:
    """Pickle ``value`` into ``file`` with dill or cloudpickle (``first``), falling back to the other.

    Both carry notebook code by value and both streams load with dill. dill serializes more kinds of
    objects; cloudpickle names library functions reliably, where dill's ``recurse`` walk can wander into a
    library (scikit-learn's decorated functions) until the recursion limit. Pipelines try cloudpickle
    first, values dill first.
    """
    import cloudpickle

    makers = {
        "dill": lambda f: Pickler(f),
        "cloudpickle": lambda f: cloudpickle.Pickler(f, protocol=dill.HIGHEST_PROTOCOL),
    }
    order = [first, *(name for name in makers if name != first)]
    for attempt, name in enumerate(order):
        pickler = makers[name](file)
        _persistent(pickler, context)
        try:
            pickler.dump(value)
            return name
        except Exception:
            if attempt == len(order) - 1:
                raise
            reset()
    raise AssertionError("unreachable")


def _rewind(raw: BinaryIO, writer: _HashingWriter | None = None) -> Any:
    start = raw.tell()

    def reset() -> None:
        raw.seek(start)
        raw.truncate()
        if writer is not None:
            writer.hash = hashlib.sha256()
            writer.size = 0

    return reset


def dump(value: Any, file: BinaryIO) -> str:
    """Pickle ``value`` into a seekable binary file as snapshots do; returns the pickler used."""
    return _write(value, file, None, "dill", _rewind(file))


def _dump(value: Any, file: Path, *, context: Context | None = None) -> tuple[int, str]:
    with open(file, "wb") as raw:
        writer = _HashingWriter(raw)
        _write(value, writer, context, "cloudpickle" if context is not None else "dill", _rewind(raw, writer))
        raw.flush()
        os.fsync(raw.fileno())
    return writer.size, writer.hash.hexdigest()


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.jo-tmp."


def _remove_abandoned(target: Path, parent: Path) -> None:
    """Remove temporary siblings left by a store() of this target that was killed (its process is gone)."""
    host = platform.node().replace(".", "_")
    for entry in parent.glob(glob.escape(_temp_prefix(target)) + "*"):
        parts = entry.name[len(_temp_prefix(target)) :].split(".")
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def store(
    ctx: Context,
    path: str | os.PathLike[str],
    *,
    pipeline: Step | None = None,
    key: bytes | str | None = None,
) -> Path:
    """Write ``ctx`` (and optionally the pipeline of ``pipeline``) to a new snapshot directory."""
    from .step import Step

    target = _check_path(path, "Context.store()")
    secret = _check_key(key, "Context.store()")
    if pipeline is not None and not isinstance(pipeline, Step):
        raise TypeError(
            f"Context.store(): pipeline= takes the head Step of the pipeline, got {type(pipeline).__name__}."
        )
    if target.exists() or target.is_symlink():
        kind = "a directory" if target.is_dir() else "a file"
        raise SnapshotExistsError(
            f"Cannot store the Context at {str(target)!r}: that path exists already ({kind}). Choose a new path "
            "or remove the old snapshot first (store() never overwrites)."
        )
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
    _remove_abandoned(target, parent)
    host = platform.node().replace(".", "_")
    tmp = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(target)}{host}.{os.getpid()}.", suffix=".tmp", dir=parent))
    try:
        (tmp / "entries").mkdir()
        entries = []
        for index, k in enumerate(list(dict.keys(ctx))):
            if isinstance(k, str) and k.startswith("."):
                continue
            value = ctx[k]
            file = Path("entries") / f"{index:06d}.dill"
            try:
                size, digest = _dump(_strip_hidden(value), tmp / file)
            except OSError as exc:
                exc.add_note(f"job-orchestra: while writing the Context entry {k!r} to {str(target)!r}.")
                raise
            except Exception as exc:
                raise UnserializableValueError(
                    f"Cannot store the Context entry {k!r} (a {type(value).__module__}.{type(value).__qualname__}): "
                    f"dill cannot serialize it ({type(exc).__name__}: {exc}). Nothing was stored at "
                    f"{str(target)!r}. Remove the entry, or hide it from snapshots with a key starting with '.'.",
                    k,
                ) from exc
            record = _key_record(k)
            record.update(
                file=file.as_posix(),
                size=size,
                sha256=digest,
                type=f"{type(value).__module__}.{type(value).__qualname__}",
                fingerprint=ctx.fingerprint(k),
            )
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
            try:
                size, digest = _dump(pipeline, tmp / "pipeline.dill", context=ctx)
            except OSError as exc:
                exc.add_note(f"job-orchestra: while writing the pipeline of {str(pipeline)!r} to {str(target)!r}.")
                raise
            except Exception as exc:
                raise UnserializableValueError(
                    f"Cannot store the pipeline of {str(pipeline)!r}: dill cannot serialize it "
                    f"({type(exc).__name__}: {exc}). Nothing was stored at {str(target)!r}.",
                    "pipeline",
                ) from exc
            manifest["pipeline"] = {"file": "pipeline.dill", "size": size, "sha256": digest, "head": str(pipeline)}
        body = json.dumps(manifest, indent=2, default=str).encode()
        if secret is not None:
            _write_synced(tmp / _SIGNATURE, f"{_SIGNATURE_SCHEME} {_signature(body, secret)}\n".encode())
        _write_synced(tmp / MANIFEST, body)  # written last: a directory without it is never a snapshot
        _fsync_dir(tmp / "entries")
        _fsync_dir(tmp)
        if target.exists():
            raise SnapshotExistsError(
                f"{str(target)!r} appeared while the snapshot was being written; nothing was changed there."
            )
        os.rename(tmp, target)
        _fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, SnapshotError):
            reason = "the disk is full" if exc.errno == errno.ENOSPC else "writing failed"
            exc.add_note(
                f"job-orchestra: {reason}; nothing was stored at {str(target)!r} (the partial copy was removed)."
            )
        raise
    return target


def _write_synced(file: Path, data: bytes) -> None:
    with open(file, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


_CHUNK = 1 << 22


class _EntryLoader:
    """Reads one entry on first access, after checking its size and SHA-256 against the manifest."""

    def __init__(self, root: Path, record: dict[str, Any], label: str, context: Context | None = None) -> None:
        self.root = root
        self.record = record
        self.label = label
        self.context = context

    def _damaged(self, file: Path, why: str) -> SnapshotError:
        return SnapshotError(
            f"Snapshot {str(self.root)!r}: {self.label} is damaged: {why} (file {str(file)!r}). The snapshot was "
            "changed or truncated after it was written; restore it from a copy, or delete the entry with "
            "del ctx[key] and compute it again."
        )

    def __call__(self) -> Any:
        name = self.record.get("file")
        if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
            raise SnapshotError(f"Snapshot {str(self.root)!r}: {self.label} has an invalid file name {name!r}.")
        file = self.root / name
        expected_size = self.record.get("size")
        expected = self.record.get("sha256")
        try:
            with open(file, "rb") as f:
                digest = hashlib.sha256()
                size = 0
                while chunk := f.read(_CHUNK):  # verify before unpickling anything
                    digest.update(chunk)
                    size += len(chunk)
                if isinstance(expected_size, int) and size != expected_size:
                    raise self._damaged(file, f"it has {size} bytes, the manifest says {expected_size}")
                if not expected or digest.hexdigest() != expected:
                    raise self._damaged(file, "its SHA-256 checksum does not match the manifest")
                f.seek(0)
                unpickler = dill.Unpickler(f)
                if self.context is not None:
                    unpickler.persistent_load = self._persistent_load  # type: ignore[method-assign]
                try:
                    return unpickler.load()
                except Exception as exc:
                    raise SnapshotError(
                        f"Snapshot {str(self.root)!r}: {self.label} (file {str(file)!r}) is intact but cannot be "
                        f"read back: {type(exc).__name__}: {exc}. Its value may need a module or class that is not "
                        "importable here: import or define it, then access the entry again."
                    ) from exc
        except FileNotFoundError:
            raise SnapshotError(
                f"Snapshot {str(self.root)!r}: the file {str(file)!r} of {self.label} is missing. Restore the "
                "snapshot from a copy, or delete the entry and compute it again."
            ) from None

    def _persistent_load(self, pid: Any) -> Any:
        if pid == _CONTEXT_PID:
            return self.context
        raise SnapshotError(f"Snapshot {str(self.root)!r}: unknown persistent reference {pid!r}")


def load(cls: type[Context], path: str | os.PathLike[str], *, key: bytes | str | None = None) -> Context:
    """Open a snapshot directory; entries are read and verified when first accessed."""
    from .context import LazyEntry

    root = _check_path(path, "Context.load()")
    secret = _check_key(key, "Context.load()")
    if not root.exists():
        raise FileNotFoundError(f"No snapshot at {str(root)!r}: the path does not exist.")
    if not root.is_dir():
        raise SnapshotError(
            f"{str(root)!r} is a file, not a snapshot: Context.store() writes a directory; pass that directory."
        )
    manifest_file = root / MANIFEST
    if not manifest_file.is_file():
        if (root / "master_record.json").is_file():
            if secret is not None:
                raise SnapshotError(
                    f"{str(root)!r} is a job-orchestra 1.1 snapshot, which cannot be signed, but key= was given: "
                    "refusing to load it. Load it without key= if you trust it."
                )
            from .legacy import load_legacy

            return load_legacy(cls, root)
        if not any(root.iterdir()):
            raise SnapshotError(f"{str(root)!r} is an empty directory, not a snapshot written by Context.store().")
        raise SnapshotError(
            f"{str(root)!r} is not a job-orchestra snapshot: it has no {MANIFEST} (nor 1.1's master_record.json). "
            "Pass the directory that Context.store() wrote."
        )
    body = manifest_file.read_bytes()
    if secret is not None:
        sig_file = root / _SIGNATURE
        if not sig_file.is_file():
            raise SnapshotError(
                f"Snapshot {str(root)!r} is not signed, but key= was given: refusing to load it. Store it again "
                "with store(path, key=...) or load it without key= if you trust it."
            )
        scheme, _, signature = sig_file.read_text(errors="replace").strip().partition(" ")
        if scheme != _SIGNATURE_SCHEME or not hmac.compare_digest(signature, _signature(body, secret)):
            raise SnapshotError(
                f"Snapshot {str(root)!r}: its signature does not match: the snapshot was altered after it was "
                "signed, or it was signed with another key. Refusing to load it."
            )
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise SnapshotError(f"Snapshot {str(root)!r}: {MANIFEST} is damaged ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{str(root)!r}: {MANIFEST} is not a job-orchestra snapshot manifest.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SnapshotError(
            f"Snapshot {str(root)!r} has format version {version}, newer than this job-orchestra understands "
            f"({FORMAT_VERSION}); upgrade job-orchestra to read it."
        )
    records = manifest.get("entries", [])
    if not isinstance(records, list) or not all(isinstance(r, dict) and "file" in r for r in records):
        raise SnapshotError(f"Snapshot {str(root)!r}: the entries of {MANIFEST} are damaged.")
    ctx = cls()
    dict.clear(ctx)
    for record in records:
        try:
            k = _key_from_record(record)
        except Exception as exc:
            raise SnapshotError(
                f"Snapshot {str(root)!r}: the key {record.get('key')!r} cannot be read back ({exc})."
            ) from exc
        label = f"the entry {k!r}"
        loader = _EntryLoader(root, record, label)
        dict.__setitem__(ctx, k, LazyEntry(loader, f"{record.get('type', '?')}, {record.get('size', '?')} bytes"))
        if isinstance(record.get("fingerprint"), str):
            ctx._fingerprints[k] = record["fingerprint"]
            if isinstance(record.get("seconds"), (int, float)):
                ctx._durations[k] = (record["fingerprint"], float(record["seconds"]))
        elif isinstance(record.get("given"), str):
            ctx._given[k] = record["given"]
    if manifest.get("pipeline"):
        loader = _EntryLoader(root, manifest["pipeline"], "the stored pipeline", context=ctx)
        object.__setattr__(ctx, "_pipeline", LazyEntry(loader, "pipeline"))
    return ctx
