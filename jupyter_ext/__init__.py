"""jupyter_ext: the Jupyter layer of job-orchestra.

Plans show as HTML tables, graphs as SVG, steps as both, with no set-up: the core never imports this
package; it finds :mod:`jupyter_ext.renderer` through the ``job_orchestra.display`` entry point the first
time an object is displayed. In a Jupyter kernel the displays are live (they follow runs and
later cells) and ``materialize()`` shows a progress bar. This package also provides:

- :class:`PipelineWidget`: graph, plan, Materialize / Invalidate / Store snapshot buttons, output area;
- the ``%orchestra`` magic, after ``%load_ext jupyter_ext``;
- :func:`show` to display a step, plan or graph, live or frozen (``live=False``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .display import show
from .live import activate, deactivate

if TYPE_CHECKING:
    from .widget import PipelineWidget

__all__ = ["PipelineWidget", "activate", "load_ipython_extension", "show", "unload_ipython_extension"]


def __getattr__(name: str) -> Any:
    if name == "PipelineWidget":  # ipywidgets is imported only when the widget is wanted
        from .widget import PipelineWidget  # imports ipywidgets: only when a widget is wanted

        return PipelineWidget
    raise AttributeError(f"module 'jupyter_ext' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_ext``: register the ``%orchestra`` magic and start live views."""
    from .magics import OrchestraMagics  # imports IPython's magic machinery: only for %load_ext

    ipython.register_magics(OrchestraMagics)
    activate(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_ext``: stop live views and progress bars (the magic stays until restart)."""
    deactivate()


activate()  # in an IPython session: live views, progress bars and run times from the first import on
