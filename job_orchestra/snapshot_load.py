"""Reading snapshots: the manifest is checked (signature, then schema) before anything else is read, and
every entry is read once into memory (hashed while it is read), verified against the manifest's size and
checksum (BLAKE3, or SHA-256 in older snapshots), and unpickled from that same memory, so a file changed in
between cannot slip through (see :mod:`job_orchestra.value_codec`)."""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import value_codec
from .errors import SnapshotError
from .lazy import LazyEntry
from .legacy import load_legacy
from .manifest import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    SIGNATURE,
    SIGNATURE_SCHEME,
    check_key,
    check_path,
    decode_key,
    parse,
    signature,
)
from .snapshot_files import UnsafeFile, read_file, read_into
from .snapshot_pickle import CONTEXT_PID

if TYPE_CHECKING:
    from .context import Context

__all__ = ["load"]


class _EntryLoader:
    """Reads one entry on first access: its bytes once, checked against the manifest, then unpickled."""

    def __init__(self, root: Path, record: dict[str, Any], label: str, context: Context | None = None) -> None:
        self.root = root
        self.record = record
        self.label = label
        self.context = context

    def _damaged(self, why: str) -> SnapshotError:
        return SnapshotError(
            f"Snapshot {str(self.root)!r}: {self.label} is damaged: {why} (file "
            f"{str(self.root / self.record['file'])!r}). Nothing of it was unpickled. The snapshot was changed "
            "or truncated after it was written; restore it from a copy, or delete the entry with del ctx[key] "
            "and compute it again."
        )

    def read(self) -> Any:
        """The entry's verified bytes (a writable buffer: arrays are built over it), read and hashed once."""
        name = self.record["file"]
        size = self.record["size"]
        hasher = value_codec.hasher_for(self.record, size)
        try:
            data = read_into(self.root, name, value_codec.allocate, size=size, on_chunk=hasher.update)
        except FileNotFoundError:
            raise SnapshotError(
                f"Snapshot {str(self.root)!r}: the file {str(self.root / name)!r} of {self.label} is missing. "
                "Restore the snapshot from a copy, or delete the entry and compute it again."
            ) from None
        except UnsafeFile as exc:
            raise self._damaged(f"{exc}; snapshots read only regular files of the size in the manifest") from None
        except OSError as exc:
            raise SnapshotError(
                f"Snapshot {str(self.root)!r}: {self.label} cannot be read: {exc}. Nothing of it was unpickled."
            ) from exc
        finally:
            hasher.close()
        self.check(data, hasher.hexdigest())
        return data

    def check(self, data: Any, computed: str | None = None) -> None:
        """Refuse ``data`` unless it is the entry its record describes (size, checksum, layout)."""
        try:
            value_codec.verify(data, self.record, computed=computed)
        except ValueError as exc:
            raise self._damaged(str(exc)) from None

    def __call__(self) -> Any:
        data = self.read()
        load = self._persistent_load if self.context is not None else None
        try:
            return value_codec.decode(data, self.record, persistent_load=load)  # the very bytes verified
        except Exception as exc:
            raise SnapshotError(
                f"Snapshot {str(self.root)!r}: {self.label} (file {str(self.root / self.record['file'])!r}) is "
                f"intact but cannot be read back: {type(exc).__name__}: {exc}. Its value may need a module or "
                "class that is not importable here: import or define it, then access the entry again."
            ) from exc

    def _persistent_load(self, pid: Any) -> Any:
        if pid == CONTEXT_PID:
            return self.context
        raise SnapshotError(f"Snapshot {str(self.root)!r}: unknown persistent reference {pid!r}")


def _not_a_snapshot(root: Path, secret: bytes | None, cls: type[Context]) -> Context:
    """The load of a directory without a manifest: a 1.1 snapshot, or an error saying what it is."""
    if os.path.lexists(root / "master_record.json"):
        if secret is not None:
            raise SnapshotError(
                f"{str(root)!r} is a job-orchestra 1.1 snapshot, which cannot be signed, but key= was given: "
                "refusing to load it. Load it without key= if you trust it."
            )
        return load_legacy(cls, root)
    if not any(root.iterdir()):
        raise SnapshotError(f"{str(root)!r} is an empty directory, not a snapshot written by Context.store().")
    raise SnapshotError(
        f"{str(root)!r} is not a job-orchestra snapshot: it has no {MANIFEST} (nor 1.1's master_record.json). "
        "Pass the directory that Context.store() wrote."
    )


def _check_signature(root: Path, body: bytes, secret: bytes) -> None:
    try:
        text: bytes | None = read_file(root, SIGNATURE, limit=4096)
    except FileNotFoundError:
        text = None
    except UnsafeFile as exc:
        raise SnapshotError(f"Snapshot {str(root)!r}: its signature cannot be read: {exc}. Refusing it.") from None
    check_signature_text(str(root), text, body, secret)


def check_signature_text(where: str, text: bytes | None, body: bytes, secret: bytes) -> None:
    """Refuse the manifest ``body`` of the snapshot at ``where`` unless ``text`` (its signature file, None when
    there is none) signs it with ``secret``; local directories and object stores alike."""
    if text is None:
        raise SnapshotError(
            f"Snapshot {where!r} is not signed, but key= was given: refusing to load it. Store it again "
            "with store(path, key=...) or load it without key= if you trust it."
        )
    if len(text) > 4096:
        raise SnapshotError(f"Snapshot {where!r}: its signature file is too large to be one. Refusing it.")
    scheme, _, given = text.decode("ascii", errors="replace").strip().partition(" ")
    if scheme != SIGNATURE_SCHEME or not hmac.compare_digest(given, signature(body, secret)):
        raise SnapshotError(
            f"Snapshot {where!r}: its signature does not match: the snapshot was altered after it was "
            "signed, or it was signed with another key. Refusing to load it."
        )


def load(cls: type[Context], path: str | os.PathLike[str], *, key: bytes | str | None = None) -> Context:
    """Open a snapshot directory; entries are read and verified when first accessed."""
    root = check_path(path, "Context.load()")
    secret = check_key(key, "Context.load()")
    try:
        mode = os.stat(root).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"No snapshot at {str(root)!r}: the path does not exist.") from None
    if not stat.S_ISDIR(mode):
        raise SnapshotError(
            f"{str(root)!r} is a file, not a snapshot: Context.store() writes a directory; pass that directory."
        )
    try:
        body = read_file(root, MANIFEST, limit=MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return _not_a_snapshot(root, secret, cls)
    except UnsafeFile as exc:
        raise SnapshotError(f"Snapshot {str(root)!r}: {exc}; refusing to read it.") from None
    if secret is not None:
        _check_signature(root, body, secret)
    manifest = parse(body, repr(str(root)))
    ctx = cls()
    dict.clear(ctx)
    for record in manifest["entries"]:
        k = decode_key(record, repr(str(root)))
        loader = _EntryLoader(root, record, f"the entry {k!r}")
        dict.__setitem__(ctx, k, LazyEntry(loader, f"{record['type']}, {record['size']} bytes"))
        if record["fingerprint"] is not None:
            ctx._fingerprints[k] = record["fingerprint"]
            if "seconds" in record:  # how long its run took, for the displays' "Last run"
                ctx._durations[k] = (record["fingerprint"], float(record["seconds"]))
        elif "given" in record:
            ctx._given[k] = record["given"]
    if manifest["pipeline"] is not None:
        loader = _EntryLoader(root, manifest["pipeline"], "the stored pipeline", context=ctx)
        object.__setattr__(ctx, "_pipeline", LazyEntry(loader, "pipeline"))
    return ctx
