"""How a stored value becomes the bytes of its entry file and back, for snapshots and caches alike.

A value is pickled with protocol 5 and a ``buffer_callback``: the data of numpy arrays, pandas frames and
anything else offering a :class:`pickle.PickleBuffer` stays *out of band*, never copied into the stream.
An entry that has such buffers is written in the ``"oob1"`` format (the record's ``"format"`` field)::

    header  b"\\x00jo-oob1", stream length (u64 LE), buffer count n (u64 LE), n buffer lengths (u64 LE)
    stream  the pickle stream, starting at the header's length rounded up to 64 bytes
    buffers each starting at the end of the previous part rounded up to 64 bytes (zero padding between)

An entry without buffers is the plain pickle stream, as every entry written before this format (records
without ``"format"``). The record's digest (``"blake3"``, or ``"sha256"`` in older records) covers every
byte of the file, padding and header included, and is computed in the same pass that writes or reads it.
Readers verify the whole entry, then unpickle with the buffers as slices of the very memory that was
verified, so arrays come back writeable and without a copy. Nothing is unpickled before it is verified.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import io
import mmap
import os
import pickle
import queue
import re
import struct
import threading
from collections.abc import Callable
from typing import Any

import blake3
import dill

from .errors import HiddenKeyError
from .snapshot_pickle import CONTEXT_PID, CloudPickler, Pickler

__all__ = ["FORMAT_OOB", "Encoded", "Hasher", "allocate", "decode", "digest_fields", "encode", "verify"]

FORMAT_OOB = "oob1"
MAGIC = b"\x00jo-oob1"  # a pickle stream starts with PROTO (0x80), never with this
ALIGN = 64
CHUNK = 8 << 20  # bytes hashed and written (or read) per step
IN_BAND = 1024  # buffers smaller than this stay in the stream
THREADED = 32 << 20  # entries at least this large are hashed in a thread beside the writes or reads
_HEAD = struct.Struct("<8sQQ")
_ALGORITHMS: dict[str, Callable[[], Any]] = {"blake3": blake3.blake3, "sha256": hashlib.sha256}
_PAD = bytes(ALIGN)


def _up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _layout(stream: int, lengths: list[int]) -> tuple[int, list[int], int]:
    """Where the stream and each buffer start in an oob1 entry, and its total size."""
    at = _up(_HEAD.size + 8 * len(lengths))
    stream_at, end = at, at + stream
    offsets = []
    for n in lengths:
        start = _up(end)
        offsets.append(start)
        end = start + n
    return stream_at, offsets, end


class Hasher:
    """A digest fed chunk by chunk; with ``threaded``, the hashing runs in a thread (hashlib and blake3
    release the GIL on large buffers) while the caller writes or reads the next chunk."""

    def __init__(self, name: str = "blake3", *, threaded: bool = False) -> None:
        self.name = name
        self._hash = _ALGORITHMS[name]()
        self._queue: queue.Queue[memoryview | None] | None = None
        self._error: BaseException | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._run, name="job-orchestra-hash", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            try:
                self._hash.update(chunk)
            except BaseException as exc:  # told by hexdigest()
                self._error = exc

    def update(self, chunk: Any) -> None:
        if self._queue is None:
            self._hash.update(chunk)
        else:
            self._queue.put(memoryview(chunk))

    def close(self) -> None:
        """Stop the thread (idempotent); hexdigest() does it too."""
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None

    def hexdigest(self) -> str:
        self.close()
        if self._error is not None:
            raise self._error
        return self._hash.hexdigest()


class Encoded:
    """A value pickled, not written yet: the parts of its entry, their total size, how to write them."""

    def __init__(self, stream: io.BytesIO, buffers: list[memoryview], pickler: str) -> None:
        self.pickler = pickler  # "dill" or "cloudpickle"
        body = stream.getbuffer()
        if not buffers:
            self.parts: list[Any] = [body]
            self.nbytes = body.nbytes
            self.format: str | None = None
            return
        lengths = [b.nbytes for b in buffers]
        stream_at, offsets, total = _layout(body.nbytes, lengths)
        header = _HEAD.pack(MAGIC, body.nbytes, len(lengths)) + struct.pack(f"<{len(lengths)}Q", *lengths)
        self.parts = [header + bytes(stream_at - len(header)), body]
        end = stream_at + body.nbytes
        for buffer, start in zip(buffers, offsets, strict=True):
            if start > end:
                self.parts.append(_PAD[: start - end])
            self.parts.append(buffer)
            end = start + buffer.nbytes
        self.nbytes = total
        self.format = FORMAT_OOB

    def _fields(self, hasher: Hasher) -> dict[str, Any]:
        fields: dict[str, Any] = {hasher.name: hasher.hexdigest()}
        if self.format is not None:
            fields["format"] = self.format
        return fields

    def write_to(self, out: int | Any) -> dict[str, Any]:
        """Write the entry to a file descriptor or a binary file, hashing in the same pass; returns the
        record's digest and format fields. The caller flushes and syncs."""
        hasher = Hasher(threaded=self.nbytes >= THREADED)
        try:
            for part in self.parts:
                view = memoryview(part).cast("B")
                for at in range(0, view.nbytes, CHUNK):
                    chunk = view[at : at + CHUNK]
                    hasher.update(chunk)
                    _write_all(out, chunk)
        finally:
            hasher.close()
        return self._fields(hasher)

    def to_bytes(self) -> bytes:
        """The entry as one bytes object (small values, object stores)."""
        return b"".join(memoryview(p).cast("B") for p in self.parts)


