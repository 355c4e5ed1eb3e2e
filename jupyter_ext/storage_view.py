"""Where results live, for the HTML plan: "in memory", "on disk" or "in s3://bucket/…", and the cache's size.

Duck-typed on the Context: one opened on a place (``Context.open(path_or_url)``) has ``store_url`` and
``location(key)`` (``"memory"`` or the store's url) and ``disk_usage()``; a plain in-memory Context has
none of them, and a plan whose Contexts are all in memory shows no extra column (its table is unchanged).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .summary import format_bytes

if TYPE_CHECKING:
    from job_orchestra import ExecutionPlan

__all__ = ["persisted_contexts", "storage_key", "store_url", "usage_html", "where"]

_DIM = "opacity:0.75"


def _attr(ctx: Any, name: str) -> Any:
    """``ctx.name`` when the Context's class or instance defines it, else None. Never through a Context's
    attribute-style key lookup (``ctx.some_key``), which would read a result named like this, and costs a
    scan of its keys."""
    if hasattr(type(ctx), name):
        return getattr(ctx, name)
    own = getattr(ctx, "__dict__", None)
    return own.get(name) if isinstance(own, dict) else None


def store_url(ctx: Any) -> str | None:
    """The url or path a Context writes its results to, or None for an in-memory one."""
    url = _attr(ctx, "store_url")
    return url if isinstance(url, str) and url else None


def persisted_contexts(plan: ExecutionPlan) -> list[Any]:
    """The distinct Contexts of ``plan``'s steps that are bound to a place (in the order first used)."""
    seen: set[int] = set()
    found = []
    for step in plan.graph.steps.values():
        ctx = step.ctx
        if ctx is not None and id(ctx) not in seen:
            seen.add(id(ctx))
            if store_url(ctx) is not None:
                found.append(ctx)
    return found


def _short_url(url: str, limit: int = 40) -> str:
    """``gs://bucket/…/cache`` for a long url: the bucket and the last part stay readable."""
    if len(url) <= limit:
        return url
    parts = urlsplit(url)
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return f"{parts.scheme}://{parts.netloc}/\u2026/{last}"


def where(ctx: Any, key: str) -> str | None:
    """ "in memory", "on disk" or "in s3://bucket/…" for ``key``'s result; None when there is none."""
    if ctx is None:
        return None
    locate = _attr(ctx, "location")
    if not callable(locate):
        return "in memory" if key in ctx else None
    place = locate(key)
    if place is None:
        return None
    if place == "memory":
        return "in memory"
    scheme = urlsplit(place).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # a path, file://, or a Windows drive letter
        return "on disk"
    return f"in {_short_url(place)}"


def usage_html(contexts: list[Any]) -> str:
    """One line per persisted Context: its place, entries and size (``ctx.disk_usage()``)."""
    lines = []
    for ctx in contexts:
        url = html.escape(store_url(ctx) or "")
        usage = _attr(ctx, "disk_usage")
        try:
            report = usage() if callable(usage) else None
        except OSError as exc:  # an unreachable store must not break the plan: say so
            lines.append(f"Cache <code>{url}</code>: size unknown ({html.escape(str(exc))})")
            continue
        if report is None:
            lines.append(f"Cache <code>{url}</code>")
            continue
        entries = getattr(report, "entries", 0)
        size = format_bytes(getattr(report, "total_bytes", 0))
        lines.append(
            f'Cache <code>{url}</code>: <span class="jo-cache-size">{entries:,} stored versions, {size}</span>'
        )
    return "".join(f'<div class="jo-cache" style="{_DIM};margin-top:2px">{line}</div>' for line in lines)


def storage_key(plan: ExecutionPlan) -> tuple:
    """What the plan shows of its persisted Contexts (places and sizes): live views redraw when it changes."""
    contexts = persisted_contexts(plan)
    if not contexts:
        return ()
    places = tuple(where(step.ctx, name) for name, step in plan.graph.steps.items())
    sizes = []
    for ctx in contexts:
        try:
            usage = ctx.disk_usage()
        except OSError:
            usage = None
        sizes.append((store_url(ctx), getattr(usage, "total_bytes", None), getattr(usage, "entries", None)))
    return places, tuple(sizes)
