"""Remember the collected graph of a head while nothing the walk read has changed.

Planning a cached 100,000-step pipeline again should not walk and order it again. A remembered graph is
used only when a check at C speed finds that everything ``collect()`` read is as it was: every step's
``dependencies`` (the same steps, in the same order, compared by identity), its ``name_alias``, its class,
and each class's ``_default_name`` and ``__name__``. Any difference, including a list changed in place or
an attribute set through ``__dict__``, means a fresh walk. The cache holds the head only weakly, so a
pipeline is freed as it would be without it; it keeps the last few heads planned.
"""

from __future__ import annotations

import weakref
from array import array
from itertools import chain
from operator import attrgetter
from typing import Any

__all__ = ["clear", "enabled", "lookup", "remember"]

_get_deps = attrgetter("dependencies")
_get_alias = attrgetter("name_alias")
_flat = chain.from_iterable
_NAME_TYPES = {str, type(None)}
_CACHE: dict[int, tuple[weakref.ref, _Entry]] = {}
_ENABLED = [True]
_KEEP = 8
"""How many heads are remembered (the most recently planned): a few pipelines, not every prefix of one."""


class _Entry:
    """What one walk read (``steps`` without the head, so the cache keeps the head only weakly). The ids are
    of objects the entry keeps alive (steps and classes), so no other object can take them."""

    __slots__ = (
        "aliases",
        "dep_counts",
        "dep_ids",
        "deps",
        "inputs",
        "memo",
        "order",
        "steps",
        "type_ids",
        "type_names",
    )

    def __init__(self, order: list[str], steps: list[Any], inputs: list, head: Any) -> None:
        everyone = [*steps, head]
        lists = list(map(_get_deps, everyone))
        self.order = order
        self.steps = steps
        self.inputs = inputs  # the positions of each step's dependencies (never changed: graphs share it)
        self.deps: dict[str, tuple[str, ...]] | None = None  # by name, built by the first graph that needs it
        self.dep_counts = array("Q", map(len, lists))  # machine words, not 100,000 int objects
        self.dep_ids = array("Q", map(id, _flat(lists)))
        self.aliases = list(map(_get_alias, everyone))
        self.type_ids = array("Q", map(id, map(type, everyone)))
        self.type_names = [(t, t._default_name, t.__name__, t.__str__) for t in dict.fromkeys(map(type, everyone))]
        self.memo: Any = None  # per stale policy, what the last plan of this graph read and found (plan_memo)


def enabled(on: bool | None = None) -> bool:
    """Whether graphs are remembered and used; ``enabled(False)`` bypasses the cache, keeping what it holds
    (tests compare plans with and without it)."""
    if on is not None:
        _ENABLED[0] = bool(on)
    return _ENABLED[0]


def clear() -> None:
    """Forget every remembered graph."""
    _CACHE.clear()


def lookup(head: Any) -> tuple[list[str], list[Any], list, _Entry] | None:
    """``(order, steps in order without the head, inputs, entry)`` of the last walk of ``head``, if still
    exact (``entry`` stands for this exact graph: the plan memo is kept on it)."""
    found = _CACHE.get(id(head)) if _ENABLED[0] else None
    if found is None or found[0]() is not head:
        return None
    entry = found[1]
    del _CACHE[id(head)]  # most recently used last, so the oldest goes first
    _CACHE[id(head)] = found
    everyone = [*entry.steps, head]
    try:
        if array("Q", map(id, map(type, everyone))) != entry.type_ids:
            return None
        for t, default, name, to_str in entry.type_names:
            if t._default_name != default or t.__name__ != name or t.__str__ is not to_str:
                return None
        aliases = list(map(_get_alias, everyone))
        if not set(map(type, aliases)) <= _NAME_TYPES or aliases != entry.aliases:
            return None
        lists = list(map(_get_deps, everyone))
        if set(map(type, lists)) != {list}:  # a tuple, a single Step or None: the walk converts them
            return None
        if array("Q", map(len, lists)) != entry.dep_counts or array("Q", map(id, _flat(lists))) != entry.dep_ids:
            return None
    except Exception:  # whatever it is, a fresh walk raises it with the step named
        return None
    return entry.order, entry.steps, entry.inputs, entry


def remember(head: Any, order: list[str], steps: list[Any], inputs: list) -> _Entry | None:
    """Keep the walk of ``head`` (``steps`` in ``order``, without the head; ``inputs`` the positions of
    each step's dependencies, the head's included) for the next :func:`lookup`; returns the entry kept (None
    when not kept)."""
    if not _ENABLED[0]:
        return None
    entry = _Entry(order, steps, inputs, head)
    if not set(map(type, entry.aliases)) <= _NAME_TYPES:
        return None
    key = id(head)

    def forget(ref: weakref.ref, key: int = key) -> None:
        found = _CACHE.get(key)
        if found is not None and found[0] is ref:
            del _CACHE[key]

    try:
        ref = weakref.ref(head, forget)
    except TypeError:  # a node that cannot be weakly referenced is simply walked every time
        return None
    _CACHE.pop(key, None)
    _CACHE[key] = (ref, entry)
    while len(_CACHE) > _KEEP:
        del _CACHE[next(iter(_CACHE))]
    return entry
