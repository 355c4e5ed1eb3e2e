"""Live views follow a pipeline that replaced theirs, or say plainly that they are out of date.

A view remembers its head step weakly, and the names of the notebook variables that held that step when it
was displayed. After each cell, when such a name refers to a *new* step of the same name (the cell that
builds the pipeline ran again, or ``%orchestra load`` replaced it), the view follows the new pipeline.
When the old head is gone and nothing replaced it, the view keeps its last picture under a line saying it
is out of date, so two displays never disagree silently.
"""

from __future__ import annotations

import html
from typing import Any

from job_orchestra import Step

from .graph_svg import inline_svg
from .theme import FONT

__all__ = ["names_of", "out_of_date", "successor", "user_namespace"]


def user_namespace() -> dict[str, Any]:
    """The notebook's variables (empty outside IPython)."""
    try:
        from IPython import get_ipython  # only called inside IPython
    except ImportError:
        return {}
    shell = get_ipython()
    return getattr(shell, "user_ns", None) or {}


def names_of(obj: object, namespace: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The public variables that hold ``obj`` now."""
    namespace = user_namespace() if namespace is None else namespace
    return tuple(k for k, v in list(namespace.items()) if v is obj and not k.startswith("_"))


def successor(names: tuple[str, ...], step_name: str, current: object, namespace: dict[str, Any]) -> Step | None:
    """The step that replaced ``current``: held by one of ``names`` now, with the same step name."""
    for name in names:
        obj = namespace.get(name)
        if obj is current:
            return None
        if isinstance(obj, Step) and obj is not current and obj.name == step_name:
            return obj
    return None


def out_of_date(bundle: dict[str, Any] | None, step_name: str) -> dict[str, Any]:
    """``bundle`` (the view's last picture) under a line saying it shows a pipeline that is gone."""
    words = (
        f"Out of date: this view showed the pipeline of {step_name}, which was replaced or deleted since. "
        "Display the new pipeline again to see its state."
    )
    bundle = bundle or {}
    picture = bundle.get("text/html")
    if picture is None and "image/svg+xml" in bundle:
        picture = inline_svg(bundle["image/svg+xml"])
    banner = (
        f'<div class="jo-out-of-date" style="{FONT};font-weight:600;margin:2px 0 4px 0">\u26a0 '
        f"{html.escape(words)}</div>"
    )
    faded = f'<div style="opacity:0.45">{picture}</div>' if picture else ""
    text = bundle.get("text/plain", "")
    return {"text/html": banner + faded, "text/plain": f"{words}\n{text}".rstrip("\n")}
