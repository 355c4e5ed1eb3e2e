"""The source of notebook cells travels with the steps defined in them, so a worker's traceback shows it.

IPython keeps each cell's code in :mod:`linecache` under a made-up file name (no file on disk). A step whose
class was defined in a cell and that runs in another process (``executor="processes"``, Dask) fails with
``File "<dynamic-code>", line 9`` and no line of code: cloudpickle renames the code it ships, and the
worker has no such file anyway. A pickled step therefore carries the cell lines of its class's methods;
unpickling registers them in the worker's ``linecache`` and points the methods back at their cell. Steps
defined in files carry nothing.
"""

from __future__ import annotations

import linecache
import types
import weakref
from typing import Any

__all__ = ["SOURCES_KEY", "cell_sources", "register"]

#: The key under which a pickled step's state carries its cell sources (removed again when unpickled).
SOURCES_KEY = "__jo_cell_sources__"

_memo: weakref.WeakKeyDictionary[type, tuple] = weakref.WeakKeyDictionary()


def _methods(cls: type) -> list[tuple[str, str, types.FunctionType]]:
    found = []
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            func = getattr(value, "__func__", value)  # staticmethod / classmethod
            if isinstance(func, types.FunctionType):
                found.append((klass.__qualname__, attr, func))
    return found


def cell_sources(cls: type) -> tuple:
    """``(cells, methods)``: the lines of the cells defining ``cls``'s methods (linecache entries without a
    file), and for each such method ``(class qualname, attribute, file name)``; ``()`` when there are none."""
    found = _memo.get(cls)
    if found is None:
        cells: dict[str, tuple[str, ...]] = {}
        methods = []
        for owner, attr, func in _methods(cls):
            name = func.__code__.co_filename
            entry = linecache.cache.get(name)
            if entry is not None and len(entry) == 4 and entry[1] is None:  # a cell: no modification time
                cells[name] = tuple(entry[2])
                methods.append((owner, attr, name))
        found = (tuple(sorted(cells.items())), tuple(methods)) if cells else ()
        try:
            _memo[cls] = found  # one tuple per class: pickle stores it once for all its steps
        except TypeError:
            pass
    return found


def _refile(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(_refile(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def register(sources: Any, cls: type) -> None:
    """Put the cells' lines into this process's ``linecache`` (entries without a file never expire) and
    point the methods of ``cls`` back at their cell (cloudpickle names all code it ships "<dynamic-code>")."""
    if not sources:
        return
    cells, methods = sources
    for name, lines in cells:
        if name not in linecache.cache:
            linecache.cache[name] = (sum(map(len, lines)), None, list(lines), name)
    where = {(owner, attr): name for owner, attr, name in methods}
    for owner, attr, func in _methods(cls):
        name = where.get((owner, attr))
        if name is not None and func.__code__.co_filename != name:
            func.__code__ = _refile(func.__code__, name)
