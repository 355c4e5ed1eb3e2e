"""dill without its one import side effect: deciding whether a dict is a module's namespace never imports.

dill writes a dict holding a ``"__name__"`` string as a reference to the module of that name when the dict
is that module's namespace, and it *imports* the module to find out (``dill._dill.save_module_dict``). A
function's pickled state is such a dict: storing a step whose ``run`` was defined in a script ``run.py``
imported the script under that name and ran its top-level code a second time. A value ``{"__name__":
"x"}`` did the same with any importable module ``x``. Here only a module imported already is asked, which
is all dill can refer to anyway (an unimported module's namespace cannot be in the value). dill also puts
its dict saver into the standard pure-Python pickler's table, so picklers built on that use this one too.
"""

from __future__ import annotations

import io
import pickle
import sys
from typing import Any

import dill

__all__ = ["Pickler", "dumps", "save_dict"]

_DILL_SAVE_DICT = dill.Pickler.dispatch[dict]


def save_dict(pickler: Any, obj: dict) -> None:
    """Save ``obj`` as dill does, but as a plain dict unless it is the namespace of an imported module."""
    name = obj.get("__name__") if "__name__" in obj else None
    if type(name) is str and obj is not getattr(sys.modules.get("__main__"), "__dict__", None):
        module = sys.modules.get(name)
        if module is None or getattr(module, "__dict__", None) is not obj:
            pickle._Pickler.save_dict(pickler, obj)
            return
    _DILL_SAVE_DICT(pickler, obj)


class _Dispatch(dict):
    """dill's dispatch table as it is at each lookup (dill adds to it as it meets types), with dicts here."""

    def get(self, key: Any, default: Any = None) -> Any:
        return save_dict if key is dict else dill.Pickler.dispatch.get(key, default)

    def __getitem__(self, key: Any) -> Any:
        return save_dict if key is dict else dill.Pickler.dispatch[key]

    def __contains__(self, key: object) -> bool:
        return key is dict or key in dill.Pickler.dispatch


class Pickler(dill.Pickler):
    """dill's pickler with :func:`save_dict` for dicts."""

    dispatch = _Dispatch()


def dumps(value: Any, **kwargs: Any) -> bytes:
    """``dill.dumps`` through :class:`Pickler` (same keywords: protocol, byref, recurse...)."""
    buffer = io.BytesIO()
    protocol = kwargs.pop("protocol", dill.HIGHEST_PROTOCOL)
    Pickler(buffer, protocol=protocol, **kwargs).dump(value)
    return buffer.getvalue()
