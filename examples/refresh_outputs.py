"""Re-execute the example notebooks in place, so their committed outputs match the code again.

    python examples/refresh_outputs.py [NOTEBOOK ...]

Run it after a change that alters what the notebooks show (a plan's text, the graph's drawing...), then
check the diff and ``python -m pytest examples`` (nbval compares the committed outputs with a fresh run).
Widget state is not saved (as JupyterLab saves notebooks by default): every widget output carries a static
picture of its final state as ``text/html``, which nbconvert, GitHub and the docs then show in its place.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from run_notebooks import execute

HERE = Path(__file__).resolve().parent


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    execute(nb, store_widget_state=False)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise SystemExit(f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']} (not written)")
    nbformat.write(nb, path)
    print(f"refreshed {path.name} ({path.stat().st_size / 1024:.0f} kB)")


def main(argv: list[str]) -> None:
    for path in [Path(a) for a in argv] or sorted(HERE.glob("[0-9][0-9]-*.ipynb")):
        refresh(path)


if __name__ == "__main__":
    main(sys.argv[1:])
