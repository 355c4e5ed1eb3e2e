"""The ``cleverdict.CleverDict`` methods that job-orchestra 1.1 code calls on a Context or a dict result.

In 1.1, ``Context`` subclassed ``CleverDict`` and dict outputs became ``CleverDict`` s. 2.0 uses plain dicts
with attribute access (:class:`~job_orchestra.AttrDict`), and keeps here what 1.1 code relied on:
``to_dict``/``to_list``/``to_lines``/``info`` with ``ignore=``/``exclude=``/``only=``, ``get_key``,
``get_aliases``, and reading a key through its identifier alias (``ctx.my_key`` for the key ``"my key"``).
CleverDict features that make no sense in 2.0 (autosave, alias editing, JSON persistence of a Context)
raise :class:`CleverDictMethodRetired`, naming what to use instead. See ``docs/compat-1.1.md``.
"""

from __future__ import annotations

import json
import keyword
import os
import sys
from collections.abc import Iterable
from typing import Any

from .errors import PipelineError

__all__ = ["RETIRED", "CleverDictCompat", "CleverDictMethodRetired", "alias_of_one", "aliases_of", "result_method"]

_DEFAULT = object()


class CleverDictMethodRetired(PipelineError, AttributeError, NotImplementedError):
    """A CleverDict method 1.1 code called that 2.0 does not keep; the message names the replacement."""


RETIRED: dict[str, str] = {
    "autosave": "store the Context with ctx.store(path) (atomic snapshots) when you want it on disk",
    "set_autosave": "follow results as they arrive with job_orchestra.Callback(step_finish=...)",
    "set_autodelete": "follow results as they arrive with job_orchestra.Callback(step_finish=...)",
    "save": "store the Context with ctx.store(path)",
    "delete": "drop a result with del ctx[key] or ctx.invalidate(step)",
    "create_save_file": "store the Context with ctx.store(path)",
    "get_new_save_path": "choose the snapshot directory yourself: ctx.store(path)",
    "add_alias": "use the key itself (2.0 keeps no alias table); identifier aliases still read: ctx.my_key",
    "delete_alias": "use the key itself (2.0 keeps no alias table)",
    "setattr_direct": "keep such values on the step object, or under a key starting with '.' (never stored)",
    "from_lines": "build the dict yourself, e.g. dict(enumerate(text.splitlines(), 1))",
}
"""CleverDict methods 2.0 does not provide, with what to use instead."""


def aliases_of(key: Any) -> list[Any]:
    """The names CleverDict let you reach ``key`` by: the key, then its identifier form (``"my key"`` ->
    ``"my_key"``, ``1`` -> ``"_1"``, and ``0``/``1`` -> ``"_False"``/``"_True"``), as ``all_aliases``."""
    result = [key]
    try:
        is_number = key == hash(key)
    except TypeError:
        return result
    if is_number and not isinstance(key, str):
        result.append(f"_{int(key)}")
        if key in (0, 1):
            result.append(f"_{bool(key)}")
        return result
    name = str(key)
    if name != key and name.isidentifier() and not keyword.iskeyword(name):
        result.append(name)
    norm = "_" + name if not name or name[0].isdigit() or keyword.iskeyword(name) else name
    norm = "".join(ch if ("A"[:i] + ch).isidentifier() else "_" for i, ch in enumerate(norm))
    if norm != name:
        result.append(norm)
    return result


def _as_set(arg: Any) -> set | None:
    if arg is None:
        return None
    return set(arg) if isinstance(arg, Iterable) and not isinstance(arg, str) else {arg}


