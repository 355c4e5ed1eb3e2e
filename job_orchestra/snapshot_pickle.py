"""How snapshot values are pickled: dill or cloudpickle, with keys starting with ``"."`` left out.

Hidden keys are skipped inside the picklers themselves, never by rebuilding containers: a dict (of any
subclass) that holds such keys is pickled through its own reduction (``__reduce_ex__``) with only its
visible items, so its type, order, attributes (``default_factory``, instance attributes), identity and the
sharing and cycles of everything around it are kept exactly. What is skipped: every item whose key is a
``str`` starting with ``"."`` of every ``dict`` (or dict subclass) reached while pickling the value, at any
depth (inside lists, tuples, sets of frozen values, object attributes...). A dict subclass whose reduction
does not hand its items to pickle, and does not pass them on in a dict either, is refused: its hidden keys
could not be left out.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from typing import Any, BinaryIO

import cloudpickle
import dill

from . import safe_dill
from .errors import HiddenKeyError

__all__ = ["CloudPickler", "Pickler", "dump", "is_hidden", "write"]

CONTEXT_PID = "job-orchestra:stored-context"


def is_hidden(key: object) -> bool:
    """True for the keys snapshots leave out: strings starting with "."."""
    return isinstance(key, str) and key.startswith(".")


def _reduction(obj: Any, proto: int, hide: bool) -> Any:
    """How a dict (or dict subclass) is pickled: its own reduction, with hidden items left out when ``hide``,
    and its attributes restored before its items (a subclass whose ``__setitem__`` reads its attributes,
    such as ``cleverdict.CleverDict``, loads back). NotImplemented where pickle's default is exact."""
    if not isinstance(obj, dict):
        return NotImplemented
    hidden = [k for k in dict.keys(obj) if is_hidden(k)] if hide else []
    if not hidden and type(obj) is dict:
        return NotImplemented
    reduction = obj.__reduce_ex__(proto)
    if not (isinstance(reduction, tuple) and len(reduction) >= 5 and reduction[4] is not None):
        if not hidden or (isinstance(reduction, tuple) and _passes_on(reduction[1:3], hidden)):
            return NotImplemented  # e.g. Counter, Context: their items travel in a dict, filtered in turn
        raise HiddenKeyError(
            f"a {type(obj).__module__}.{type(obj).__qualname__} holds keys starting with '.' ({hidden[0]!r}), "
            "which snapshots leave out, but it pickles itself with its own __reduce__ that does not hand its "
            "items to pickle: they cannot be left out. Remove those keys, or convert the value to a dict first.",
            hidden[0],
        )
    func, args, state, listitems, dictitems = reduction[:5]
    items = [(k, v) for k, v in dictitems if not is_hidden(k)] if hidden else dictitems
    if state is None or (len(reduction) > 5 and reduction[5] is not None):
        return (func, args, state, listitems, iter(items), *reduction[5:]) if hidden else NotImplemented
    return (func, args, (state, list(items)), listitems, None, _restore)


def _restore(obj: Any, payload: tuple[Any, list[tuple[Any, Any]]]) -> None:
    """Set the attributes of a dict subclass (as pickle's BUILD does), then its items. Snapshots refer to
    it by name: it is part of their format, keep it."""
    state, items = payload
    setstate = getattr(type(obj), "__setstate__", None)  # on the type: __getattr__ may need the state
    if setstate is not None:
        setstate(obj, state)
    else:
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        if state:
            obj.__dict__.update(state)
        for name, value in (slots or {}).items():
            object.__setattr__(obj, name, value)
    for key, value in items:
        obj[key] = value


def _passes_on(parts: tuple, hidden: list[str]) -> bool:
    """True when a dict among the reduction's arguments or state holds all of ``hidden``."""
    candidates: list[Any] = []
    for part in parts:
        candidates.append(part)
        if isinstance(part, tuple):
            candidates.extend(part)
    return any(isinstance(c, dict) and all(k in c for k in hidden) for c in candidates)


def _save_picklebuffer(self: Any, obj: pickle.PickleBuffer) -> None:
    # The pure-Python pickler writes an empty in-band buffer (an empty numpy array) as the b"" singleton
    # and memoizes it, so a later b"" in the value would come back as that buffer: write it unmemoized.
    with obj.raw() as view:
        if view.nbytes == 0 and self.proto >= 5:
            self.write(pickle.SHORT_BINBYTES + b"\x00" if view.readonly else pickle.BYTEARRAY8 + bytes(8))
            return
    pickle._Pickler.dispatch[pickle.PickleBuffer](self, obj)


