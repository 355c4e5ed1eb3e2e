"""Execute every example notebook headlessly and export it to HTML, without touching the originals.

    python examples/run_notebooks.py [NOTEBOOK ...]

Executed copies and their HTML go to artifacts/examples/.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbconvert import HTMLExporter

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "artifacts" / "examples"


KILLS_KERNEL = "kills-kernel"  # the tag of a cell that ends its own kernel on purpose (notebook 05)


class _Client(nbclient.NotebookClient):
    """Runs a cell tagged ``kills-kernel``, which must end its kernel, then restarts the kernel as Jupyter
    does, so the cells after it run in the new one. A tagged cell whose kernel survives is an error."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):  # type: ignore[no-untyped-def]
        if KILLS_KERNEL not in cell.get("metadata", {}).get("tags", []):
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        try:
            await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except nbclient.exceptions.DeadKernelError:
            await ensure_async(self.km.restart_kernel(now=True))
            await ensure_async(self.kc.wait_for_ready(timeout=60))
            return cell
        raise nbclient.exceptions.CellExecutionError(
            f"cell {cell_index} is tagged {KILLS_KERNEL!r}, but its kernel is still alive", "", ""
        )


def execute(nb: nbformat.NotebookNode, **options: object) -> None:
    """Run every cell of ``nb`` in a fresh kernel on local sockets (no "running over TCP" warning)."""
    with tempfile.TemporaryDirectory() as sockets:
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        client = _Client(nb, km=km, timeout=600, resources={"metadata": {"path": str(HERE)}}, **options)
        try:
            client.execute()
        finally:
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)


def main(argv: list[str]) -> int:
    notebooks = [Path(a) for a in argv] or sorted(HERE.glob("*.ipynb"))
    if not notebooks:
        print("no example notebooks found")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        try:
            execute(nb)
        except nbclient.exceptions.CellExecutionError as exc:
            failed += 1
            print(f"FAILED {path.name}: {str(exc).splitlines()[-1] if str(exc) else exc}")
            continue
        nbformat.write(nb, OUT / path.name)
        body, _ = HTMLExporter().from_notebook_node(nb)
        (OUT / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
        print(f"ok     {path.name} ({time.perf_counter() - started:.1f} s) -> {OUT.relative_to(HERE.parent)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