def _filtered(mapping: dict, ignore: Any = None, exclude: Any = None, only: Any = None) -> dict:
    """The items of ``mapping`` (read through it, so lazy snapshot entries load), filtered as CleverDict did:
    ``ignore``/``exclude`` drop keys given by name or alias, ``only`` keeps the keys it names."""
    if sum(x is not None for x in (ignore, exclude, only)) > 1:
        raise TypeError("Only one argument from ['only=', 'ignore=', 'exclude='] allowed.")
    drop = (_as_set(ignore) or set()) | (_as_set(exclude) or set())
    keep = _as_set(only)
    out = {}
    for key in dict.keys(mapping):
        names = aliases_of(key)
        if any(_in(n, drop) for n in names):
            continue
        if keep is not None and not _in(key, keep):
            continue
        out[key] = mapping[key]
    return out


def _in(name: Any, names: set) -> bool:
    try:
        return name in names
    except TypeError:  # an unhashable name matches nothing
        return False


def _get_key(mapping: dict, name: Any) -> Any:
    """The key ``name`` stands for: itself, or the key it is an alias of (``KeyError`` when neither)."""
    if _hashable(name) and dict.__contains__(mapping, name):
        return name
    matches = [key for key in dict.keys(mapping) if name in aliases_of(key)[1:]]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise KeyError(f"{name!r} is an alias of several keys: {matches}; use the key itself")
    raise KeyError(name)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class CleverDictCompat:
    """Mixin of :class:`~job_orchestra.Context`: the CleverDict methods 1.1 code calls on a Context."""

    __slots__ = ()

    def to_dict(self, ignore: Any = None, exclude: Any = None, only: Any = None) -> dict:
        """A plain dict of the entries; ``ignore=``/``exclude=`` leave keys out, ``only=`` keeps just those."""
        return _filtered(self, ignore, exclude, only)  # type: ignore[arg-type]

    def to_list(self, ignore: Any = None, exclude: Any = None, only: Any = None) -> list[tuple[Any, Any]]:
        """The entries as a list of ``(key, value)`` tuples (CleverDict's ``to_list``)."""
        return list(_filtered(self, ignore, exclude, only).items())  # type: ignore[arg-type]

    def to_lines(
        self,
        file_path: str | os.PathLike[str] | None = None,
        start_from_key: Any = None,
        ignore: Any = None,
        exclude: Any = None,
        only: Any = None,
    ) -> str | None:
        """The (string) values joined by newlines, from ``start_from_key`` on; written to ``file_path`` if given."""
        mapping = _filtered(self, ignore, exclude, only)  # type: ignore[arg-type]
        start = next(iter(dict.keys(self)), None) if start_from_key is None else _get_key(self, start_from_key)  # type: ignore[arg-type]
        lines, started = [], False
        for key, value in mapping.items():
            started = started or key == start
            if started:
                lines.append(value)
        text = "\n".join(lines)
        if not file_path:
            return text
        _write(file_path, text)
        return None

    def get_key(self, name: Any) -> Any:
        """The key ``name`` refers to: the key itself or one of its aliases (``ctx.get_key("my_key")``)."""
        return _get_key(self, name)  # type: ignore[arg-type]

    def get_aliases(self, name: Any = _DEFAULT) -> list[Any]:
        """Every name that reaches ``name``'s key (all keys' names when ``name`` is omitted)."""
        if name is _DEFAULT:
            return [alias for key in dict.keys(self) for alias in aliases_of(key)]  # type: ignore[call-overload]
        return aliases_of(_get_key(self, name))  # type: ignore[arg-type]

    def info(self, as_str: bool = False, ignore: Any = None, exclude: Any = None, only: Any = None) -> str | None:
        """Print (or return, with ``as_str=True``) each entry with the ways to reach it, as CleverDict did."""
        frame = sys._getframe()
        caller = frame.f_back.f_locals if frame is not None and frame.f_back is not None else {}
        ids = sorted(k for k, v in caller.items() if v is self)
        lines = [type(self).__name__ + ":"]
        if len(ids) > 1:
            lines.append("    " + " is ".join(ids))
        var = ids[0] if ids else "x"
        for key, value in _filtered(self, ignore, exclude, only).items():  # type: ignore[arg-type]
            names = aliases_of(key)
            parts = [f"{var}[{n!r}]" for n in names]
            parts += [
                f"{var}.{n}" for n in names if isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n)
            ]
            lines.append("    " + " == ".join([*parts, repr(value)]))
        text = "\n".join(lines)
        if as_str:
            return text
        print(text)
        return None

    def to_json(self, *args: Any, **kwargs: Any) -> None:
        """Not kept (1.1's Context refused it too): snapshots are written with :meth:`Context.store`."""
        raise CleverDictMethodRetired(
            f"{type(self).__name__}.to_json(): use ctx.store(path) to write a snapshot (1.1's Context refused "
            "to_json() too), or json.dumps(ctx.to_dict()) for JSON text of plain values."
        )

    @classmethod
    def from_json(cls, *args: Any, **kwargs: Any) -> None:
        """Not kept (1.1's Context refused it too): snapshots are read with :meth:`Context.load`."""
        raise CleverDictMethodRetired(
            f"{cls.__name__}.from_json(): use Context.load(path) to read a snapshot (1.1's Context refused "
            "from_json() too), or Context(json.loads(text)) for JSON text."
        )


