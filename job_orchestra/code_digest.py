"""Code digests: the content hash of a class's methods or of a function, and of what that code reads.

A digest is made of named *parts*, each hashed on its own so that a plan can say what changed:

- ``Train.run``: a method (or other attribute) of the class or of one of its user-defined base classes;
- ``helper make_model``: a function or class of the user's that the code calls, found through globals,
  closures, decorators and modules of the user's (``import utils``, ``pkg.helpers.f()``);
- ``constant CV_SEED``: a module-level value the code reads (numbers, strings, and also dicts, lists,
  sets, tuples, arrays, DataFrames, enums and the user's own objects, hashed by content);
- ``library sklearn``: a library the code uses, by name and version (its code is not hashed).

Code is hashed through a normalised instruction stream (:mod:`job_orchestra.code_normal`), so the same
source gives the same digest however it was compiled. Digests are cached per class or function until one of
the things read changes: a replaced method, helper or ``__code__`` (``%autoreload``), or a mutable value
whose content hash differs (re-hashed at every check, since mutation in place keeps its identity).
"""

from __future__ import annotations

import builtins
import enum
import functools
import io
import sys
import threading
import types
import weakref
from typing import Any, NamedTuple

from .code_normal import add_normalised_code, stored_globals
from .user_code import is_user, is_user_module, library_version
from .value_hash import ALGORITHM, ValueHasher, new_hasher

__all__ = ["CodeRecord", "code_digest", "code_record"]

_SALT = f"{ALGORITHM}|{sys.implementation.cache_tag}|v2|".encode()
_MISSING = object()
_OUR_BASES = frozenset(
    {("job_orchestra.step", "Step"), ("job_orchestra.graph", "Node"), ("job_orchestra.function_step", "FunctionStep")}
)  # never hashed
_FUNCTION_STEP = ("job_orchestra.function_step", "FunctionStep")  # ``@step`` classes: ``func`` is their code

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
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, range)
_UNTELLABLE = (io.IOBase, types.GeneratorType)
"""Module-level objects whose content the code may read but nothing can hash: the plan says [?] (and
sockets: see :func:`_untellable`)."""


def _untellable(obj: object) -> bool:
    sockets = sys.modules.get("_socket")  # not loaded: no socket exists (see value_hash.no_stable_state)
    return isinstance(obj, _UNTELLABLE) or (sockets is not None and isinstance(obj, sockets.socket))


def _is_immutable(obj: object, depth: int = 0) -> bool:
    """True when identity proves the content unchanged (no need to hash it again at every check)."""
    if isinstance(obj, _IMMUTABLE):
        return True
    if type(obj) in (tuple, frozenset) and depth < 4 and len(obj) <= 256:  # type: ignore[arg-type]
        return all(_is_immutable(x, depth + 1) for x in obj)  # type: ignore[union-attr]
    return False


def _hashed_by_content(obj: object) -> bool:
    """Module-level values whose content is part of the digest; other library objects count by type."""
    if isinstance(obj, (*_IMMUTABLE, tuple, list, dict, set, frozenset, bytearray, functools.partial)):
        return True
    cls = type(obj)
    top = cls.__module__.partition(".")[0]
    return top in ("numpy", "pandas") or isinstance(obj, enum.Enum) or is_user(cls)


def is_function_step(klass: type) -> bool:
    """A class made by ``@step``: its function is labelled by its own name (``code: train``)."""
    return any((b.__module__, b.__name__) == _FUNCTION_STEP for b in klass.__bases__)


class CodeRecord(NamedTuple):
    """A code digest and the parts it was made of (label -> 16 hex digits), plus what could not be hashed."""

    digest: str
    parts: dict[str, str]
    doubts: tuple[str, ...] = ()


class _Entry:
    __slots__ = ("record", "watch")

    def __init__(self, record: CodeRecord, watch: list[tuple]) -> None:
        self.record = record
        self.watch = watch

    def valid(self) -> bool:
        """False once a method, helper, code object or value this record was built from has changed."""
        for kind, a, b, c in self.watch:
            if kind == "ns":
                if a.get(b, _MISSING) is not c:
                    return False
            elif kind == "len":
                if len(a) != b:
                    return False
            elif kind == "code":
                if a.__code__ is not b:
                    return False
            elif kind == "cell":
                try:
                    if a.cell_contents is not b:
                        return False
                except ValueError:
                    if b is not _MISSING:
                        return False
            elif _value_digest(a, None) != c:  # "value": mutable content, hashed again
                return False
        return True


