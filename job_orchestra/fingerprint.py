"""Fingerprints: what a step's result was computed from, to tell a fresh cached result from a stale one.

A step's fingerprint hashes three things:

- its **code**: the bytecode, constants and names of every method its class (and its user-defined base
  classes) defines, recursively through nested functions, closures, decorated functions and the module-level
  helper functions, classes and simple constants they use. Bytecode is what runs: re-running an unchanged
  cell, moving it, a new kernel, or a pipeline restored from a snapshot in a fresh process (where no source
  text exists) give the same fingerprint; editing ``run()`` or anything it uses changes it. Line numbers,
  file names, comments and class docstrings are left out. A new Python minor version counts as new code.
- its **parameters**: every attribute of the step object except ``dependencies``, ``ctx`` and
  ``name_alias`` (so the ``data`` of :meth:`Step.from_data` and the ``output`` of :meth:`Step.stepify`
  count). Arrays, DataFrames and bytes are hashed through their buffers with xxHash (a 1 GB array takes a
  few tens of milliseconds); other values through their pickle.
- the fingerprints of its **dependencies**, in ``depends_on`` order.

The fingerprint recorded with a result is a string ``"<total>:<code>:<parameters>:<inputs>"``; only equality
matters, and the parts let a plan say *why* a result is stale.
"""

from __future__ import annotations

import dis
import enum
import functools
import pickle
import sys
import sysconfig
import threading
import types
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .step import Step

__all__ = [
    "PARAMETER_EXCLUDE",
    "FingerprintPass",
    "code_digest",
    "hash_value",
    "param_digests",
    "params_digest",
    "stale_reason",
]

try:  # xxh3 hashes about 30 GB/s here, blake2b under 1.5 GB/s; both are good enough against accidents
    import xxhash

    def _new_hasher() -> Any:
        return xxhash.xxh3_128()

    _digest = xxhash.xxh3_128_hexdigest

    _ALGORITHM = "xxh3"
except ImportError:  # pragma: no cover - xxhash is a declared dependency
    import hashlib

    def _new_hasher() -> Any:
        return hashlib.blake2b(digest_size=16)

    def _digest(data: bytes) -> str:
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    _ALGORITHM = "blake2b"

PARAMETER_EXCLUDE = frozenset({"dependencies", "ctx", "name_alias", "_jo_parameters"})
"""Step attributes that are not parameters: the 1.1 constructor arguments."""

digest = _digest
"""The 128-bit hex digest of some bytes (xxh3)."""

_SALT = f"{_ALGORITHM}|{sys.implementation.cache_tag}|".encode()
_MAX_DEPTH = 64
_MISSING = object()
_LEN = object()  # marks a "number of names in this namespace" watch entry
_CODE = object()  # marks a "this function still runs this code object" watch entry


# ---------------------------------------------------------------------------------------------------------
# Which code is the user's (hashed by content) and which is a library's (referred to by name)
# ---------------------------------------------------------------------------------------------------------
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(sorted(d.rstrip("/") + "/" for d in dirs if d))


@functools.cache
def _is_user_module(module: str | None) -> bool:
    """True for code the user writes (a notebook, a script, a project module): its content is hashed."""
    if module is None or module == "__main__":
        return True
    top = module.partition(".")[0]
    if top in ("job_orchestra", "builtins") or top in sys.builtin_module_names:
        return False
    mod = sys.modules.get(module) or sys.modules.get(top)
    file = getattr(mod, "__file__", None)
    if not file:
        return mod is None or top not in sys.stdlib_module_names
    return not file.startswith(_library_dirs())


def _is_user(obj: object) -> bool:
    return _is_user_module(getattr(obj, "__module__", None))