def _write_all(out: int | Any, chunk: memoryview) -> None:
    while chunk.nbytes:
        n = os.write(out, chunk) if isinstance(out, int) else out.write(chunk)
        if n is None:  # a non-blocking file that took nothing: never drop bytes silently
            raise BlockingIOError(errno.EAGAIN, "the file accepted no bytes (non-blocking); nothing more was written")
        if n >= chunk.nbytes:
            return
        chunk = chunk[n:]


def encode(value: Any, *, context: Any = None, hide: bool = True, first: str = "dill") -> Encoded:
    """Pickle ``value`` now (dill or cloudpickle, ``first``, falling back to the other), buffers out of band.

    ``context`` is written as a reference (a stored pipeline's Context); ``hide`` leaves keys starting with
    "." out. ``OSError`` and ``HiddenKeyError`` are raised at once, never retried with the other pickler.
    """
    first_error: Exception | None = None
    for name in [first, *(n for n in _MAKERS if n != first)]:
        try:
            encoded = _encode_with(name, value, context, hide)
        except (OSError, HiddenKeyError):
            raise
        except Exception as exc:
            first_error = first_error or exc
            continue
        if name == "dill" and _BY_VALUE_CLASS.search(encoded.parts[-1 if encoded.format is None else 1]):
            # A class pickled by value (defined in a notebook or script): dill re-creates it on every load, and
            # breaks some (an Enum cannot be read back, a frozen dataclass loses its identity); cloudpickle
            # keeps one class per process. dill's stream stays the answer when cloudpickle cannot pickle it.
            try:
                return _encode_with("cloudpickle", value, context, hide)
            except (OSError, HiddenKeyError):
                raise
            except Exception:
                pass
        return encoded
    assert first_error is not None
    raise first_error


_MAKERS = {"dill": Pickler, "cloudpickle": CloudPickler}
_BY_VALUE_CLASS = re.compile(rb"_create_type")  # dill's function that re-creates a class pickled by value


def _encode_with(name: str, value: Any, context: Any, hide: bool) -> Encoded:
    stream = io.BytesIO()
    buffers: list[memoryview] = []

    def keep(buffer: pickle.PickleBuffer) -> bool:
        raw = buffer.raw()
        if raw.nbytes < IN_BAND:
            return True  # in band: a copy of a small buffer costs less than its place in the layout
        buffers.append(raw)
        return False

    pickler = _MAKERS[name](stream, hide=hide, buffer_callback=keep)
    if context is not None:
        pickler.persistent_id = lambda obj: CONTEXT_PID if obj is context else None  # type: ignore[method-assign]
    pickler.dump(value)
    return Encoded(stream, buffers, name)


def digest_fields(data: Any) -> dict[str, Any]:
    """The record fields ``write_to`` returns, for an entry already in memory."""
    view = memoryview(data).cast("B")
    fields: dict[str, Any] = {"blake3": blake3.blake3(view).hexdigest()}
    if view[: len(MAGIC)] == MAGIC:
        fields["format"] = FORMAT_OOB
    return fields


