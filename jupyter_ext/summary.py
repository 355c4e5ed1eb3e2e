"""Short, cheap descriptions of cached values and run times, for the plan table.

Nothing here loads a snapshot entry from disk or imports numpy/pandas: values are described by duck typing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_entry", "describe_value", "format_bytes", "format_seconds"]


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 kB'`` (powers of 1024, one decimal)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_seconds(seconds: float) -> str:
    """A duration for people: ``'850 µs'``, ``'12 ms'``, ``'3.4 s'``, ``'2 min 05 s'``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def describe_value(value: Any) -> str:
    """A one-line summary of a value's type and size, e.g. ``'DataFrame 569x30, 133.5 kB'``."""
    kind = type(value).__name__
    if value is None or isinstance(value, (bool, int, float, complex)):
        return f"{kind} {_short(repr(value), 24)}"
    if isinstance(value, (str, bytes)):
        unit = "chars" if isinstance(value, str) else "bytes"
        return f"{kind}, {len(value):,} {unit}"
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        dims = "x".join(str(d) for d in shape) or "scalar"
        nbytes = getattr(value, "nbytes", None)
        if hasattr(value, "columns"):  # a DataFrame: nbytes is not defined, ask pandas cheaply
            try:
                nbytes = int(value.memory_usage(index=True, deep=False).sum())
            except Exception:
                nbytes = None
        dtype = getattr(value, "dtype", None)
        extra = f" {dtype}" if dtype is not None and not hasattr(value, "columns") else ""
        size = f", {format_bytes(nbytes)}" if isinstance(nbytes, (int, float)) else ""
        return f"{kind} {dims}{extra}{size}"
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:4])) + (", \u2026" if len(value) > 4 else "")
        return f"{kind} ({len(value)} keys: {_short(keys)})" if value else f"{kind} (empty)"
    if isinstance(value, (list, tuple, set, frozenset)):
        return f"{kind} of {len(value)}"
    return kind


def describe_entry(ctx: Any, name: str) -> str:
    """Describe ``ctx[name]`` without reading it from disk when it is a snapshot entry not loaded yet."""
    is_loaded = getattr(ctx, "is_loaded", None)
    if is_loaded is not None and not is_loaded(name):
        raw = dict.__getitem__(ctx, name)
        description = getattr(raw, "description", "")
        return f"on disk, not loaded ({description})" if description else "on disk, not loaded"
    return describe_value(ctx[name])
