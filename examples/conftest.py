"""nbval support for the example notebooks: a cell tagged ``kills-kernel`` ends its own kernel on purpose.

Such a cell (notebook 05 crashes its kernel with ``os._exit`` to show the cache surviving it) is run, must
end its kernel within a minute, and the kernel is then restarted as Jupyter does, so nbval checks the cells
after it in the new kernel. A tagged cell whose kernel survives fails. Its outputs are not compared: what a
dying process printed last depends on when it died.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

KILLS_KERNEL = "kills-kernel"
DEATH_TIMEOUT = 60.0


def _run_killing_cell(item: Any) -> None:
    kernel = item.parent.kernel
    kernel.execute_cell_input(item.cell.source, allow_stdin=False)
    deadline = time.monotonic() + DEATH_TIMEOUT
    while kernel.is_alive():
        if time.monotonic() > deadline:
            pytest.fail(
                f"cell {item.cell_num} is tagged {KILLS_KERNEL!r}, but its kernel is alive after {DEATH_TIMEOUT:.0f} s"
            )
        time.sleep(0.05)
    kernel.restart()
    kernel.kc.wait_for_ready(timeout=60)


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and KILLS_KERNEL in cell.get("metadata", {}).get("tags", []):
            item.runtest = lambda item=item: _run_killing_cell(item)
