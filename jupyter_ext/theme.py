"""Colours, badges and legends shared by the HTML plan and the SVG graph.

Every badge is a filled box with dark text and a darker border, so it reads the same on light and dark
JupyterLab themes, in VS Code and on GitHub; the text marker ([*], (>), ...) is always written in the
badge, so colour is never the only cue. Secondary text uses ``opacity`` rather than a fixed grey, so it
follows the theme's own text colour.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from job_orchestra.drawing import NODE_STYLES
from job_orchestra.plan import Availability

__all__ = [
    "AVAILABILITY",
    "FONT",
    "REDEFINED",
    "RUN_STATE",
    "SCHEDULE",
    "Badge",
    "availability_badge",
    "badge_html",
    "legend_html",
]

TEXT = "#1b1b1b"  # dark text on every fill
#: The notebook's UI font where there is one (JupyterLab, VS Code), a system sans-serif elsewhere.
FONT = "font-family:var(--jp-ui-font-family,system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif)"


@dataclass(frozen=True)
class Badge:
    """A marker, the words that explain it, and the fill and border colours that go with it."""

    marker: str
    words: str
    fill: str
    border: str


def _from_node(status: str, marker: str, words: str) -> Badge:
    style = NODE_STYLES[status]
    return Badge(marker, words, style["fillcolor"], style["color"])


AVAILABILITY: dict[str, Badge] = {
    "[*]": _from_node("cached", "[*]", "cached"),
    "[ ]": Badge("[ ]", "not computed", "#e4e4e4", "#7a7a7a"),
    "[x]": Badge("[x]", "no context", "#d7cdea", "#5b4a82"),
    "[~]": Badge("[~]", "stale", "#f9d29d", "#8a5a00"),
    "[?]": Badge("[?]", "cannot tell", "#f9e2af", "#8a6d00"),
}
SCHEDULE: dict[str, Badge] = {
    "(H)": _from_node("head", "(H)", "head"),
    "(>)": _from_node("scheduled", "(>)", "runs on materialize()"),
    "( )": Badge("( )", "no run needed", "#e4e4e4", "#7a7a7a"),
}
RUN_STATE: dict[str, Badge] = {
    "running": _from_node("running", "\u25b6", "running"),
    "failed": _from_node("failed", "!", "failed"),
}
#: A step built from a class that was defined again since (its old code would run).
REDEFINED = Badge("(!)", "redefined", "#f5a3a3", "#b42318")
_UNKNOWN = ("#f9e2af", "#8a6d00")


def availability_badge(value: object) -> Badge:
    """The badge of an availability marker; a marker this module does not know still shows its text."""
    marker = getattr(value, "value", str(value))
    known = AVAILABILITY.get(marker)
    if known is not None:
        return known
    name = getattr(value, "name", "") or marker
    return Badge(marker, name.replace("_", " ").lower(), *_UNKNOWN)


def badge_html(badge: Badge, *, words: bool = False, title: str | None = None) -> str:
    """A badge as an inline HTML span (inline styles, so notebook sanitizers and GitHub keep them)."""
    text = badge.marker + (f" {badge.words}" if words else "")
    tip = html.escape(title or badge.words, quote=True)
    return (
        f'<span title="{tip}" style="display:inline-block;padding:0 6px;margin:1px 0;border-radius:8px;'
        f"background:{badge.fill};color:{TEXT};border:1px solid {badge.border};"
        f'font-family:var(--jp-code-font-family,monospace);font-size:12px;white-space:nowrap">'
        f"{html.escape(text)}</span>"
    )


def legend_html(extra: tuple[object, ...] = ()) -> str:
    """One line of badges explaining the plan's markers (those the core defines, plus ``extra`` ones)."""
    markers = dict.fromkeys([*(m for m in Availability if m.value != "[?]"), *extra])  # [?] only when shown
    avail = [availability_badge(m) for m in markers]
    parts = [badge_html(b, words=True) for b in (*avail, *SCHEDULE.values(), *RUN_STATE.values())]
    return (
        '<div class="jo-legend" style="margin-top:4px;display:flex;flex-wrap:wrap;gap:4px;align-items:center">'
        '<span style="opacity:0.75;margin-right:2px">Legend:</span>' + " ".join(parts) + "</div>"
    )