# ---------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------
class _ValueHasher:
    """Feeds a value into a hasher by content: buffers for arrays and bytes, structure for containers."""

    def __init__(self, hasher: Any, on_fallback: Callable[[object, BaseException], None] | None = None) -> None:
        self.h = hasher
        self.on_fallback = on_fallback
        self.path: dict[int, int] = {}  # id -> depth of the containers being hashed (to see cycles)

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
        from .context import Context
        from .step import Step

        if isinstance(value, enum.Enum):
            self.tag(f"enum:{type(value).__module__}.{type(value).__qualname__}.{value.name}")
            self.add(value.value, depth + 1)
            return
        if isinstance(value, Step):  # a step as a parameter: its identity, not its own parameters
            self.tag(f"step:{value}:{code_digest(type(value))}")
            return
        if isinstance(value, Context):
            self.tag("context")
            return
        cls = type(value)
        state = getattr(value, "__dict__", None)
        if type(state) is dict and _is_user(cls) and isinstance(cls, type) and not hasattr(cls, "__slots__"):
            # a plain object of the user's own class: by class code and attributes, so that sets inside
            # hash the same in every process (its pickle would not)
            self.tag(f"object:{cls.__module__}.{cls.__qualname__}:{code_digest(cls)}")
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
        self.tag(f"obj:{cls.__module__}.{cls.__qualname__}")
        if _is_user(cls) and isinstance(cls, type):
            self.tag(code_digest(cls))
        buffers: list[pickle.PickleBuffer] = []
        try:
            data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        except Exception:
            buffers.clear()
            try:
                import dill

                data = dill.dumps(value, protocol=5, byref=True)
            except Exception as exc:
                if self.on_fallback is not None:
                    self.on_fallback(value, exc)
                self.tag(f"unhashable:{id(value)}")
                return
        self.h.update(data)
        for buf in buffers:
            self.h.update(buf.raw())


def _add_scalar(vh: _ValueHasher, value: object, depth: int) -> None:
    vh.tag(f"{type(value).__name__}:{value!r}")


def _add_str(vh: _ValueHasher, value: str, depth: int) -> None:
    vh.tag(f"str:{len(value)}")
    vh.h.update(value.encode("utf-8", "surrogatepass"))


def _add_bytes(vh: _ValueHasher, value: Any, depth: int) -> None:
    data = memoryview(value)
    vh.tag(f"{type(value).__name__}:{data.nbytes}")
    vh.h.update(data.cast("B") if data.contiguous else data.tobytes())


def _add_sequence(vh: _ValueHasher, value: Any, depth: int) -> None:
    if _cycle(vh, value, depth):
        return
    vh.tag(f"{type(value).__name__}:{len(value)}")
    for item in value:
        vh.add(item, depth + 1)
    del vh.path[id(value)]


def _add_mapping(vh: _ValueHasher, value: Mapping, depth: int) -> None:
    if _cycle(vh, value, depth):
        return
    vh.tag(f"{type(value).__qualname__}:{len(value)}")
    for key, item in value.items():
        vh.add(key, depth + 1)
        vh.add(item, depth + 1)
    del vh.path[id(value)]


def _cycle(vh: _ValueHasher, value: Any, depth: int) -> bool:
    """True (tagging how far up it points) when ``value`` contains itself; else it is entered."""
    above = vh.path.get(id(value))
    if above is not None:
        vh.tag(f"cycle:{depth - above}")
        return True
    vh.path[id(value)] = depth
    return False


def _add_set(vh: _ValueHasher, value: Any, depth: int) -> None:
    vh.tag(f"{type(value).__name__}:{len(value)}")
    for digest in sorted(hash_value(item) for item in value):  # order-free, whatever the hash seed
        vh.tag(digest)


def _add_function(vh: _ValueHasher, value: Any, depth: int) -> None:
    if isinstance(value, (types.FunctionType, type)) and _is_user(value):
        vh.tag(f"code:{code_digest(value)}")
    elif isinstance(value, types.MethodType):
        vh.tag("method")
        _add_function(vh, value.__func__, depth)
        vh.tag(f"of:{type(value.__self__).__module__}.{type(value.__self__).__qualname__}")
    elif isinstance(value, functools.partial):
        vh.tag("partial")
        _add_function(vh, value.func, depth)
        vh.add(value.args, depth + 1)
        vh.add(value.keywords, depth + 1)
    else:
        vh.tag(f"ref:{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', repr(value))}")


