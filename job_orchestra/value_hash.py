"""Value hashing: a content hash of any value, equal in every process for equal content.

Arrays, DataFrames and bytes are hashed through their buffers with xxHash, containers by structure (sets
and dicts order-free), enums by name, the user's plain objects by class code and attributes, anything else
by its pickle. Functions and classes are hashed by a code digest that the layer above passes in
(:mod:`job_orchestra.code_digest`), so this module knows nothing of how code is hashed.
"""

from __future__ import annotations

import collections
import enum
import functools
import io
import pickle
import sys
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any

from .user_code import is_job_orchestra_class, is_user

__all__ = ["ALGORITHM", "ValueHasher", "digest", "new_hasher", "no_stable_state"]

try:  # xxh3 hashes about 30 GB/s here, blake2b under 1.5 GB/s; both are good enough against accidents
    import xxhash

    def new_hasher() -> Any:
        """A fresh 128-bit streaming hasher."""
        return xxhash.xxh3_128()

    digest = xxhash.xxh3_128_hexdigest
    """The 128-bit hex digest of some bytes (xxh3)."""

    ALGORITHM = "xxh3"
except ImportError:  # pragma: no cover - xxhash is a declared dependency
    import hashlib

    def new_hasher() -> Any:
        """A fresh 128-bit streaming hasher."""
        return hashlib.blake2b(digest_size=16)

    def digest(data: bytes) -> str:
        """The 128-bit hex digest of some bytes (blake2b)."""
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    ALGORITHM = "blake2b"

_MAX_DEPTH = 64
_NO_STABLE_STATE: tuple[type, ...] = (
    io.IOBase,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    type(threading.Lock()),
    type(threading.RLock()),
)
"""Values whose content cannot be told from the object (files, generators, locks, and sockets: see
:func:`no_stable_state`): never hashed."""
_WITH_SOCKETS: list[tuple[type, ...]] = []


def no_stable_state() -> tuple[type, ...]:
    """:data:`_NO_STABLE_STATE` with the socket type once the socket module is loaded: no socket exists before,
    and importing it at start-up costs more than a check (every socket's type derives from ``_socket.socket``)."""
    if _WITH_SOCKETS:
        return _WITH_SOCKETS[0]
    sockets = sys.modules.get("_socket")
    if sockets is None:
        return _NO_STABLE_STATE
    _WITH_SOCKETS.append((*_NO_STABLE_STATE, sockets.socket))
    return _WITH_SOCKETS[0]


