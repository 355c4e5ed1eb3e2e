"""Where a persistent cache keeps its bytes: the ``Store`` interface and its local-directory implementation.

A store maps relative paths ("a/b/c", never ``..``, never absolute) to byte strings. ``write`` is atomic for
readers: a reader sees the old bytes or the new ones, never a part. ``open_store`` picks ``LocalStore`` for a
path or a ``file://`` URL and ``FsspecStore`` (``store_fsspec``, fsspec imported only then) for any other URL.
"""

from __future__ import annotations

import abc
import errno
import importlib
import io
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from job_orchestra.errors import CacheError, StorePathError
from job_orchestra.snapshot_files import UnsafeFile, read_file, read_into

__all__ = ["TEMP_SUFFIX", "LocalStore", "Store", "check_rel", "open_store"]

TEMP_SUFFIX = ".jo-tmp"  # files being written: ".<name>.<random>.jo-tmp", never listed
_TEMP_NAME = re.compile(r"^\.[0-9a-f.]+(?:json|dill)\.[A-Za-z0-9_]+\.jo-tmp$")  # those of a cache's own files
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def check_rel(rel: str) -> str:
    """``rel`` if it is a safe relative path inside a store ("a/b"), else StorePathError naming it."""
    if not isinstance(rel, str) or not rel:
        raise StorePathError(f"store path {rel!r} must be a non-empty string such as 'entries/x'", rel)
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or "\0" in rel or ":" in parts[0]:
        raise StorePathError(f"store path {rel!r} must be relative ('a/b'), without backslashes or drives", rel)
    if any(part in ("", ".", "..") for part in parts):
        raise StorePathError(f"store path {rel!r} has an empty, '.' or '..' part: it could escape the store", rel)
    return rel


