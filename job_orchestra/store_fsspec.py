"""``FsspecStore``: a persistent cache on any fsspec file system (``s3://``, ``gs://``, ``memory://``...).

fsspec (and the file system's own package, ``s3fs`` or ``gcsfs``) is imported when such a URL is opened,
never by ``import job_orchestra``: it is an optional extra (``pip install "job-orchestra[s3]"``).

Writes are atomic for readers. On an object store every object is written by one request (a PUT, or a
multipart upload that the store shows only once it is complete), so a reader sees the whole object or
nothing; on other fsspec file systems (SFTP, WebDAV...) the data goes to a temporary name in the same
directory first and is then moved into place. The cache writes a value before the small index record that
points to it, so a concurrent reader sees either no entry or a complete one. fsspec's listing cache is
never relied on (dropped around every call): another process or worker may have written since.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

from .errors import StorePathError, StoreUnavailableError
from .stores import Store, check_rel

__all__ = ["OBJECT_STORES", "FsspecStore"]

OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"})
"""Protocols whose writes are single requests (whole objects): written in place, no temporary name."""

_TEMPORARY = re.compile(r"^\.tmp-[0-9a-f]{32}-[^/]+$")  # what write() names its temporary objects
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def check_relative(rel: str, url: str) -> str:
    """``rel`` if it names a path inside the store (:func:`~job_orchestra.stores.check_rel`), and has no
    control characters either (an object key with a newline is not a valid request path)."""
    check_rel(rel)
    if any(ord(c) < 32 or c == "\x7f" for c in rel):
        raise StorePathError(f"store path {rel!r} in the cache {url} has a control character", rel)
    return rel


def _protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


class FsspecStore(Store):
    """A cache root at an fsspec URL; ``storage_options`` go to the file system (credentials, endpoint)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.protocol = _protocol(url)
        self.storage_options = dict(storage_options or {})
        self.fs, root = _filesystem(self.url, self.protocol, self.storage_options)
        self.root = root.rstrip("/")
        self.object_store = self.protocol in OBJECT_STORES

    def __reduce__(self) -> tuple:  # what a Dask worker gets: the URL and options, it connects itself
        return (FsspecStore, (self.url, self.storage_options))

    def __repr__(self) -> str:
        return f"FsspecStore({self.url!r})"

    def _path(self, rel: str) -> str:
        return f"{self.root}/{check_relative(rel, self.url)}"

    def _fresh(self, path: str) -> str:
        """``path``, with fsspec's listing cache of its folder dropped: s3fs answers "not found" from an old
        listing (its reads first look the size up there), while another process may have written since."""
        self.fs.invalidate_cache(path.rpartition("/")[0])
        return path

    def read(self, rel: str) -> bytes:
        """The bytes of ``rel`` (FileNotFoundError if it is not there)."""
        return self.fs.cat_file(self._fresh(self._path(rel)))

    def write(self, rel: str, data: bytes) -> None:
        """Write ``rel`` whole: one request on object stores, else a temporary name moved into place."""
        path = self._path(rel)
        if self.object_store:
            self.fs.pipe_file(path, bytes(data))
            return
        parent = path.rpartition("/")[0]
        temporary = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rpartition('/')[2]}"
        self.fs.makedirs(parent, exist_ok=True)
        try:
            self.fs.pipe_file(temporary, bytes(data))
            self.fs.mv(temporary, path)
        except BaseException:
            try:
                self.fs.rm_file(temporary)
            except (OSError, FileNotFoundError):
                pass
            raise

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self._fresh(self._path(rel))))

    def list(self, prefix: str = "") -> list[str]:
        """The relative paths (sorted) of every object below the folder ``prefix`` ("" for all)."""
        base = f"{self.root}/{check_relative(prefix, self.url)}" if prefix else self.root
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        finally:
            self.fs.invalidate_cache(base)  # a listing kept would hide what others write next
        below = base + "/"
        start = len(self.root) + 1
        names = []
        for path in found:
            path = path.rstrip("/")
            if path.startswith(below) and not path.rpartition("/")[2].startswith(".tmp-"):
                names.append(path[start:])
        return sorted(names)

    def read_all(self, prefix: str, limit: int) -> Iterator[tuple[str, bytes]]:
        """``(rel, bytes)`` of every object below ``prefix`` of at most ``limit`` bytes: one listing (with
        sizes) and the reads in one batch (s3fs and gcsfs send them concurrently), not two requests each."""
        base = f"{self.root}/{check_relative(prefix, self.url)}" if prefix else self.root
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        finally:
            self.fs.invalidate_cache(base)
        start, below = len(self.root) + 1, base + "/"
        wanted = sorted(
            path.rstrip("/")
            for path, info in found.items()
            if path.startswith(below)
            and not path.rpartition("/")[2].startswith(".tmp-")
            and (info.get("size") or 0) <= limit
            and info.get("type", "file") == "file"
        )
        if not wanted:
            return
        contents = self.fs.cat(wanted, on_error="omit")  # an object deleted meanwhile is left out
        if not isinstance(contents, dict):  # one path: fsspec returns its bytes
            contents = {wanted[0]: contents}
        for path in wanted:
            data = contents.get(path)
            if isinstance(data, bytes) and len(data) <= limit:
                yield path[start:], data

    def delete(self, rel: str) -> None:
        """Remove ``rel``; an object already gone is not an error (another process may have pruned it)."""
        path = self._path(rel)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(path.rpartition("/")[0])

    def size(self, rel: str) -> int:
        return int(self.fs.size(self._fresh(self._path(rel))))

    def modified(self, rel: str) -> float:
        """When ``rel`` was last written, as a UNIX time (what ``prune()`` needs to judge a leftover's age)."""
        return self.fs.modified(self._fresh(self._path(rel))).timestamp()  # naive times are local ones

    def leftovers(self, prefix: str) -> list[tuple[str, float]]:
        """Temporary objects (``.tmp-<uuid>-<name>``) of writes killed between the upload and the move: only
        on file systems that are not object stores (an object store's write is one request, never partial)."""
        if self.object_store:
            return []
        base = f"{self.root}/{check_relative(prefix, self.url)}"
        self.fs.invalidate_cache(base)
        try:
            names = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        finally:
            self.fs.invalidate_cache(base)
        found = []
        for path in names:
            name = path.rstrip("/").rpartition("/")[2]
            if _TEMPORARY.match(name):
                try:
                    found.append((f"{prefix}/{name}", self.modified(f"{prefix}/{name}")))
                except FileNotFoundError:
                    continue
        return found

    def owner_trusted(self) -> bool:
        """Only ``memory://`` (this process's own memory) is; who wrote a bucket cannot be told from here."""
        return self.protocol == "memory"

    @property
    def shared_with_workers(self) -> bool:
        """Whether other processes (Dask workers) see what is written here: not ``memory://``."""
        return self.protocol != "memory"


def _filesystem(url: str, protocol: str, options: dict[str, Any]) -> tuple[Any, str]:
    """The fsspec file system and root path of ``url``, or an error saying which package to install."""
    extra = _EXTRAS.get(protocol)
    hint = f'pip install "job-orchestra[{extra}]"' if extra else "install the fsspec package for it"
    try:
        from fsspec.core import url_to_fs  # optional dependency: only caches at such URLs need it
    except ImportError:
        raise StoreUnavailableError(
            f"Cannot open the cache at {url!r}: caches on URLs need fsspec, which is not installed ({hint}).",
            url,
        ) from None
    try:
        return url_to_fs(url, **options)
    except ImportError as exc:
        raise StoreUnavailableError(
            f"Cannot open the cache at {url!r}: the {protocol}:// file system needs a package that is not "
            f"installed ({hint}). fsspec said: {exc}",
            url,
        ) from None
    except ValueError as exc:
        raise StoreUnavailableError(
            f"Cannot open the cache at {url!r}: fsspec knows no {protocol}:// file system ({exc}). Use a local "
            "path or a URL such as s3://bucket/cache, gs://bucket/cache or memory://cache.",
            url,
        ) from None
