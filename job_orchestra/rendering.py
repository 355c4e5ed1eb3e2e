"""How core objects find a display layer without naming it.

A renderer is any object (a module will do) with some of these callables:

- ``mimebundle(obj) -> dict | None``: the rich MIME bundle of a plan, graph or step, or None to pass;
- ``ipython_display(obj) -> bool``: show ``obj`` in IPython (for example live); True when it did;
- ``start() -> None``: called once when a pipeline first runs inside a Jupyter kernel (progress bars).

Renderers come from :func:`register` and from the entry-point group ``job_orchestra.display``, read the
first time an object is displayed (``jupyter_ext`` registers itself there, so Jupyter needs no set-up).
This is IPython's own pattern: objects offer ``_repr_mimebundle_`` and the renderer is found, not imported.
"""

from __future__ import annotations

import sys
import threading
import warnings
from typing import Any

__all__ = ["GROUP", "ipython_display", "mimebundle", "register", "renderers", "start_in_kernel", "unregister"]

GROUP = "job_orchestra.display"

_registered: list[Any] = []
_discovered: list[Any] | None = None
_lock = threading.Lock()
_started = False


def register(renderer: Any) -> Any:
    """Use ``renderer`` before the discovered ones (the newest registration first); returns it."""
    with _lock:
        if renderer not in _registered:
            _registered.insert(0, renderer)
    return renderer


def unregister(renderer: Any) -> None:
    """Stop using a renderer given to :func:`register` (no error if it was not registered)."""
    with _lock:
        if renderer in _registered:
            _registered.remove(renderer)


def _discover() -> list[Any]:
    """Load the renderers of the ``job_orchestra.display`` entry points once, in name order."""
    global _discovered
    if _discovered is None:
        # importlib.metadata costs a few ms to import: only paid when something is displayed.
        from importlib.metadata import entry_points

        found = []
        for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
            try:
                found.append(point.load())
            except Exception as error:  # a broken plug-in must not break plain-text display
                warnings.warn(
                    f"job-orchestra: display plug-in {point.name!r} ({point.value}) failed to load: {error!r}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        _discovered = found
    return _discovered


def renderers() -> list[Any]:
    """Every renderer in the order they are asked: registered ones, then discovered ones."""
    with _lock:
        registered = list(_registered)
    return registered + [r for r in _discover() if r not in registered]


def mimebundle(obj: Any) -> dict[str, str] | None:
    """The first rich bundle a renderer gives for ``obj``, or None when no renderer handles it."""
    for renderer in renderers():
        make = getattr(renderer, "mimebundle", None)
        if make is not None:
            bundle = make(obj)
            if bundle is not None:
                return bundle
    return None


def ipython_display(obj: Any, fallback: dict[str, str]) -> None:
    """Show ``obj`` in IPython through the first renderer that takes it, else show ``fallback`` as is."""
    for renderer in renderers():
        show = getattr(renderer, "ipython_display", None)
        if show is not None and show(obj):
            return
    # Only reached inside IPython (it called _ipython_display_), so importing it here costs nothing.
    from IPython.display import display

    display(fallback, raw=True)


def start_in_kernel() -> None:
    """Inside a Jupyter kernel, let each renderer start once (the Jupyter layer shows progress bars)."""
    global _started
    if _started or "ipykernel" not in sys.modules:
        return
    _started = True
    for renderer in renderers():
        start = getattr(renderer, "start", None)
        if start is not None:
            start()
