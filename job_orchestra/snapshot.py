"""Context snapshots: a directory with a JSON manifest and one dill file per top-level key.

Writing is atomic: everything goes to a temporary sibling directory which is renamed into place only
once complete, so a crash leaves either nothing or a whole snapshot at the target path. Each entry carries
a SHA-256 checksum in the manifest, verified when the entry is first read.
"""

from __future__ import annotations

import datetime
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


def _signature(manifest_bytes: bytes, key: bytes | str) -> str:
    if isinstance(key, str):
        key = key.encode()
    return hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump(value: Any, file: Path, *, context: Context | None = None) -> tuple[int, str]:
    with open(file, "wb") as raw:
        writer = _HashingWriter(raw)
        pickler = dill.Pickler(writer, protocol=dill.HIGHEST_PROTOCOL, recurse=True)
        if context is not None:
            pickler.persistent_id = lambda obj: _CONTEXT_PID if obj is context else None  # type: ignore[method-assign]
        pickler.dump(value)
        raw.flush()
        os.fsync(raw.fileno())
    return writer.size, writer.hash.hexdigest()


def store(
    ctx: Context,
    path: str | os.PathLike[str],
    *,
    pipeline: Step | None = None,
    key: bytes | str | None = None,
) -> Path:
    """Write ``ctx`` (and optionally the pipeline of ``pipeline``) to a new snapshot directory."""
    target = Path(path)
    if target.exists() or target.is_symlink():
        raise SnapshotExistsError(
            f"Cannot store the Context at {str(target)!r}: that path exists already. Choose a new path "
            "or remove the old snapshot first (store() never overwrites)."
        )
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"Cannot store the Context at {str(target)!r}: {str(parent)!r} is not a directory.")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    try:
        (tmp / "entries").mkdir()
        entries = []
        for index, (k, value) in enumerate(ctx.items()):
            if isinstance(k, str) and k.startswith("."):
                continue
            file = Path("entries") / f"{index:06d}.dill"
            try:
                size, digest = _dump(_strip_hidden(value), tmp / file)
            except OSError as exc:
                exc.add_note(
                    f"job-orchestra: while writing the Context entry {k!r} to {str(target)!r}; nothing was stored."
                )
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
            entries.append(record)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "packages": _versions(),
            "entries": entries,
            "pipeline": None,
        }
        if pipeline is not None:
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
            manifest["pipeline"] = {"file": "pipeline.dill", "size": size, "sha256": digest, "head": str(pipeline)}
        body = json.dumps(manifest, indent=2, default=str).encode()
        if key is not None:
            (tmp / "manifest.hmac").write_text(_signature(body, key))
        with open(tmp / MANIFEST, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp / "entries")
        _fsync_dir(tmp)
        if target.exists():
            raise SnapshotExistsError(
                f"{str(target)!r} appeared while the snapshot was being written; nothing was changed there."
            )
        os.rename(tmp, target)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


class _EntryLoader:
    """Reads one entry on first access and checks its checksum first."""

    def __init__(self, root: Path, record: dict[str, Any], label: str, context: Context | None = None) -> None:
        self.root = root
        self.record = record
        self.label = label
        self.context = context

    def __call__(self) -> Any:
        file = self.root / self.record["file"]
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(
                f"Snapshot {str(self.root)!r}: the file {str(file)!r} of {self.label} is missing."
            ) from None
        expected = self.record.get("sha256")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise SnapshotError(
                f"Snapshot {str(self.root)!r}: {self.label} is damaged ({str(file)!r} has "
                f"{len(data)} bytes, expected {self.record.get('size')}, and its checksum does not match)."
            )
        try:
            if self.context is None:
                return dill.loads(data)
            import io

            unpickler = dill.Unpickler(io.BytesIO(data))
            unpickler.persistent_load = self._persistent_load  # type: ignore[method-assign]
            return unpickler.load()
        except Exception as exc:
            raise SnapshotError(
                f"Snapshot {str(self.root)!r}: {self.label} ({str(file)!r}) cannot be read back: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _persistent_load(self, pid: Any) -> Any:
        if pid == _CONTEXT_PID:
            return self.context
        raise SnapshotError(f"Snapshot {str(self.root)!r}: unknown persistent reference {pid!r}")


def load(cls: type[Context], path: str | os.PathLike[str], *, key: bytes | str | None = None) -> Context:
    """Open a snapshot directory; entries are read and verified when first accessed."""
    from .context import LazyEntry

    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"No snapshot at {str(root)!r}: the path does not exist.")
    if not root.is_dir():
        raise SnapshotError(f"{str(root)!r} is a file, not a snapshot directory written by Context.store().")
    manifest_file = root / MANIFEST
    if not manifest_file.exists():
        if (root / "master_record.json").exists():
            from .legacy import load_legacy

            return load_legacy(cls, root)
        raise SnapshotError(
            f"{str(root)!r} is not a job-orchestra snapshot: it has no {MANIFEST} (nor 1.1's master_record.json)."
        )
    body = manifest_file.read_bytes()
    if key is not None:
        sig_file = root / "manifest.hmac"
        if not sig_file.exists():
            raise SnapshotError(f"Snapshot {str(root)!r} is not signed, but a key was given: refusing to load it.")
        if not hmac.compare_digest(sig_file.read_text().strip(), _signature(body, key)):
            raise SnapshotError(f"Snapshot {str(root)!r}: the signature does not match (altered, or another key).")
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
    ctx = cls()
    dict.clear(ctx)
    for record in manifest.get("entries", []):
        k = _key_from_record(record)
        label = f"the entry {k!r}"
        loader = _EntryLoader(root, record, label)
        dict.__setitem__(ctx, k, LazyEntry(loader, f"{record.get('type', '?')}, {record.get('size', '?')} bytes"))
        if record.get("fingerprint"):
            ctx._fingerprints[k] = record["fingerprint"]
    if manifest.get("pipeline"):
        loader = _EntryLoader(root, manifest["pipeline"], "the stored pipeline", context=ctx)
        object.__setattr__(ctx, "_pipeline", LazyEntry(loader, "pipeline"))
    return ctx
