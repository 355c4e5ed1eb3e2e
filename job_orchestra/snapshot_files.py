"""The file-system side of snapshots: bounded reads of regular files, our temporary directories, renames.

Reading: a snapshot file is opened relative to the snapshot directory without following symbolic links
(``O_NOFOLLOW`` on every component) and without blocking (``O_NONBLOCK``: a FIFO cannot hang the load),
``fstat`` must show a regular file of the expected size, and never more than that size is read.

Writing: ``store()`` writes into a temporary sibling named ``.<target>.jo-tmp.<host>.<pid>.<random>.tmp``
holding a marker file until it leaves that name (a snapshot being replaced gets the marker before it is
moved aside under that name). Such a directory is *provably ours* when its host is this machine, its
process is gone, and it holds the marker (removed last) or nothing at all; the next ``store()`` in the same
directory removes it, whatever snapshot it was meant for. Nothing else is ever removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "UnsafeFile",
    "exchange",
    "make_temp",
    "read_file",
    "read_into",
    "remove_abandoned",
    "remove_temp",
    "rename_noreplace",
]

MARKER = ".job-orchestra-temp"
_TEMP = re.compile(r"^\..*\.jo-tmp\.(?P<host>[^.]+)\.(?P<pid>[0-9]+)\.[^.]+\.tmp$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_AT_SUPPORTED = os.open in os.supports_dir_fd and bool(_NOFOLLOW)


class UnsafeFile(Exception):
    """A snapshot file that must not be read: the message says what it is instead of a regular file."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_file(root: Path, name: str, *, size: int | None = None, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``root/name`` (``name`` in the manifest's checked form, "a/b").

    Raises FileNotFoundError when it is missing, UnsafeFile when it is a symbolic link, a FIFO, a device,
    a directory, of another size than ``size`` or larger than ``limit``.
    """
    with _opened(root, name, size, limit) as (fd, wanted):
        chunks: list[bytes] = []
        got = 0
        while got < wanted:
            chunk = os.read(fd, min(wanted - got, 1 << 30))
            if not chunk:
                raise UnsafeFile(f"{name!r} shrank to {got} bytes while it was read")
            chunks.append(chunk)
            got += len(chunk)
        if os.read(fd, 1):
            raise UnsafeFile(f"{name!r} grew beyond {wanted} bytes while it was read")
        return b"".join(chunks)


def read_into(
    root: Path,
    name: str,
    allocate: Callable[[int], Any],
    *,
    size: int | None = None,
    limit: int | None = None,
    on_chunk: Callable[[memoryview], None] | None = None,
    chunk: int = 8 << 20,
) -> Any:
    """Like :func:`read_file`, into one buffer ``allocate(file size)`` read with ``readinto`` (no copies),
    calling ``on_chunk`` with each part just read (to hash it while the next is read)."""
    with _opened(root, name, size, limit) as (fd, wanted):
        buffer = allocate(wanted)
        view = memoryview(buffer).cast("B")
        got = 0
        with os.fdopen(os.dup(fd), "rb", buffering=0) as file:
            while got < wanted:
                n = file.readinto(view[got : min(wanted, got + chunk)])
                if not n:
                    raise UnsafeFile(f"{name!r} shrank to {got} bytes while it was read")
                if on_chunk is not None:
                    on_chunk(view[got : got + n])
                got += n
            if file.read(1):
                raise UnsafeFile(f"{name!r} grew beyond {wanted} bytes while it was read")
        return buffer


@contextlib.contextmanager
def _opened(root: Path, name: str, size: int | None, limit: int | None) -> Iterator[tuple[int, int]]:
    """The descriptor of the checked regular file ``root/name`` and its size (see :func:`read_file`)."""
    parts = name.split("/")
    fds: list[int] = []
    try:
        if _AT_SUPPORTED:  # each component opened inside the previous one, none followed if a link
            fds.append(os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC))
            for part in parts[:-1]:
                fds.append(_open_at(part, fds[-1], os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, f"{part}/"))
            fd = _open_at(parts[-1], fds[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _NOCTTY | _CLOEXEC, name)
        else:  # (Windows) no dir_fd: refuse links along the path, then open it
            for depth in range(1, len(parts) + 1):
                if os.path.islink(root.joinpath(*parts[:depth])):
                    raise UnsafeFile(f"{'/'.join(parts[:depth])!r} is a symbolic link, which snapshots never follow")
            fd = os.open(root.joinpath(*parts), os.O_RDONLY | _BINARY)
        fds.append(fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{name!r} is {_kind(info.st_mode)}, not a regular file")
        if size is not None and info.st_size != size:
            raise UnsafeFile(f"{name!r} has {info.st_size} bytes, the manifest says {size}")
        if limit is not None and info.st_size > limit:
            raise UnsafeFile(f"{name!r} has {info.st_size} bytes, more than the {limit} bytes such a file may have")
        yield fd, info.st_size
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _open_at(name: str, dir_fd: int, flags: int, shown: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            try:
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            except OSError:
                mode = 0
            raise UnsafeFile(f"{shown!r} is {_kind(mode)}, which snapshots never follow") from None
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing
            raise UnsafeFile(f"{shown!r} is not a regular file") from None
        raise


# -- temporary directories of store() -------------------------------------------------------------------
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", platform.node()) or "host"


def make_temp(target: Path, parent: Path) -> Path:
    """A new temporary sibling of ``target`` with our marker in it."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.jo-tmp.{_host()}.{os.getpid()}.", suffix=".tmp", dir=parent))
    try:
        (tmp / MARKER).write_text(f"job-orchestra temporary directory of process {os.getpid()} on {_host()}\n")
    except BaseException:
        remove_temp(tmp)
        raise
    return tmp


def _provably_ours(entry: Path) -> bool:
    match = _TEMP.match(entry.name)
    if match is None or match["host"] != _host() or entry.is_symlink() or not entry.is_dir():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
        return False  # alive (or a new process got its number): not abandoned
    except ProcessLookupError:
        pass
    except OSError:
        return False
    return (entry / MARKER).is_file() or not any(entry.iterdir())


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the temporary directories that killed store() calls left in ``parent``; return them."""
    removed = []
    try:
        candidates = [e for e in parent.iterdir() if ".jo-tmp." in e.name]
    except OSError:
        return removed
    for entry in candidates:
        try:
            if _provably_ours(entry):
                remove_temp(entry)
                removed.append(entry)
        except OSError:
            pass
    return removed


def remove_temp(tmp: Path) -> None:
    """Remove one of our temporary directories, its marker last (a removal cut short stays ours)."""
    try:
        children = list(tmp.iterdir())
    except FileNotFoundError:
        return
    for child in children:
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    (tmp / MARKER).unlink(missing_ok=True)
    try:
        tmp.rmdir()
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


# -- renames -------------------------------------------------------------------------------------------
_RENAME_NOREPLACE, _RENAME_EXCHANGE, _AT_FDCWD = 1, 2, -100


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux's renameat2(); False where the system or the file system does not offer it."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return False
    result = function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), ctypes.c_uint(flags))
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, failing with FileExistsError if ``dst`` exists (even an empty directory)."""
    if _renameat2(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def exchange(new: Path, old: Path) -> None:
    """Swap two directories atomically where the system can (afterwards ``new`` holds the old one)."""
    if _renameat2(new, old, _RENAME_EXCHANGE):
        return
    aside = new.with_name(new.name + ".old")
    os.rename(old, aside)
    try:
        os.rename(new, old)
    except BaseException:
        os.rename(aside, old)
        raise
    os.rename(aside, new)
