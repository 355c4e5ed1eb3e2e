"""Code digests: the content hash of a class's methods or of a function, and of the code they use.

A class is hashed through every method its class and its user-defined base classes define, recursively
through nested functions, closures, decorated functions and the module-level helper functions, classes and
simple constants they use. Digests are cached per class until one of the things read is replaced.
"""

from __future__ import annotations

import dis
import functools
import sys
import threading
import types
import weakref
from typing import Any

from .user_code import is_user, is_user_module
from .value_hash import ALGORITHM, ValueHasher, new_hasher

__all__ = ["code_digest"]

_SALT = f"{ALGORITHM}|{sys.implementation.cache_tag}|".encode()
_MISSING = object()
_LEN = object()  # marks a "number of names in this namespace" watch entry
_CODE = object()  # marks a "this function still runs this code object" watch entry


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
        self.h = new_hasher()
        self.h.update(_SALT)
        self.values = ValueHasher(self.h, code_digest)
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
        self.tag(f"class:{cls.__name__}")
        for klass in cls.__mro__:
            if klass is object or (klass.__name__ == "Step" and klass.__module__ == "job_orchestra.step"):
                continue
            if not is_user(klass):  # a library base: by name (its code changes only with its version)
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
            if is_user(member):
                self.add(member)
            else:
                self.tag(f"ref:{member.__module__}.{member.__qualname__}")
        elif isinstance(getattr(member, "__wrapped__", None), types.FunctionType):
            self.tag(f"wrapped:{type(member).__module__}.{type(member).__qualname__}")  # lru_cache and friends
            self.add(member.__wrapped__)  # type: ignore[attr-defined]
        else:
            self.values.add(member)

    def add_function(self, fn: types.FunctionType) -> None:
        if not is_user(fn):
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
                if is_user_module(obj.__name__):  # ``import utils`` then ``utils.clean(...)``
                    self.add_module_members(obj, used)
                continue
            if isinstance(obj, (types.FunctionType, type)):
                if not is_user(obj):
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
            if isinstance(obj, (types.FunctionType, type)) and is_user(obj):
                self.watch.append((members, name, obj))
                self.tag(f"member:{module.__name__}.{name}")
                self.add_referenced(obj)

    def add_referenced(self, obj: object) -> None:
        if isinstance(obj, (types.FunctionType, type)):
            if is_user(obj):
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
