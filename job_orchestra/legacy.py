"""Reading snapshots written by job-orchestra 1.1 (``master_record.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SnapshotError

if TYPE_CHECKING:
    from .context import Context


def load_legacy(cls: type[Context], root: Path) -> Context:
    """Open a 1.1 snapshot directory."""
    raise SnapshotError(f"{str(root)!r} is a job-orchestra 1.1 snapshot; reading that format is not supported yet.")