class Store(abc.ABC):
    """A place holding byte strings by relative path; every method refuses a path that could escape it."""

    url: str

    @abc.abstractmethod
    def read(self, rel: str) -> bytes:
        """The bytes at ``rel`` (FileNotFoundError if there are none)."""

    @abc.abstractmethod
    def write(self, rel: str, data: bytes) -> None:
        """Put ``data`` at ``rel``, atomically for readers (the old bytes or the new, never a part)."""

    def write_from(self, rel: str, fill: Callable[[BinaryIO], None]) -> None:
        """Like ``write``, with the bytes written by ``fill(file)`` (a local store streams them to disk)."""
        buffer = io.BytesIO()
        fill(buffer)
        self.write(rel, buffer.getvalue())

    @abc.abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether ``rel`` holds bytes."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The relative paths of every object below the folder ``prefix`` ("" for all), sorted."""

    def read_all(self, prefix: str, limit: int) -> Iterator[tuple[str, bytes]]:
        """``(rel, bytes)`` of every object below ``prefix`` of at most ``limit`` bytes (others are skipped:
        not ours); an object deleted meanwhile is skipped too. Stores may do it faster than list + read."""
        for rel in self.list(prefix):
            try:
                if self.size(rel) <= limit:
                    yield rel, self.read(rel)
            except (FileNotFoundError, StorePathError):
                continue

    @abc.abstractmethod
    def delete(self, rel: str) -> None:
        """Remove the object at ``rel`` (nothing if it is gone already)."""

    @abc.abstractmethod
    def modified(self, rel: str) -> float:
        """When the object at ``rel`` was last written, as a UNIX time (FileNotFoundError if it is gone)."""

    def leftovers(self, prefix: str) -> list[tuple[str, float]]:
        """``(rel, modified)`` of the temporary objects directly in the folder ``prefix`` that writes killed
        midway left behind (never listed, never read); none for a store whose writes are single requests."""
        return []

    @abc.abstractmethod
    def size(self, rel: str) -> int:
        """The size in bytes of the object at ``rel``."""

    @abc.abstractmethod
    def owner_trusted(self) -> bool:
        """Whether the place belongs to the current user (a cache written by someone else is not trusted)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalStore(Store):
    """A directory on a local file system; never follows a symbolic link inside it, never writes outside it."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        if self.root.is_symlink() or (self.root.exists() and not self.root.is_dir()):
            raise StorePathError(f"{str(self.root)!r} is not a directory a cache can live in", str(self.root))
        self.url = self.root.as_uri()

    # -- paths ---------------------------------------------------------------------------------------------
    def _parent_fd(self, rel: str, *, create: bool) -> tuple[int, str]:
        """An open descriptor of the folder holding ``rel`` (links refused, folders made if ``create``)."""
        parts = check_rel(rel).split("/")
        fd = os.open(self.root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
        try:
            for part in parts[:-1]:
                try:
                    new = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o700, dir_fd=fd)
                    except FileExistsError:
                        pass
                    new = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise StorePathError(
                            f"{rel!r} passes through {part!r}, a symbolic link or a file: caches never follow links",
                            rel,
                        ) from None
                    raise
                os.close(fd)
                fd = new
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    # -- the interface -------------------------------------------------------------------------------------
    def read(self, rel: str) -> bytes:
        try:
            return read_file(self.root, check_rel(rel))
        except UnsafeFile as exc:
            raise StorePathError(f"{rel!r} in the cache {self.url}: {exc}", rel) from None

    def read_into(
        self, rel: str, allocate: Callable[[int], Any], on_chunk: Callable[[memoryview], None], size: int | None = None
    ) -> Any:
        """The bytes at ``rel`` read once into ``allocate(size)``, each part passed to ``on_chunk`` as read;
        a file of another ``size`` than given is refused before it is read (StorePathError)."""
        try:
            return read_into(self.root, check_rel(rel), allocate, size=size, on_chunk=on_chunk)
        except UnsafeFile as exc:
            raise StorePathError(f"{rel!r} in the cache {self.url}: {exc}", rel) from None

    def write(self, rel: str, data: bytes) -> None:
        """``data`` to a temporary name in the same folder, synced, renamed into place, the folder synced."""

        def fill(out: int) -> None:
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(out, view) :]

        self._write_atomically(rel, fill)

    def write_from(self, rel: str, fill: Callable[[BinaryIO], None]) -> None:
        def fill_fd(out: int) -> None:
            with os.fdopen(out, "wb", closefd=False) as file:
                fill(file)

        self._write_atomically(rel, fill_fd)

    def _write_atomically(self, rel: str, fill: Callable[[int], None]) -> None:
        """``fill(fd)`` writes the bytes into a new temporary file next to ``rel``, which is then synced,
        renamed into place, and its folder synced (the rename itself survives a crash of the machine).
        On any failure the temporary file is removed and nothing is in place."""
        fd, name = self._parent_fd(rel, create=True)
        try:
            tmp = f".{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=fd)
            try:
                try:
                    fill(out)
                    os.fsync(out)
                finally:
                    os.close(out)
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
                raise
            os.fsync(fd)
        finally:
            os.close(fd)

    def exists(self, rel: str) -> bool:
        try:
            fd, name = self._parent_fd(rel, create=False)
        except (FileNotFoundError, StorePathError):
            return False
        try:
            return stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)

    def list(self, prefix: str) -> list[str]:
        base = self.root / check_rel(prefix) if prefix else self.root
        if prefix and (base.is_symlink() or not base.is_dir()):
            return []
        found: list[str] = []
        for folder, dirs, files in os.walk(base, followlinks=False):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            rel_folder = os.path.relpath(folder, self.root).replace(os.sep, "/")
            for name in files:
                if name.endswith(TEMP_SUFFIX) or os.path.islink(os.path.join(folder, name)):
                    continue
                found.append(name if rel_folder == "." else f"{rel_folder}/{name}")
        return sorted(found)

    def read_all(self, prefix: str, limit: int) -> Iterator[tuple[str, bytes]]:
        """The regular files directly in the folder ``prefix`` (one folder opened once; links skipped)."""
        try:
            fd = os.open(check_rel(prefix), os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=self._root_fd())
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return
            raise
        try:
            with os.scandir(fd) as entries:
                names = [
                    e.name for e in entries if not e.name.endswith(TEMP_SUFFIX) and e.is_file(follow_symlinks=False)
                ]
            for name in sorted(names):
                try:
                    file = os.open(name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=fd)
                except (FileNotFoundError, OSError):
                    continue  # deleted meanwhile, or replaced by a link
                try:
                    info = os.fstat(file)
                    if stat.S_ISREG(info.st_mode) and info.st_size <= limit:
                        yield f"{prefix}/{name}", os.read(file, info.st_size + 1)
                finally:
                    os.close(file)
        finally:
            os.close(fd)

    def __getstate__(self) -> dict:
        """Pickled for another process (a Dask worker writing into the cache): without this one's descriptor."""
        state = self.__dict__.copy()
        state.pop("_fd", None)
        return state

    def _root_fd(self) -> int:
        fd = getattr(self, "_fd", None)
        if fd is None:
            fd = os.open(self.root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
            self._fd = fd
        return fd

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def delete(self, rel: str) -> None:
        try:
            fd, name = self._parent_fd(rel, create=False)
        except FileNotFoundError:
            return
        try:
            os.unlink(name, dir_fd=fd)  # a link is removed itself, its target never
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def modified(self, rel: str) -> float:
        fd, name = self._parent_fd(rel, create=False)
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime
        finally:
            os.close(fd)

    def leftovers(self, prefix: str) -> list[tuple[str, float]]:
        """Files named as :meth:`write` names its temporary files (links and other files never)."""
        try:
            fd, _ = self._parent_fd(f"{prefix}/x", create=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        try:
            with os.scandir(fd) as entries:
                return [
                    (f"{prefix}/{e.name}", e.stat(follow_symlinks=False).st_mtime)
                    for e in entries
                    if _TEMP_NAME.match(e.name) and e.is_file(follow_symlinks=False)
                ]
        finally:
            os.close(fd)

    def size(self, rel: str) -> int:
        fd, name = self._parent_fd(rel, create=False)
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StorePathError(f"{rel!r} in the cache {self.url} is not a regular file", rel)
        return info.st_size

    def owner_uid(self) -> int | None:
        """The user id owning the directory (None where the system has none)."""
        return os.stat(self.root, follow_symlinks=False).st_uid if hasattr(os, "getuid") else None

    def owner_trusted(self) -> bool:
        owner = self.owner_uid()
        return owner is None or owner == os.getuid()


def open_store(path_or_url: str | os.PathLike[str] | Store) -> Store:
    """The store behind a path, a ``file://`` URL, or another URL (through fsspec); a Store is returned as is."""
    if isinstance(path_or_url, Store):
        return path_or_url
    text = os.fspath(path_or_url)
    if not _URL.match(text):
        return LocalStore(text)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StorePathError(f"{text!r}: a file:// URL must name a local path (file:///path)", text)
        return LocalStore(unquote(parsed.path))
    try:  # optional extra: the fsspec backend (and fsspec) is imported only for URLs
        backend = importlib.import_module("job_orchestra.store_fsspec")
    except ModuleNotFoundError as exc:
        raise CacheError(
            f"{text!r}: caches at URLs need the fsspec backend ({exc.name} is not installed); "
            "install job-orchestra's s3 extra or use a local path"
        ) from None
    return backend.FsspecStore(text)