class ValueHasher:
    """Feeds a value into a hasher by content: buffers for arrays and bytes, structure for containers."""

    def __init__(
        self,
        hasher: Any,
        code_of: Callable[[Any], str],
        on_fallback: Callable[[object, BaseException], None] | None = None,
    ) -> None:
        self.h = hasher
        self.code_of = code_of  # the code digest of a user function or class (from the layer above)
        self.on_fallback = on_fallback
        self.path: dict[int, int] = {}  # id -> depth of the containers being hashed (to see cycles)

    def digest_of(self, value: object) -> str:
        """The hash of ``value`` on its own, hashed the same way (for order-free containers)."""
        sub = ValueHasher(new_hasher(), self.code_of, self.on_fallback)
        sub.path = self.path  # a cycle through an order-free container is still a cycle
        sub.add(value)
        return sub.h.hexdigest()

    def tag(self, text: str) -> None:
        self.h.update(text.encode("utf-8", "surrogatepass") + b"\x00")

    def add(self, value: object, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:  # deep or cyclic structures: pickle copes with both
            self.add_pickle(value)
            return
        handler = _HANDLERS.get(type(value))
        if handler is not None:
            handler(self, value, depth)
            return
        for kind, handler in _FALLBACK_HANDLERS:
            if isinstance(value, kind):
                handler(self, value, depth)
                return
        module = type(value).__module__.partition(".")[0]
        if module == "numpy":
            np = sys.modules["numpy"]
            if type(value) is np.ndarray:  # subclasses (masked arrays...) carry more: their pickle
                self.add_array(value)
                return
            if isinstance(value, np.generic):
                self.tag(f"np:{value.dtype.str}")
                self.h.update(value.tobytes())
                return
        if module == "pandas":
            self.add_pandas(value)
            return
        if isinstance(value, enum.Enum):
            self.tag(f"enum:{_type_name(type(value))}.{value.name}")
            self.add(value.value, depth + 1)
            return
        if is_job_orchestra_class(type(value), "Step"):  # a step as a parameter: its identity, not its own parameters
            self.tag(f"step:{value}:{self.code_of(type(value))}")
            return
        if is_job_orchestra_class(type(value), "Context"):
            self.tag("context")
            return
        cls = type(value)
        state = getattr(value, "__dict__", None)
        if type(state) is dict and is_user(cls) and isinstance(cls, type) and not hasattr(cls, "__slots__"):
            # a plain object of the user's own class: by class code and attributes, so that sets inside
            # hash the same in every process (its pickle would not)
            self.tag(f"object:{_type_name(cls)}:{self.code_of(cls)}")
            self.add(state, depth + 1)
            return
        self.add_pickle(value)

    def add_array(self, arr: Any) -> None:
        self.tag(f"ndarray:{arr.dtype.str}:{arr.shape}")
        if arr.dtype.hasobject:
            self.add_pickle(arr.tolist())
            return
        np = sys.modules["numpy"]
        flat = np.ascontiguousarray(arr).reshape(-1)
        if arr.dtype.fields is None and arr.dtype.kind not in "mMV":
            self.h.update(flat)  # the buffer, no copy when contiguous
        else:
            self.h.update(flat.view(np.uint8))

    def add_pandas(self, value: Any) -> None:
        pd = sys.modules["pandas"]
        np = sys.modules["numpy"]
        if isinstance(value, pd.DataFrame):
            self.tag(f"DataFrame:{value.shape}")
            self.add(list(value.columns))
            self.add([str(t) for t in value.dtypes])
            self.add_pandas(value.index)
            for i in range(value.shape[1]):
                self.add_pandas_column(value.iloc[:, i], pd, np)
        elif isinstance(value, pd.Series):
            self.tag(f"Series:{value.name!r}:{value.dtype}")
            self.add_pandas(value.index)
            self.add_pandas_column(value, pd, np)
        elif isinstance(value, pd.Index):
            self.tag(f"Index:{type(value).__name__}:{value.names!r}:{value.dtype}")
            if isinstance(value, pd.RangeIndex):
                self.tag(f"{value.start}:{value.stop}:{value.step}")
            else:
                try:
                    self.h.update(pd.util.hash_pandas_object(value, index=False).to_numpy())
                except TypeError:
                    self.add(value.tolist(), 1)
        else:
            self.add_pickle(value)

    def add_pandas_column(self, col: Any, pd: Any, np: Any) -> None:
        dtype = col.dtype
        if isinstance(dtype, np.dtype) and not dtype.hasobject:
            self.add_array(col.to_numpy())
        else:
            self.tag(str(dtype))
            try:
                self.h.update(pd.util.hash_pandas_object(col, index=False).to_numpy())
            except TypeError:  # unhashable cells (lists, dicts): by structure instead
                self.add(col.tolist(), 1)

    def add_pickle(self, value: object) -> None:
        """Anything else: its pickle (protocol 5, big buffers hashed in place), else dill, else its identity."""
        cls = type(value)
        self.tag(f"obj:{_type_name(cls)}")
        if is_user(cls) and isinstance(cls, type):
            self.tag(self.code_of(cls))
        if isinstance(value, no_stable_state()):  # dill would pickle a file by name and position: not content
            if self.on_fallback is not None:
                self.on_fallback(value, TypeError(f"a {cls.__qualname__} has no stable content to hash"))
            self.tag(f"unhashable:{id(value)}")
            return
        buffers: list[pickle.PickleBuffer] = []
        try:
            data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        except Exception:
            buffers.clear()
            try:
                from .safe_dill import dumps  # imports dill (heavy): only values no faster path handles

                data = dumps(value, protocol=5, byref=True)
            except Exception as exc:
                if self.on_fallback is not None:
                    self.on_fallback(value, exc)
                self.tag(f"unhashable:{id(value)}")
                return
        self.h.update(data)
        for buf in buffers:
            self.h.update(buf.raw())


def _type_name(cls: type) -> str:
    """A class by name: the user's by qualified name only (a cell, a file or exec gives it another module)."""
    return cls.__qualname__ if is_user(cls) else f"{cls.__module__}.{cls.__qualname__}"


def _add_scalar(vh: ValueHasher, value: object, depth: int) -> None:
    vh.tag(f"{type(value).__name__}:{value!r}")


def _add_str(vh: ValueHasher, value: str, depth: int) -> None:
    vh.tag(f"str:{len(value)}")
    vh.h.update(value.encode("utf-8", "surrogatepass"))


def _add_bytes(vh: ValueHasher, value: Any, depth: int) -> None:
    data = memoryview(value)
    vh.tag(f"{type(value).__name__}:{data.nbytes}")
    vh.h.update(data.cast("B") if data.contiguous else data.tobytes())


def _add_sequence(vh: ValueHasher, value: Any, depth: int) -> None:
    if _cycle(vh, value, depth):
        return
    vh.tag(f"{type(value).__name__}:{len(value)}")
    for item in value:
        vh.add(item, depth + 1)
    del vh.path[id(value)]


def _cycle(vh: ValueHasher, value: Any, depth: int) -> bool:
    """True (tagging how far up it points) when ``value`` contains itself; else it is entered."""
    above = vh.path.get(id(value))
    if above is not None:
        vh.tag(f"cycle:{depth - above}")
        return True
    vh.path[id(value)] = depth
    return False


def _add_mapping(vh: ValueHasher, value: Mapping, depth: int) -> None:
    """Dicts compare equal whatever their insertion order, so they hash the same (an OrderedDict does not)."""
    if _cycle(vh, value, depth):
        return
    vh.tag(f"{type(value).__qualname__}:{len(value)}")
    if isinstance(value, collections.OrderedDict):
        items: Any = value.items()
    elif all(type(k) is str for k in value):
        items = sorted(value.items(), key=_first)
    else:  # keys of mixed types: order the pairs by the hash of their key
        items = [pair for _, pair in sorted(((vh.digest_of(k), (k, v)) for k, v in value.items()), key=_first)]
    for key, item in items:
        vh.add(key, depth + 1)
        vh.add(item, depth + 1)
    del vh.path[id(value)]


def _first(pair: tuple) -> Any:
    return pair[0]


def _add_set(vh: ValueHasher, value: Any, depth: int) -> None:
    vh.tag(f"{type(value).__name__}:{len(value)}")
    for digest in sorted(vh.digest_of(item) for item in value):  # order-free, whatever the hash seed
        vh.tag(digest)


def _add_function(vh: ValueHasher, value: Any, depth: int) -> None:
    if isinstance(value, (types.FunctionType, type)) and is_user(value):
        vh.tag(f"code:{vh.code_of(value)}")
    elif isinstance(value, types.MethodType):
        vh.tag("method")
        _add_function(vh, value.__func__, depth)
        vh.tag(f"of:{_type_name(type(value.__self__))}")
        vh.add(value.__self__, depth + 1)  # the state of the object it is bound to counts
    elif isinstance(value, functools.partial):
        vh.tag("partial")
        _add_function(vh, value.func, depth)
        vh.add(value.args, depth + 1)
        vh.add(value.keywords, depth + 1)
    else:
        vh.tag(f"ref:{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', repr(value))}")


_HANDLERS: dict[type, Callable[[ValueHasher, Any, int], None]] = {
    type(None): _add_scalar,
    bool: _add_scalar,
    int: _add_scalar,
    float: _add_scalar,
    complex: _add_scalar,
    str: _add_str,
    bytes: _add_bytes,
    bytearray: _add_bytes,
    memoryview: _add_bytes,
    tuple: _add_sequence,
    list: _add_sequence,
    dict: _add_mapping,
    set: _add_set,
    frozenset: _add_set,
    types.FunctionType: _add_function,
    types.BuiltinFunctionType: _add_function,
    types.MethodType: _add_function,
    functools.partial: _add_function,
    type: _add_function,
    range: _add_scalar,
    types.ModuleType: lambda vh, m, d: vh.tag(f"module:{m.__name__}"),
}
_FALLBACK_HANDLERS: list[tuple[type | tuple[type, ...], Callable[[ValueHasher, Any, int], None]]] = [
    ((str,), _add_str),
    ((bytes, bytearray), _add_bytes),
    ((tuple, list), _add_sequence),
    ((dict,), _add_mapping),
    ((set, frozenset), _add_set),
    ((type,), _add_function),
]
