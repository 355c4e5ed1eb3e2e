"""Reading snapshots written by job-orchestra 1.1 (a directory with ``master_record.json``).

1.1 flattened the Context into one JSON object: nesting levels joined by ``;;``, and values it could not
write as JSON saved to files beside it, marked by a suffix on the key (``_-_pd.DataFrame`` and
``_-_pd.Series`` as parquet, ``_-_np.ndarray`` as ``.npy``, ``_-_pickle`` as a pickle, ``_-_Cleverdict`` as
a JSON object) whose value is the file's path. Those paths were absolute, so they are looked up by file name
in the snapshot directory: a moved or copied snapshot still loads.

pandas, pyarrow and numpy are imported only when an entry of that kind is first read; when one is missing the
error names the entry and the package to install. Such entries have no fingerprint: they count as results
put in by hand, so they are used as they are.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .attrdict import AttrDict
from .errors import SnapshotError
from .fingerprint import hash_value
from .lazy import LazyEntry
from .snapshot_files import UnsafeFile, read_file

if TYPE_CHECKING:
    from .context import Context

__all__ = ["MASTER_RECORD", "load_legacy"]

MASTER_RECORD = "master_record.json"
_SEPARATOR = ";;"
_KINDS = {
    "_-_pd.DataFrame": "a pandas DataFrame saved as parquet",
    "_-_pd.Series": "a pandas Series saved as parquet",
    "_-_np.ndarray": "a numpy array saved as .npy",
    "_-_pickle": "a pickled object",
    "_-_Cleverdict": "a CleverDict",
}
_NEEDS = {
    "_-_pd.DataFrame": ("pandas", "pyarrow"),
    "_-_pd.Series": ("pandas", "pyarrow"),
    "_-_np.ndarray": ("numpy",),
}


def _read_master_record(root: Path) -> dict[str, Any]:
    try:
        record = json.loads(read_file(root, MASTER_RECORD, limit=1 << 28).decode("utf-8"))
    except UnsafeFile as exc:
        raise SnapshotError(f"1.1 snapshot {str(root)!r}: {exc}; refusing to read it.") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SnapshotError(f"1.1 snapshot {str(root)!r}: {MASTER_RECORD} is damaged ({exc}).") from None
    if isinstance(record, dict) and "_mapping_encoded" in record:  # written with store(..., fullcopy=True)
        encoded = record["_mapping_encoded"]
        if not isinstance(encoded, dict):
            raise SnapshotError(f"1.1 snapshot {str(root)!r}: {MASTER_RECORD} is damaged (_mapping_encoded).")
        record = {}
        for raw_key, value in encoded.items():
            try:
                key = ast.literal_eval(raw_key)
            except (ValueError, SyntaxError):
                key = raw_key
            record[str(key)] = value
    if not isinstance(record, dict):
        raise SnapshotError(f"1.1 snapshot {str(root)!r}: {MASTER_RECORD} does not hold a JSON object.")
    return record


def _split(flat_key: str) -> tuple[list[str], str | None]:
    """``"a;;b_-_np.ndarray"`` -> ``(["a", "b"], "_-_np.ndarray")``; plain keys have no kind."""
    for suffix in _KINDS:
        if flat_key.endswith(suffix):
            return flat_key[: -len(suffix)].split(_SEPARATOR), suffix
    return flat_key.split(_SEPARATOR), None


class _LegacyFile:
    """One value 1.1 saved to a file, read when its top-level entry is first accessed."""

    __slots__ = ("kind", "label", "path", "root")

    def __init__(self, root: Path, label: str, kind: str, path: object) -> None:
        self.root = root
        self.label = label
        self.kind = kind
        self.path = path

    def file(self) -> Path:
        if not isinstance(self.path, str) or not self.path:
            raise SnapshotError(
                f"1.1 snapshot {str(self.root)!r}: {self.label} should name a file, but holds {self.path!r}."
            )
        # 1.1 wrote absolute paths; the file is looked up beside master_record.json, never outside it.
        file = self.root / Path(self.path.replace("\\", "/")).name
        if not os.path.lexists(file) or file.parent != self.root:
            raise SnapshotError(
                f"1.1 snapshot {str(self.root)!r}: the file {file.name!r} of {self.label} ({_KINDS[self.kind]}) "
                "is missing. Copy it back into the snapshot directory."
            )
        return file

    def read(self) -> Any:
        for package in _NEEDS.get(self.kind, ()):
            try:
                __import__(package)
            except ImportError as exc:
                wanted = _NEEDS[self.kind]
                raise SnapshotError(
                    f"1.1 snapshot {str(self.root)!r}: {self.label} is {_KINDS[self.kind]}; reading it needs "
                    f"{' and '.join(wanted)}, and {package} is not installed. Install it with: "
                    f"pip install {' '.join(wanted)}"
                ) from exc
        file = self.file()
        try:
            data = read_file(self.root, file.name)  # a regular file, not followed if a link, read once
        except (UnsafeFile, OSError, ValueError) as exc:
            raise SnapshotError(
                f"1.1 snapshot {str(self.root)!r}: {self.label} cannot be read: {exc}. Snapshots read only "
                "regular files inside their directory."
            ) from None
        try:
            if self.kind == "_-_pd.DataFrame":
                import pandas as pd  # optional: only 1.1 entries of that kind need it

                return pd.read_parquet(io.BytesIO(data))
            if self.kind == "_-_pd.Series":
                import pandas as pd  # optional: only 1.1 entries of that kind need it

                frame = pd.read_parquet(io.BytesIO(data))
                return frame[frame.columns[0]]
            if self.kind == "_-_np.ndarray":
                import numpy as np  # optional: only 1.1 entries of that kind need it

                return np.load(io.BytesIO(data), allow_pickle=False)

            return pickle.loads(data)  # loading a snapshot runs its code, like any pickle
        except ImportError as exc:
            raise SnapshotError(
                f"1.1 snapshot {str(self.root)!r}: {self.label} ({file.name!r}, {_KINDS[self.kind]}) needs a "
                f"module that is not installed: {exc}. Install it, then access the entry again."
            ) from exc
        except Exception as exc:
            raise SnapshotError(
                f"1.1 snapshot {str(self.root)!r}: {self.label} cannot be read from {file.name!r} "
                f"({_KINDS[self.kind]}): {type(exc).__name__}: {exc}. The file is damaged or truncated."
            ) from exc


def _resolve(value: Any) -> Any:
    """Replace every file placeholder inside a (nested) value by the value read from its file."""
    if isinstance(value, _LegacyFile):
        return value.read()
    if isinstance(value, dict):
        for k, v in list(value.items()):
            value[k] = _resolve(v)
    return value


def _has_files(value: Any) -> bool:
    if isinstance(value, _LegacyFile):
        return True
    return isinstance(value, dict) and any(_has_files(v) for v in value.values())


def load_legacy(cls: type[Context], root: Path) -> Context:
    """Open a 1.1 snapshot directory: plain JSON values at once, file-backed entries on first access."""
    record = _read_master_record(root)
    tree: dict[str, Any] = {}
    for flat_key, value in record.items():
        levels, kind = _split(flat_key)
        label = "the entry " + repr(flat_key[: -len(kind)] if kind else flat_key)
        if kind == "_-_Cleverdict":
            value = AttrDict(value) if isinstance(value, dict) else value
        elif kind is not None:
            value = _LegacyFile(root, label, kind, value)
        node = tree
        for level in levels[:-1]:
            child = node.get(level)
            if not isinstance(child, dict):
                child = node[level] = AttrDict()
            node = child
        node[levels[-1]] = value

    ctx = cls()
    dict.clear(ctx)
    for key, value in tree.items():
        if _has_files(value):
            kinds = sorted({f.kind for f in _files(value)})
            description = "1.1 entry: " + ", ".join(_KINDS[k] for k in kinds)
            dict.__setitem__(ctx, key, LazyEntry(_Resolver(value), description))
            ctx._given[key] = _token(root, value)  # so a plan need not read the files
        else:
            dict.__setitem__(ctx, key, value)
    return ctx


def _token(root: Path, value: Any) -> str:
    """A content hash of a file-backed 1.1 entry that does not read its files: their names and sizes
    (a copied snapshot keeps them)."""

    def describe(v: Any) -> Any:
        if isinstance(v, _LegacyFile):
            try:
                file = v.file()
                return ("file", v.kind, file.name, file.lstat().st_size)
            except (SnapshotError, OSError):
                return ("file", v.kind, repr(v.path))
        if isinstance(v, dict):
            return {k: describe(x) for k, x in v.items()}
        return v

    return "legacy:" + hash_value(describe(value))


def _files(value: Any) -> list[_LegacyFile]:
    if isinstance(value, _LegacyFile):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _files(v)]
    return []


class _Resolver:
    """The loader of a top-level entry that holds file-backed values (called once, by the Context)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return _resolve(_copy_tree(self.value))  # a copy: a failed read can be retried


def _copy_tree(value: Any) -> Any:
    if isinstance(value, dict):
        new = AttrDict()
        for k, v in value.items():
            new[k] = _copy_tree(v)
        return new
    return value