def alias_of_one(mapping: dict, name: Any, error: type[Exception] = KeyError) -> Any:
    """The one key ``name`` is a CleverDict alias of (``"my_key"`` for ``"my key"``), or :data:`MISSING`.
    Several candidates raise ``error``: 2.0 refuses to guess. Every alias contains ``"_"``: others return fast.
    """
    if not (isinstance(name, str) and "_" in name):
        return _DEFAULT
    matches = [key for key in dict.keys(mapping) if key != name and name in aliases_of(key)[1:]]
    if len(matches) > 1:
        raise error(f"{name!r} is an alias of several keys: {matches}; use the key itself")
    return matches[0] if matches else _DEFAULT


def _compat_attribute(mapping: dict, name: str) -> Any:
    """What ``mapping.name`` meant in 1.1 when ``name`` is no key: the value of the key it is an alias of,
    or the error for a retired CleverDict method; ``_DEFAULT`` when neither."""
    if name.startswith("__"):
        return _DEFAULT
    if name in RETIRED:
        raise CleverDictMethodRetired(
            f"{type(mapping).__name__}.{name}: a cleverdict.CleverDict method that job-orchestra 2.0 does not "
            f"keep (its Contexts and dict results are plain dicts with attribute access); {RETIRED[name]}."
        )
    key = alias_of_one(mapping, name, AttributeError)
    return _DEFAULT if key is _DEFAULT else mapping[key]


_RESULT_METHODS = ("to_dict", "to_list", "to_lines", "get_key", "get_aliases", "info")


def result_method(mapping: dict, name: str) -> Any:
    """For a dict result (an ``AttrDict``, a ``CleverDict`` in 1.1): a CleverDict method it lacks, bound to
    it, an alias's value, or ``_DEFAULT``. Only reached when ``name`` is not a key, so keys always win."""
    if name in _RESULT_METHODS:
        method = getattr(CleverDictCompat, name)
        return method.__get__(mapping)
    if name == "to_json":
        return lambda file_path=None, fullcopy=False, ignore=None, exclude=None, only=None: _result_json(
            mapping, file_path, ignore, exclude, only
        )
    return _compat_attribute(mapping, name)


def _result_json(mapping: dict, file_path: Any, ignore: Any, exclude: Any, only: Any) -> str | None:
    text = json.dumps(_filtered(mapping, ignore, exclude, only), indent=4)
    if not file_path:
        return text
    _write(file_path, text)
    return None


MISSING = _DEFAULT
"""Returned by :func:`result_method` when ``name`` means nothing to a CleverDict either."""


def _write(file_path: str | os.PathLike[str], text: str) -> None:
    with open(file_path, "w", encoding="utf-8") as out:
        out.write(text)