_HANDLERS: dict[type, Callable[[_ValueHasher, Any, int], None]] = {
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
_FALLBACK_HANDLERS: list[tuple[type | tuple[type, ...], Callable[[_ValueHasher, Any, int], None]]] = [
    ((str,), _add_str),
    ((bytes, bytearray), _add_bytes),
    ((tuple, list), _add_sequence),
    ((dict,), _add_mapping),
    ((set, frozenset), _add_set),
    ((type,), _add_function),
]


def hash_value(value: object, on_fallback: Callable[[object, BaseException], None] | None = None) -> str:
    """A content hash of ``value`` (32 hex digits): equal content gives an equal hash in any process.

    Arrays, DataFrames and bytes go through their buffers; containers by structure; functions and classes
    by their code; anything else by its pickle. A value nothing can serialize is hashed by identity (it
    then counts as changed in every new process) after calling ``on_fallback(value, error)``.
    """
    vh = _ValueHasher(_new_hasher(), on_fallback)
    vh.add(value)
    return vh.h.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Code
# ---------------------------------------------------------------------------------------------------------
_IGNORED_CLASS_ATTRS = frozenset(
    {
        "__module__",
        "__qualname__",
        "__doc__",
        "__dict__",
        "__weakref__",
        "__firstlineno__",
        "__static_attributes__",
        "__annotations__",
        "__orig_bases__",
        "__parameters__",
        "__abstractmethods__",
        "_abc_impl",
        "__slotnames__",  # added by copyreg when an instance is first pickled
        "__dataclass_fields__",  # dataclasses: what they hold is in the generated methods and defaults
        "__dataclass_params__",
    }
)
_SIMPLE_CONSTANTS = (type(None), bool, int, float, complex, str, bytes)


class _CodeEntry:
    __slots__ = ("digest", "watch")

    def __init__(self, digest: str, watch: list[tuple[Any, Any, Any]]) -> None:
        self.digest = digest
        self.watch = watch

    def valid(self) -> bool:
        """False once a method, helper or constant this digest was built from has been replaced."""
        for namespace, name, obj in self.watch:
            if name is _LEN:
                if len(namespace) != obj:
                    return False
            elif name is _CODE:
                if namespace.__code__ is not obj:
                    return False
            elif namespace.get(name, _MISSING) is not obj:
                return False
        return True


_CODE_CACHE: weakref.WeakKeyDictionary[Any, _CodeEntry] = weakref.WeakKeyDictionary()


class _CodeWalker:
    """Hashes classes and functions by content, recording what it read so the cache can tell when it changes."""

    def __init__(self) -> None:
        self.h = _new_hasher()
        self.h.update(_SALT)
        self.values = _ValueHasher(self.h)
        self.seen: set[int] = set()
        self.watch: list[tuple[Any, Any, Any]] = []
        self.stored: set[str] = set()  # globals some walked code assigns: state, left out

    def tag(self, text: str) -> None:
        self.h.update(text.encode("utf-8", "surrogatepass") + b"\x00")

    def add(self, obj: object) -> None:
        if id(obj) in self.seen:
            self.tag("seen")
            return
        self.seen.add(id(obj))
        if isinstance(obj, type):
            self.add_class(obj)
        elif isinstance(obj, types.FunctionType):
            self.add_function(obj)
        else:
            self.add_member(obj)

    def add_class(self, cls: type) -> None:
        from .step import Step

        self.tag(f"class:{cls.__name__}")
        for klass in cls.__mro__:
            if klass is object or klass is Step:
                continue
            if not _is_user(klass):  # a library base: by name (its code changes only with its version)
                self.tag(f"base:{klass.__module__}.{klass.__qualname__}")
                continue
            namespace = klass.__dict__
            self.watch.append((namespace, _LEN, len(namespace)))
            self.tag(f"body:{klass.__name__}")
            for name in sorted(namespace):
                if name in _IGNORED_CLASS_ATTRS:
                    continue
                member = namespace[name]
                self.watch.append((namespace, name, member))
                self.tag(name)
                self.add_member(member)

    def add_member(self, member: object) -> None:
        if isinstance(member, types.FunctionType):
            self.add(member)
        elif isinstance(member, (staticmethod, classmethod)):
            self.tag(type(member).__name__)
            self.add(member.__func__)
        elif isinstance(member, property):
            self.tag("property")
            for fn in (member.fget, member.fset, member.fdel):
                if fn is None:
                    self.tag("-")
                else:
                    self.add(fn)
        elif isinstance(member, functools.cached_property):
            self.tag("cached_property")
            self.add(member.func)
        elif isinstance(member, type):
            if _is_user(member):
                self.add(member)
            else:
                self.tag(f"ref:{member.__module__}.{member.__qualname__}")
        elif isinstance(getattr(member, "__wrapped__", None), types.FunctionType):
            self.tag(f"wrapped:{type(member).__module__}.{type(member).__qualname__}")  # lru_cache and friends
            self.add(member.__wrapped__)  # type: ignore[attr-defined]
        else:
            self.values.add(member)

    def add_function(self, fn: types.FunctionType) -> None:
        if not _is_user(fn):
            self.tag(f"ref:{fn.__module__}.{fn.__qualname__}")
            return
        names: list[str] = []
        self.watch.append((fn, _CODE, fn.__code__))  # autoreload swaps __code__ in place
        self.add_code(fn.__code__, names)
        self.tag("defaults")
        self.values.add(fn.__defaults__)
        self.values.add(fn.__kwdefaults__)
        for cell in fn.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                self.tag("empty-cell")
                continue
            self.tag("cell")
            self.add_referenced(content)
        wrapped = getattr(fn, "__wrapped__", None)
        if wrapped is not None:
            self.tag("wraps")
            self.add_referenced(wrapped)
        namespace = fn.__globals__
        used = sorted(set(names))
        # Globals the code assigns (``global counter; counter += 1``) are state, not configuration: a step
        # that bumps one must not look edited after it ran. Functions are walked first, so what a helper
        # assigns is known before the constants are hashed.
        self.stored.update(_stored_globals(fn.__code__))
        constants = []
        for name in used:
            obj = namespace.get(name, _MISSING)
            if obj is _MISSING:
                continue
            if isinstance(obj, types.ModuleType):
                if _is_user_module(obj.__name__):  # ``import utils`` then ``utils.clean(...)``
                    self.add_module_members(obj, used)
                continue
            if isinstance(obj, (types.FunctionType, type)):
                if not _is_user(obj):
                    continue
            elif isinstance(obj, _SIMPLE_CONSTANTS) or _is_simple_tuple(obj):
                constants.append((name, obj))
                continue
            else:
                continue  # data and objects: not code
            self.watch.append((namespace, name, obj))
            self.tag(f"global:{name}")
            self.add_referenced(obj)
        for name, obj in constants:
            if name in self.stored:
                continue
            self.watch.append((namespace, name, obj))
            self.tag(f"global:{name}")
            self.add_referenced(obj)

    def add_module_members(self, module: types.ModuleType, names: list[str]) -> None:
        """The functions and classes of a user module that the code may use (any name it looks up)."""
        members = vars(module)
        for name in names:
            obj = members.get(name, _MISSING)
            if isinstance(obj, (types.FunctionType, type)) and _is_user(obj):
                self.watch.append((members, name, obj))
                self.tag(f"member:{module.__name__}.{name}")
                self.add_referenced(obj)

    def add_referenced(self, obj: object) -> None:
        if isinstance(obj, (types.FunctionType, type)):
            if _is_user(obj):
                self.add(obj)
            else:
                self.tag(f"ref:{obj.__module__}.{obj.__qualname__}")
        elif isinstance(obj, _SIMPLE_CONSTANTS) or _is_simple_tuple(obj):
            self.values.add(obj)
        else:
            self.tag(f"value:{type(obj).__module__}.{type(obj).__qualname__}")

    def add_code(self, code: types.CodeType, names: list[str]) -> None:
        h = self.h
        h.update(code.co_code)
        h.update(getattr(code, "co_exceptiontable", b""))
        self.tag(
            f"{code.co_name}|{code.co_argcount}|{code.co_posonlyargcount}|{code.co_kwonlyargcount}|{code.co_flags}"
        )
        self.tag("|".join(code.co_names))
        self.tag("|".join(code.co_varnames))
        self.tag("|".join(code.co_freevars) + "/" + "|".join(code.co_cellvars))
        names.extend(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.tag("code")
                self.add_code(const, names)
            elif isinstance(const, frozenset):  # iteration order depends on the hash seed
                self.tag("frozenset:" + "|".join(sorted(map(repr, const))))
            else:
                self.tag(f"{type(const).__name__}:{const!r}")


def _stored_globals(code: types.CodeType) -> set[str]:
    """Names a function (or code nested in it) assigns or deletes with a ``global`` statement."""
    out: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        for ins in dis.get_instructions(current):
            if ins.opname in ("STORE_GLOBAL", "DELETE_GLOBAL"):
                out.add(ins.argval)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return out


def _is_simple_tuple(obj: object) -> bool:
    return type(obj) is tuple and len(obj) <= 64 and all(isinstance(x, _SIMPLE_CONSTANTS) for x in obj)  # type: ignore[arg-type]


_in_progress = threading.local()


def code_digest(obj: type | types.FunctionType) -> str:
    """The content hash of a class's methods (or of a function), cached until one of them is replaced."""
    entry = _CODE_CACHE.get(obj)
    if entry is not None and entry.valid():
        return entry.digest
    busy: set[int] | None = getattr(_in_progress, "ids", None)
    if busy is None:
        busy = _in_progress.ids = set()
    if id(obj) in busy:  # a class whose attributes are its own instances (an Enum): refer to it by name
        return f"recursive:{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    busy.add(id(obj))
    try:
        walker = _CodeWalker()
        walker.add(obj)
    finally:
        busy.discard(id(obj))
    entry = _CodeEntry(walker.h.hexdigest()[:16], walker.watch)
    try:
        _CODE_CACHE[obj] = entry
    except TypeError:  # not weak-referenceable
        pass
    return entry.digest


# ---------------------------------------------------------------------------------------------------------
# Parameters and whole fingerprints
# ---------------------------------------------------------------------------------------------------------
_NO_PARAMS = "0" * 16
_warned: set[tuple[str, str]] = set()


_PARAM_KEYS = "_jo_parameters"


def _warn_unhashable(step: Step, key: str) -> Callable[[object, BaseException], None]:
    def warn(value: object, error: BaseException) -> None:
        where = (type(step).__qualname__, key)
        if where not in _warned:
            _warned.add(where)
            warnings.warn(
                f"job-orchestra: the parameter {key!r} of step {str(step)!r} ({type(value).__name__}) cannot be "
                f"pickled ({type(error).__name__}: {error}), so its content is not part of the fingerprint: "
                "the step's cached result counts as stale in every new process. Keep such objects out of the "
                "step's attributes (create them in run()), or make them picklable.",
                RuntimeWarning,
                stacklevel=2,
            )

    return warn


def param_digests(step: Step) -> dict[str, str]:
    """The hash of each parameter of a step (empty when it has none), in name order.

    Parameters are the attributes other than ``dependencies``, ``ctx`` and ``name_alias`` that the step has
    when it is first fingerprinted (after ``__init__``, before it ever runs). Their names are kept on the
    step (and in pickles of it), so attributes a ``run()`` adds to ``self`` are not parameters.
    """
    attrs = step.__dict__
    keys = attrs.get(_PARAM_KEYS)
    if keys is None:
        keys = [k for k in attrs if k not in PARAMETER_EXCLUDE]
        keys = attrs[_PARAM_KEYS] = tuple(sorted(keys)) if keys else ()
    parts: dict[str, str] = {}
    for key in keys:
        if key not in attrs:
            parts[key] = "deleted"
            continue
        warn = _warn_unhashable(step, key)
        vh = _ValueHasher(_new_hasher(), warn)
        try:
            vh.add(attrs[key])
        except Exception as exc:  # never let hashing break a run: count the value as changed instead
            warn(attrs[key], exc)
            vh.tag(f"unhashable:{id(attrs[key])}")
        parts[key] = vh.h.hexdigest()[:16]
    return parts


def combine_params(parts: dict[str, str]) -> str:
    """One digest for a step's parameters from :func:`param_digests`."""
    if not parts:
        return _NO_PARAMS
    return _digest("|".join(f"{k}={v}" for k, v in parts.items()).encode("utf-8", "surrogatepass"))[:16]


def params_digest(step: Step) -> str:
    """The hash of a step's parameters (see :func:`param_digests`)."""
    return combine_params(param_digests(step))


def drop_state(step: Step, keys: Iterable[str]) -> None:
    """Stop counting ``keys`` as parameters of ``step``: its ``run()`` changes them, so they are state."""
    dropped = set(keys)
    attrs = step.__dict__
    attrs[_PARAM_KEYS] = tuple(k for k in attrs.get(_PARAM_KEYS, ()) if k not in dropped)
    where = (type(step).__qualname__, ",".join(sorted(dropped)))
    if where not in _warned:
        _warned.add(where)
        warnings.warn(
            f"job-orchestra: step {str(step)!r} changed its attribute(s) {', '.join(map(repr, sorted(dropped)))} "
            "while it ran, so they are treated as state, not as parameters: changing them no longer makes its "
            "result stale. Keep parameters unchanged in run(); keep logs and counters outside the step.",
            RuntimeWarning,
            stacklevel=3,
        )


def given_fingerprint(token: str) -> str:
    """The stand-in fingerprint of a value put into a Context by hand, from the hash of its content."""
    return _digest(b"given|" + token.encode("utf-8", "surrogatepass"))


_SHOW_INPUTS = 16  # per-input digests are kept in the fingerprint for steps with up to this many inputs


def make_fingerprint(code: str, params: str, inputs: Iterable[str]) -> tuple[str, str]:
    """``(total, fingerprint)`` of a step from its code and parameter digests and its inputs' totals."""
    inputs = list(inputs)
    total = _digest(f"{code}|{params}|{'|'.join(inputs)}".encode())
    if len(inputs) <= _SHOW_INPUTS:
        shown = "/".join(t[:8] for t in inputs)
    else:
        shown = "#" + _digest("|".join(inputs).encode())[:8]
    return total, f"{total}:{code}:{params}:{shown}"


def total_of(fingerprint: str) -> str:
    """The total part of a recorded fingerprint (what dependents hash)."""
    return fingerprint.partition(":")[0]


def stale_reason(recorded: str, current: str, inputs: list[str], input_totals: list[str]) -> tuple[str, int | None]:
    """Why ``recorded`` differs from ``current``: ``("code" | "parameters" | "upstream", input index)``.

    For "upstream" the index is the first input (in ``depends_on`` order) whose fingerprint changed, or None
    when it cannot be told (more than 16 inputs, or a fingerprint from another version).
    """
    old = recorded.split(":")
    new = current.split(":")
    if len(old) != 4:
        return "code", None
    if old[1] != new[1]:
        return "code", None
    if old[2] != new[2]:
        return "parameters", None
    shown = old[3]
    if shown.startswith("#") or len(inputs) > _SHOW_INPUTS:
        return "upstream", None
    before = shown.split("/") if shown else []
    for i, total in enumerate(input_totals):
        if i >= len(before) or before[i] != total[:8]:
            return "upstream", i
    return "upstream", None


def _safe_code_digest(kind: type) -> str:
    try:
        return code_digest(kind)
    except Exception as exc:  # never let hashing break a run: such a class counts as changed in a new process
        where = (kind.__qualname__, "<code>")
        if where not in _warned:
            _warned.add(where)
            warnings.warn(
                f"job-orchestra: cannot fingerprint the code of {kind.__qualname__} ({type(exc).__name__}: {exc}); "
                "its cached results count as stale in every new process. Please report this.",
                RuntimeWarning,
                stacklevel=3,
            )
        return _digest(f"unhashable-code:{id(kind)}".encode())[:16]


class FingerprintPass:
    """Computes fingerprints for the steps of one graph in execution order, caching code digests per class."""

    __slots__ = ("code", "params")

    def __init__(self) -> None:
        self.code: dict[type, str] = {}
        self.params: dict[str, dict[str, str]] = {}  # per-parameter digests of the steps that have any

    def step(self, name: str, step: Step, input_totals: list[str]) -> tuple[str, str]:
        """``(total, fingerprint)`` of ``step`` given the totals of its inputs, in ``depends_on`` order."""
        kind = type(step)
        code = self.code.get(kind)
        if code is None:
            code = self.code[kind] = _safe_code_digest(kind)
        attrs = step.__dict__
        keys = attrs.get(_PARAM_KEYS)
        if keys == ():  # the common case, inlined: this runs once per step per plan
            params = _NO_PARAMS
        else:
            parts = param_digests(step)
            if parts:
                self.params[name] = parts
            params = combine_params(parts)
        if len(input_totals) <= _SHOW_INPUTS:
            total = _digest(f"{code}|{params}|{'|'.join(input_totals)}".encode())
            return total, f"{total}:{code}:{params}:{'/'.join([t[:8] for t in input_totals])}"
        return make_fingerprint(code, params, input_totals)