_CACHE: weakref.WeakKeyDictionary[Any, _Entry] = weakref.WeakKeyDictionary()
_in_progress = threading.local()


def _value_digest(value: object, doubts: list[str] | None, label: str = "") -> str:
    def fallback(obj: object, exc: BaseException) -> None:
        if doubts is not None:
            doubts.append(f"{label} is {_describe(obj)}")

    vh = ValueHasher(new_hasher(), code_digest, fallback)
    vh.add(value)
    return vh.h.hexdigest()[:16]


def _describe(obj: object) -> str:
    """A short phrase for a value that cannot be hashed: "an open file", "a socket", "a Lock"."""
    if isinstance(obj, io.IOBase):
        return "an open file" if not getattr(obj, "closed", False) else "a closed file"
    sockets = sys.modules.get("_socket")
    if sockets is not None and isinstance(obj, sockets.socket):
        return "a socket"
    name = type(obj).__qualname__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name} (it cannot be pickled)"


class _Walker:
    """Hashes classes and functions part by part, recording what it read so the cache can tell a change."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.owners: dict[str, int] = {}  # label -> id of what it names, to tell two things of one name
        self.doubts: list[str] = []
        self.watch: list[tuple] = []
        self.seen: set[int] = set()
        self.stored: set[str] = set()  # globals some walked code assigns: state, left out
        self.constants: set[int] = set()  # ids of the values hashed as constants
        self.globals_todo: list[tuple[dict, list[str], list[str]]] = []

    # -- parts ------------------------------------------------------------------------------------------
    def label(self, kind: str, name: str, module: str | None, obj: object) -> str:
        label = f"{kind}{name}"
        owner = self.owners.setdefault(label, id(obj))
        if owner != id(obj):
            label = f"{kind}{module}.{name}"
        return label

    def add_part(self, label: str, h: Any) -> None:
        self.parts[label] = h.hexdigest()[:16]

    # -- roots ------------------------------------------------------------------------------------------
    def add_root(self, obj: object) -> None:
        if isinstance(obj, type):
            self.add_class(obj)
        elif isinstance(obj, types.FunctionType):
            self.add_helper(obj)
        self.resolve_globals()

    def add_class(self, cls: type) -> None:
        if id(cls) in self.seen:
            return
        self.seen.add(id(cls))
        for klass in cls.__mro__:
            if klass is object or (klass.__module__, klass.__name__) in _OUR_BASES:
                continue
            if not is_user(klass):  # a library base: by name and version
                self.add_library(f"{klass.__module__}.{klass.__qualname__}", klass.__module__)
                continue
            namespace = klass.__dict__
            self.watch.append(("len", namespace, len(namespace), None))
            h = new_hasher()
            h.update(f"class {klass.__name__} bases {[b.__qualname__ for b in klass.__bases__]}".encode())
            self.add_part(self.label("class ", klass.__qualname__, klass.__module__, klass), h)
            for name in sorted(namespace):
                if name in _IGNORED_CLASS_ATTRS:
                    continue
                member = namespace[name]
                self.watch.append(("ns", namespace, name, member))
                shown = (
                    klass.__qualname__ if name == "func" and is_function_step(klass) else f"{klass.__qualname__}.{name}"
                )
                label = self.label("", shown, klass.__module__, member)
                self.add_member(label, member, klass.__module__)

    def add_member(self, label: str, member: object, module: str | None) -> None:
        h = new_hasher()
        vh = ValueHasher(h, code_digest)
        if isinstance(member, types.FunctionType):
            self.hash_function(h, member, label)
        elif isinstance(member, (staticmethod, classmethod)):
            h.update(type(member).__name__.encode())
            self.hash_function(h, member.__func__, label)
        elif isinstance(member, property):
            for fn in (member.fget, member.fset, member.fdel):
                h.update(b"-" if fn is None else b"+")
                if fn is not None:
                    self.hash_function(h, fn, label)
        elif isinstance(member, functools.cached_property):
            self.hash_function(h, member.func, label)
        elif isinstance(member, type):
            if is_user(member):
                h.update(f"class {member.__qualname__}".encode())
                self.add_class(member)
            else:
                h.update(f"class {member.__module__}.{member.__qualname__}".encode())
                self.add_library(f"{member.__module__}.{member.__qualname__}", member.__module__)
        elif isinstance(getattr(member, "__wrapped__", None), types.FunctionType):
            h.update(f"wrapped:{type(member).__module__}.{type(member).__qualname__}".encode())  # lru_cache...
            self.hash_function(h, member.__wrapped__, label)  # type: ignore[attr-defined]
        else:
            self.add_value_into(vh, member, label, by_content=False)
        self.add_part(label, h)

    def add_helper(self, fn: types.FunctionType) -> None:
        if id(fn) in self.seen:
            return
        self.seen.add(id(fn))
        if not is_user(fn):
            self.add_library(f"{fn.__module__}.{fn.__qualname__}", fn.__module__)
            return
        label = self.label("helper ", fn.__qualname__, fn.__module__, fn)
        h = new_hasher()
        self.hash_function(h, fn, label)
        self.add_part(label, h)

    def add_library(self, name: str, module: str | None) -> None:
        """A library the code uses: one part per top-level package, from its version (not its code)."""
        top = (module or "").partition(".")[0]
        label = f"library {top}"
        if label not in self.parts:
            h = new_hasher()
            h.update(f"{top}@{library_version(top)}".encode())
            self.add_part(label, h)

    # -- functions --------------------------------------------------------------------------------------
    def hash_function(self, h: Any, fn: types.FunctionType, label: str) -> None:
        """Feed a function's own code, defaults and closure into ``h``; queue the globals it reads."""
        self.watch.append(("code", fn, fn.__code__, None))  # autoreload swaps __code__ in place
        names: list[str] = []
        attrs: list[str] = []
        add_normalised_code(h, fn.__code__, names, attrs)
        vh = ValueHasher(h, code_digest)
        h.update(b"defaults")
        self.add_value_into(vh, fn.__defaults__, f"default of {label}")
        self.add_value_into(vh, fn.__kwdefaults__, f"default of {label}")
        state = stored_globals(fn.__code__)
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                h.update(b"empty-cell")
                self.watch.append(("cell", cell, _MISSING, None))
                continue
            self.watch.append(("cell", cell, content, None))
            h.update(f"cell:{var}".encode())
            if isinstance(content, (types.FunctionType, type)):
                if is_user(content):  # by name only: the module a cell, file or exec gives it is not content
                    h.update(f"user:{content.__qualname__}".encode())
                else:
                    h.update(f"{content.__module__}.{content.__qualname__}".encode())
                self.add_code_object(content)
            elif var in state:  # a log list the code appends to: state, not configuration
                h.update(b"state")
            elif _hashed_by_content(content):
                self.add_value_into(vh, content, f"closure variable {var} of {label}")
            else:  # a library's object (an Event, a client): by type, as at module level
                h.update(f"instance of {type(content).__module__}.{type(content).__qualname__}".encode())
                if _untellable(content):
                    self.doubts.append(f"closure variable {var} of {label} is {_describe(content)}")
        wrapped = getattr(fn, "__wrapped__", None)
        if isinstance(wrapped, (types.FunctionType, type)):
            h.update(b"wraps")
            self.add_code_object(wrapped)
        self.stored.update(state)
        self.globals_todo.append((fn.__globals__, names, attrs))

    def add_code_object(self, obj: object) -> None:
        if isinstance(obj, type):
            if is_user(obj):
                self.add_class(obj)
            else:
                self.add_library(f"{obj.__module__}.{obj.__qualname__}", obj.__module__)
        elif isinstance(obj, types.FunctionType):
            self.add_helper(obj)

    def add_value_into(self, vh: ValueHasher, value: object, label: str, *, by_content: bool = True) -> None:
        """Hash a value into a part; a mutable one is watched by content unless ``by_content`` is False
        (class attributes: a registry or cache a class keeps is its state, seen when the class is redefined)."""
        digest = _value_digest(value, self.doubts, label)
        vh.tag(digest)
        if by_content and not _is_immutable(value):
            self.watch.append(("value", value, None, digest))

    # -- globals ----------------------------------------------------------------------------------------
    def resolve_globals(self) -> None:
        """Walk the globals the queued functions read (functions first, so what they assign is known)."""
        constants: list[tuple[dict, str, str, object]] = []
        while self.globals_todo:
            namespace, names, attrs = self.globals_todo.pop()
            for name in sorted(set(names)):
                obj = namespace.get(name, _MISSING)
                if obj is _MISSING or getattr(builtins, name, _MISSING) is obj:
                    continue  # a built-in, also when a pickle copied it into the globals (dill does)
                self.add_global(namespace, name, obj, attrs, constants, "")
        for namespace, name, prefix, obj in constants:
            if name in self.stored and not prefix:
                continue
            label = f"constant {prefix}{name}"
            if label in self.parts or (not _is_immutable(obj) and id(obj) in self.constants):
                continue  # one value reached twice (``from m import T`` and ``m.T``): one part
            self.constants.add(id(obj))
            self.watch.append(("ns", namespace, name, obj))
            h = new_hasher()
            if _hashed_by_content(obj):
                self.add_value_into(ValueHasher(h, code_digest), obj, label)
            else:  # a library's object (a logger, a lock, a client): by type, see the docs' table
                h.update(f"instance of {type(obj).__module__}.{type(obj).__qualname__}".encode())
                if _untellable(obj):  # what the code reads from it cannot be known: say so
                    self.doubts.append(f"{label} is {_describe(obj)}")
            self.add_part(label, h)

    def add_global(
        self, namespace: dict, name: str, obj: object, names: list[str], constants: list, prefix: str
    ) -> None:
        if isinstance(obj, types.ModuleType):
            self.watch.append(("ns", namespace, name, obj))
            if is_user_module(obj.__name__):  # ``import utils`` then ``utils.clean(...)``, ``pkg.sub.K``
                if id(obj) in self.seen:
                    return
                self.seen.add(id(obj))
                members = vars(obj)
                for attr in sorted(set(names)):
                    member = members.get(attr, _MISSING)
                    if member is not _MISSING and not attr.startswith("__"):
                        self.add_global(members, attr, member, names, constants, f"{obj.__name__}.")
            else:
                self.add_library(obj.__name__, obj.__name__)
            return
        if isinstance(obj, (types.FunctionType, type)):
            self.watch.append(("ns", namespace, name, obj))
            self.add_code_object(obj)
            return
        if callable(obj) and not _hashed_by_content(obj):
            module = getattr(obj, "__module__", None) or type(obj).__module__
            if not is_user_module(module):
                self.add_library(f"{module}.{name}", module)
                return
        constants.append((namespace, name, prefix, obj))


