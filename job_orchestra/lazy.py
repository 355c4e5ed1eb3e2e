"""``LazyEntry``: a stored value not read from disk yet, which a Context replaces by its value on first use.

It sits below both the Context and the snapshot readers, so the readers can hand a Context its
placeholders without importing it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LazyEntry"]


class LazyEntry:
    """A snapshot entry not read from disk yet; :class:`~job_orchestra.Context` replaces it by its value on
    first access (``loader()`` reads and verifies it)."""

    __slots__ = ("description", "loader")

    def __init__(self, loader: Any, description: str) -> None:
        self.loader = loader
        self.description = description

    def __repr__(self) -> str:
        return f"<not loaded yet: {self.description}>"
