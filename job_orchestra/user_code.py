"""Which code is the user's (hashed by content) and which is a library's (referred to by name and version).

The bottom of the fingerprint layers: it imports nothing of job-orchestra.
"""

from __future__ import annotations

import builtins
import functools
import sys
import sysconfig
import types

__all__ = ["is_user", "is_user_module"]

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class created at run time (by a class statement), not a C type


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(sorted(d.rstrip("/") + "/" for d in dirs if d))


@functools.cache
def is_user_module(module: str | None) -> bool:
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


def is_user(obj: object) -> bool:
    """True when ``obj`` (a function, class or value's class) was defined by the user's code.

    A class ``exec``'d in a namespace without ``__name__`` gets ``__module__ == "builtins"``: it is the
    user's unless it really is one of the built-ins.
    """
    module = getattr(obj, "__module__", None)
    if module == "builtins":  # Python code (a heap type, a function) exec'd without __name__ is the user's
        if isinstance(obj, type):
            return bool(obj.__flags__ & _HEAPTYPE) and getattr(builtins, obj.__qualname__, None) is not obj
        return isinstance(obj, types.FunctionType)
    return is_user_module(module)


def is_job_orchestra_class(cls: type, name: str) -> bool:
    """True when ``cls`` is job-orchestra's own class ``name`` (``"Step"``, ``"Context"``) or a subclass of it,
    told without importing the modules that define them (they sit above the fingerprint layers)."""
    return any(k.__name__ == name and k.__module__.startswith("job_orchestra.") for k in cls.__mro__)


@functools.cache
def library_version(top: str) -> str:
    """The version of an installed top-level package (``""`` when it has none): library code counts by it."""
    mod = sys.modules.get(top)
    version = getattr(mod, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        from importlib import metadata  # importlib.metadata is slow to import: only when versions are read

        return metadata.version(top)
    except Exception:
        return ""
