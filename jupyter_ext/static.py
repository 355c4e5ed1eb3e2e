"""Static fallbacks of the widgets: what nbconvert, GitHub and the docs show where a widget was.

Renderers without the widget manager (or without the saved widget state, JupyterLab's default when it
saves a notebook) fall back to the next representation of a widget's output. The widget output of this
package therefore carries ``text/html`` of its state beside ``application/vnd.jupyter.widget-view+json``,
and updates it when the state it shows is final (the end of a cell, a button's action). The progress bar
is that static picture alone, redrawn in place while the run goes (see :mod:`.progress`).

The fallback is one line of HTML in a ``<div class="jo-static">`` without scripts, so sanitizers that drop
``<script>`` (GitHub) and ``style`` keep its words, its table and its SVG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .plan_html import progress_html
from .theme import FONT

if TYPE_CHECKING:
    from .runs import Run

__all__ = ["WIDGET_VIEW", "progress_static", "static_block", "with_fallback"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def static_block(inner: str, kind: str) -> str:
    """``inner`` wrapped as a fallback (one line: tools and sanitizers find it with one pattern)."""
    return f'<div class="jo-static jo-static-{kind}">{inner.replace(chr(10), " ")}</div>'


def progress_static(run: Run) -> str:
    """The progress bar drawn in HTML: a filled track and the line of text the widget shows."""
    total = max(run.total, 1)
    share = min(100, round(100 * run.done / total))
    if not run.finished:
        fill = "#1f5f99"
    elif isinstance(run.error, KeyboardInterrupt):
        fill = "#7a7a7a"  # neutral: stopped on purpose
    elif run.error is not None:
        fill = "#9b1c1c"
    else:
        fill = "#2f7a2a"
    track = (
        f'<div style="display:inline-block;width:240px;height:10px;border:1px solid #7a7a7a;border-radius:3px;'
        f'vertical-align:middle;margin-right:8px;overflow:hidden" title="{run.done} of {run.total} steps">'
        f'<div style="width:{share}%;height:100%;background:{fill}"></div></div>'
    )
    line = progress_html(run).replace('<div class="jo-progress', '<span class="jo-progress', 1)
    line = line[: -len("</div>")] + "</span>" if line.endswith("</div>") else line
    return static_block(f'<div style="display:flex;align-items:center;{FONT}">{track}{line}</div>', "progress")


def with_fallback(bundle: dict[str, Any] | None, fallback: str) -> dict[str, Any]:
    """A widget's own MIME bundle (its widget-view and plain text) plus ``text/html``: its static picture."""
    bundle = dict(bundle or {})
    bundle["text/html"] = fallback
    return bundle