def hasher_for(record: dict[str, Any], size: int) -> Hasher:
    """The hasher that checks an entry of ``record`` while it is read (threaded for large entries)."""
    return Hasher("blake3" if "blake3" in record else "sha256", threaded=size >= THREADED)


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def allocate(size: int) -> Any:
    """Writable memory for an entry of ``size`` bytes: for a large entry anonymous pages mapped at once
    (``MAP_POPULATE`` where the system has it: faster than faulting them in one by one, page aligned),
    for a small one a bytearray."""
    if size < (1 << 20) or not hasattr(mmap, "MAP_ANONYMOUS"):
        return bytearray(size)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)


def verify(data: Any, record: dict[str, Any], *, secret: bytes | None = None, computed: str | None = None) -> None:
    """Check ``data`` against its record: size, digest (``computed`` if it was hashed while read), format.

    Raises ValueError saying what differs. (``secret`` is accepted for callers that hold one: a signature
    covers the record, which holds this digest, and is checked where the record is read.)
    """
    view = memoryview(data).cast("B")
    if view.nbytes != record["size"]:
        raise ValueError(f"it has {view.nbytes} bytes, its record says {record['size']}")
    name = "blake3" if "blake3" in record else "sha256" if "sha256" in record else None
    if name is None:
        raise ValueError("its record has no checksum (blake3 or sha256)")
    if computed is None:
        computed = _ALGORITHMS[name](view).hexdigest()
    if not hmac.compare_digest(computed, record[name]):
        raise ValueError(f"its {'BLAKE3' if name == 'blake3' else 'SHA-256'} checksum does not match its record")
    _parts(view, record)


def _parts(view: memoryview, record: dict[str, Any]) -> tuple[memoryview, list[memoryview]]:
    """The stream and buffers of a verified entry, its layout checked (ValueError if inconsistent)."""
    kind = record.get("format")
    has_magic = view[: len(MAGIC)] == MAGIC
    if kind is None:
        if has_magic:
            raise ValueError("it is an out-of-band entry but its record says it is a plain pickle stream")
        return view, []
    if kind != FORMAT_OOB:
        raise ValueError(f"its format {kind!r} is not one this job-orchestra reads (upgrade job-orchestra)")
    if not has_magic or view.nbytes < _HEAD.size:
        raise ValueError("its record says it is an out-of-band entry, but it does not start with that header")
    _, stream, count = _HEAD.unpack_from(view)
    if _HEAD.size + 8 * count > view.nbytes:
        raise ValueError(f"its header names {count} buffers, more than the file can hold")
    lengths = list(struct.unpack_from(f"<{count}Q", view, _HEAD.size))
    stream_at, offsets, total = _layout(stream, lengths)
    if total != view.nbytes:
        raise ValueError(f"its header describes {total} bytes, the file has {view.nbytes}")
    buffers = [view[at : at + n] for at, n in zip(offsets, lengths, strict=True)]
    return view[stream_at : stream_at + stream], buffers


class _ViewFile:
    """A read-only file over a memoryview, so unpickling does not copy the stream first."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = self.view.nbytes if n is None or n < 0 else min(self.pos + n, self.view.nbytes)
        out = self.view[self.pos : end].tobytes()
        self.pos = end
        return out

    def readinto(self, target: Any) -> int:
        target = memoryview(target).cast("B")
        n = min(target.nbytes, self.view.nbytes - self.pos)
        target[:n] = self.view[self.pos : self.pos + n]
        self.pos += n
        return n

    def readline(self) -> bytes:
        end = self.pos
        while end < self.view.nbytes:
            piece = self.view[end : end + 4096].tobytes()
            found = piece.find(b"\n")
            if found >= 0:
                end += found + 1
                break
            end += len(piece)
        return self.read(end - self.pos)


def decode(data: Any, record: dict[str, Any], *, persistent_load: Callable[[Any], Any] | None = None) -> Any:
    """The value of a verified entry; arrays are built over ``data`` itself when it is writable (bytes are
    copied once, so arrays come back writeable). Records without ``"format"`` are plain pickle streams, as
    written before out-of-band buffers."""
    view = memoryview(data).cast("B")
    stream, buffers = _parts(view, record)
    if buffers and view.readonly:  # (bytes from an object store) arrays over it would be read-only: copy once
        stream, buffers = _parts(memoryview(bytearray(view)), record)
    unpickler = dill.Unpickler(_ViewFile(stream), buffers=buffers)
    if persistent_load is not None:
        unpickler.persistent_load = persistent_load  # type: ignore[method-assign]
    return unpickler.load()
