"""``AttrDict``: a dict whose string keys can also be read as attributes (``out.name``)."""

from __future__ import annotations

from typing import Any

from .cleverdict_compat import MISSING, alias_of_one

__all__ = ["AttrDict", "as_attrdict"]


class AttrDict(dict):
    """A plain dict with attribute access, the type 1.1 gave to dict outputs and Contexts.

    >>> d = AttrDict(output=[1, 2])
    >>> d.output == d["output"]
    True
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            from .cleverdict_compat import MISSING, result_method  # 1.1's CleverDict methods and aliases

            found = result_method(self, name)
            if found is not MISSING:
                return found
            raise AttributeError(
                f"{type(self).__name__} has no key {name!r}; keys: {sorted(map(str, self))[:10]}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if "_" in name and not dict.__contains__(self, name):  # 1.1 (CleverDict): d.my_key = v sets "my key"
            key = alias_of_one(self, name, AttributeError)
            if key is not MISSING:
                name = key
        self[name] = value

    def __missing__(self, key: Any) -> Any:
        """1.1 (CleverDict): ``d["my_key"]`` reads the key ``"my key"``; any other missing key: KeyError."""
        if isinstance(key, str) and "_" in key:
            real = alias_of_one(self, key)
            if real is not MISSING:
                return self[real]
        raise KeyError(key)

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __dir__(self) -> list[str]:
        keys = [k for k in self.keys() if isinstance(k, str) and k.isidentifier()]
        return sorted(set(super().__dir__()) | set(keys))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


def as_attrdict(value: Any) -> Any:
    """Turn a dict output into an :class:`AttrDict` (1.1 behaviour); leave anything else as it is."""
    if type(value) is dict:  # as 1.1: dict subclasses (a CleverDict, an OrderedDict) are kept as they are
        return AttrDict(value)
    return value
