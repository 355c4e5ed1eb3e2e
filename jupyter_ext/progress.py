"""The progress bar shown during ``materialize()`` in a notebook: steps done / total, running, elapsed.

Plain HTML (a filled track and a line of text), shown with a display id and updated in place; no widget.
A widget created while a cell runs makes JupyterLab's widget manager open a kernel subshell, and the
kernel's "idle" answer to that request turns JupyterLab's status bar to Idle for the rest of the run
(ipykernel 7, jupyterlab_widgets 3): the kernel looked idle while the pipeline ran. HTML needs no comm,
and what a saved notebook, nbconvert or GitHub shows is the same picture, in its final state.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .runs import Run
from .static import progress_static

__all__ = ["MIN_INTERVAL", "RunProgress"]

#: Seconds between two redraws while steps finish (start, failure and end always redraw).
MIN_INTERVAL = 0.1
#: Seconds between two redraws of the elapsed time while one step runs for long.
TICK = 1.0


class RunProgress:
    """A bar and a line of text following one run, redrawn through an IPython display handle."""

    def __init__(self, run: Run) -> None:
        self.head = run.head
        self.handle: Any = None
        self._last = 0.0
        self._named = False  # whether the label shows a running step's name
        self._run = run
        self.html = progress_static(run)
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def bundle(self) -> dict[str, str]:
        """What is displayed: the bar as HTML, and a line of text for terminals."""
        return {"text/html": self.html, "text/plain": repr(self)}

    def show(self) -> None:
        """Display the bar (with a display id, so that it is redrawn in place) and keep its clock running."""
        from IPython.display import display  # only called inside IPython

        self.handle = display(self.bundle(), raw=True, display_id=True)
        threading.Thread(target=self._tick, name="job-orchestra-progress", daemon=True).start()

    def _tick(self) -> None:
        """Keep the elapsed time moving while a long step runs (no events arrive meanwhile)."""
        while not self._stop.wait(TICK):
            if time.monotonic() - self._last >= TICK:
                self._draw(self._run)

    def _draw(self, run: Run) -> None:
        with self._lock:
            self.html = progress_static(run)
            if self.handle is not None:
                self.handle.update(self.bundle(), raw=True)

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
        self._draw(run)

    def finalize(self, run: Run) -> None:
        """The run is over: draw its final state (what the saved notebook and its exports show)."""
        self._stop.set()
        self.update(run, force=True)

    def __repr__(self) -> str:  # the text/plain of the output (terminals)
        return f"<job-orchestra progress of materialize({self.head})>"
