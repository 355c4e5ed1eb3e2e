"""The progress bar shown during ``materialize()`` in a notebook: steps done / total, running, elapsed.

An ipywidgets bar, so it updates in place without output messages that tools like nbval cannot replay;
its state at the end of the run is what a saved notebook shows (nbclient stores widget state).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as widgets

from .plan_html import progress_html
from .runs import Run
from .static import progress_static, with_fallback

__all__ = ["MIN_INTERVAL", "RunProgress"]

#: Seconds between two redraws while steps finish (start, failure and end always redraw).
MIN_INTERVAL = 0.1
#: Seconds between two redraws of the elapsed time while one step runs for long.
TICK = 1.0


class RunProgress(widgets.HBox):
    """A bar and a line of text following one run."""

    def __init__(self, run: Run) -> None:
        self.head = run.head
        self.bar = widgets.IntProgress(value=0, min=0, max=max(run.total, 1), layout=widgets.Layout(width="240px"))
        self.label = widgets.HTML(progress_html(run))
        self._last = 0.0
        self._named = False  # whether the label shows a running step's name
        self._run = run
        self._stop = threading.Event()
        super().__init__([self.bar, self.label], layout=widgets.Layout(align_items="center"))
        self.add_class("jo-run-progress")
        threading.Thread(target=self._tick, name="job-orchestra-progress", daemon=True).start()

    def _tick(self) -> None:
        """Keep the elapsed time moving while a long step runs (no events arrive meanwhile)."""
        while not self._stop.wait(TICK):
            if time.monotonic() - self._last >= TICK:
                self.bar.value = self._run.done
                self.label.value = progress_html(self._run)

    def update(self, run: Run, force: bool = False) -> None:
        """Redraw from ``run`` (at most every :data:`MIN_INTERVAL` seconds unless ``force``)."""
        now = time.monotonic()
        if run.finished:
            self._stop.set()
        # A step that starts right after another one finished is always named (not left at "running ...").
        started = bool(run.running) and not self._named
        if not force and not started and now - self._last < MIN_INTERVAL:
            return
        self._named = bool(run.running)
        self._last = now
        self.bar.value = run.done
        if run.finished:
            if isinstance(run.error, KeyboardInterrupt):
                self.bar.bar_style = ""  # neutral: stopped on purpose, the finished steps are kept
            else:
                self.bar.bar_style = "danger" if run.error is not None else "success"
        self.label.value = progress_html(run)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget, plus its static picture for renderers without widgets (nbconvert, GitHub)."""
        return with_fallback(super()._repr_mimebundle_(**kwargs), progress_static(self._run))

    def show(self) -> None:
        """Display the bar (with a display id, so :meth:`finalize` can replace it by its final picture)."""
        from IPython.display import display

        self.handle = display(self, display_id=True)

    def finalize(self, run: Run) -> None:
        """The run is over: replace the output by the finished bar in static HTML, and close the widget
        (saved notebooks and exports then show the final state, with nothing left to animate)."""
        self.update(run, force=True)
        handle = getattr(self, "handle", None)
        if handle is not None:
            handle.update({"text/html": progress_static(run), "text/plain": repr(self)}, raw=True)
        for widget in (self.bar, self.label, self):  # with their layout and style models
            for part in (getattr(widget, "layout", None), getattr(widget, "style", None), widget):
                if part is not None:
                    part.close()

    def __repr__(self) -> str:  # the text/plain of the saved output (GitHub, terminals)
        return f"<job-orchestra progress of materialize({self.head})>"