def code_record(obj: type | types.FunctionType) -> CodeRecord:
    """The digest and parts of a class's code (or a function's), cached until something it read changes."""
    entry = _CACHE.get(obj)
    if entry is not None and entry.valid():
        return entry.record
    busy: set[int] | None = getattr(_in_progress, "ids", None)
    if busy is None:
        busy = _in_progress.ids = set()
    if id(obj) in busy:  # a class whose attributes are its own instances (an Enum): refer to it by name
        name = f"recursive:{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        return CodeRecord(name, {})
    busy.add(id(obj))
    try:
        walker = _Walker()
        walker.add_root(obj)
    finally:
        busy.discard(id(obj))
    h = new_hasher()
    h.update(_SALT)
    for label in sorted(walker.parts):
        h.update(f"{label}={walker.parts[label]}\x00".encode("utf-8", "surrogatepass"))
    record = CodeRecord(h.hexdigest()[:16], walker.parts, tuple(dict.fromkeys(walker.doubts)))
    try:
        _CACHE[obj] = _Entry(record, walker.watch)
    except TypeError:  # not weak-referenceable
        pass
    return record


def code_digest(obj: type | types.FunctionType) -> str:
    """The content hash of a class's methods (or of a function), cached until one of them is replaced."""
    return code_record(obj).digest