def _plain_ndarray(obj: Any) -> bool:
    """True for an object of exactly numpy's ndarray type (numpy is not imported for this)."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and type(obj) is numpy.ndarray


LARGE_BYTES = 1 << 20


def _out_of_band(pickler: Any, obj: Any) -> Any:
    """The protocol-5 reduction of a plain ndarray (its data as a PickleBuffer, not dill's in-band copy),
    and, when the pickler keeps buffers out of band, of large bytes and bytearrays; else NotImplemented."""
    kind = type(obj)
    if kind is memoryview:  # cloudpickle would turn it into bytes: a value must come back as it was, or be refused
        raise TypeError(
            "a memoryview is a view on another object's memory, which cannot be stored as a view: store "
            "bytes(view), or the array or object it views"
        )
    if kind is bytes or kind is bytearray:
        if pickler._buffer_callback is None or len(obj) < LARGE_BYTES:
            return NotImplemented
        return kind, (pickle.PickleBuffer(obj),)  # loads as a copy of the buffer: bytes(view), bytearray(view)
    if _plain_ndarray(obj):
        return obj.__reduce_ex__(pickler.proto)
    return NotImplemented


class _Dispatch(safe_dill._Dispatch):
    """safe_dill's table, with the PickleBuffer saver that does not memoize an empty buffer."""

    def get(self, key: Any, default: Any = None) -> Any:
        return _save_picklebuffer if key is pickle.PickleBuffer else super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        return _save_picklebuffer if key is pickle.PickleBuffer else super().__getitem__(key)


class Pickler(safe_dill.Pickler):
    """dill's pickler for snapshots: notebook code (``__main__``) by value with only the globals it uses
    (``recurse=True``), so a fresh process can run it; hidden keys are left out when ``hide`` is true."""

    def __init__(self, file: Any, *, hide: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("protocol", dill.HIGHEST_PROTOCOL)
        kwargs.setdefault("recurse", True)
        super().__init__(file, **kwargs)
        self._hide = hide

    dispatch = _Dispatch()

    def reducer_override(self, obj: Any) -> Any:
        reduction = _out_of_band(self, obj)
        return _reduction(obj, self.proto, self._hide) if reduction is NotImplemented else reduction


class CloudPickler(pickle._Pickler):
    """cloudpickle's way of pickling (its reducers for functions and classes), on the pure-Python pickler,
    with hidden keys left out when ``hide`` is true. (cloudpickle's own C-based pickler never shows plain
    dicts to ``reducer_override``, so it could not leave their hidden keys out.)"""

    dispatch_table = cloudpickle.Pickler.dispatch_table
    _function_reduce = cloudpickle.Pickler._function_reduce
    _dynamic_function_reduce = cloudpickle.Pickler._dynamic_function_reduce
    _function_getnewargs = cloudpickle.Pickler._function_getnewargs

    def __init__(self, file: Any, *, hide: bool = True, buffer_callback: Any = None) -> None:
        super().__init__(file, protocol=dill.HIGHEST_PROTOCOL, buffer_callback=buffer_callback)
        self.globals_ref: dict[int, Any] = {}
        self._hide = hide

    def reducer_override(self, obj: Any) -> Any:
        reduction = _out_of_band(self, obj)
        if reduction is NotImplemented:
            reduction = _reduction(obj, self.proto, self._hide)
        return cloudpickle.Pickler.reducer_override(self, obj) if reduction is NotImplemented else reduction

    dispatch = dict(pickle._Pickler.dispatch)  # dill has put its own dict saver there: see .safe_dill
    dispatch[dict] = safe_dill.save_dict

    dispatch[pickle.PickleBuffer] = _save_picklebuffer


class HashingWriter:
    """A file wrapper that hashes and counts what goes through it (bytes or any buffer, e.g. PickleBuffer)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.hash.update(view)
        self.size += view.nbytes
        return self.raw.write(view)

    def reset(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0


def write(value: Any, file: Any, *, context: Any = None, first: str = "dill", reset: Any, hide: bool = True) -> str:
    """Pickle ``value`` into ``file`` with dill or cloudpickle (``first``), falling back to the other.

    Both carry notebook code by value and both streams load with dill. dill serializes more kinds of
    objects; cloudpickle names library functions reliably, where dill's ``recurse`` walk can wander into a
    library (scikit-learn's decorated functions) until the recursion limit. An ``OSError`` (a full disk, a
    read-only file system) is the file's fault, not the value's: it is raised at once, never retried.
    Returns the name of the pickler used.
    """
    makers = {
        "dill": lambda f: Pickler(f, hide=hide),
        "cloudpickle": lambda f: CloudPickler(f, hide=hide),
    }
    order = [first, *(name for name in makers if name != first)]
    first_error: Exception | None = None
    for name in order:
        pickler = makers[name](file)
        if context is not None:
            pickler.persistent_id = lambda obj: CONTEXT_PID if obj is context else None  # type: ignore[method-assign]
        try:
            pickler.dump(value)
            return name
        except (OSError, HiddenKeyError):
            raise
        except Exception as exc:
            if first_error is None:
                first_error = exc
            reset()
    assert first_error is not None
    raise first_error


def rewinder(raw: BinaryIO, writer: HashingWriter | None = None) -> Any:
    """A function that empties ``raw`` back to where it is now (before a second pickler tries)."""
    start = raw.tell()

    def reset() -> None:
        raw.seek(start)
        raw.truncate()
        if writer is not None:
            writer.reset()

    return reset


def dump(value: Any, file: BinaryIO) -> str:
    """Pickle ``value`` into a seekable binary file as snapshots do; returns the pickler used."""
    return write(value, file, reset=rewinder(file))
