"""Count the lines of the scikit-learn pipeline in its three versions: function steps, Step classes, Hamilton.

    python benchmarks/count_lines.py

Counts non-blank lines that are not only a comment (docstrings count: each version has the same three), of
the notebook cells tagged ``pipeline`` in examples/02-data-science.ipynb (definitions, wiring, the run), of
the first two Python blocks of docs/sklearn-classes.md (the steps; the wiring and run), and of
benchmarks/sklearn_hamilton.py without its module docstring (the driver that runs it counts).
"""

from __future__ import annotations

import ast
import io
import json
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "02-data-science.ipynb"
CLASSES = ROOT / "docs" / "sklearn-classes.md"
HAMILTON = ROOT / "benchmarks" / "sklearn_hamilton.py"
BLOCK = re.compile(r"^```python\n(.*?)^```\n", re.S | re.M)


def code_lines(source: str) -> int:
    """Non-blank lines of ``source`` holding more than a comment."""
    comments = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip():
            comments.add(tok.start[0])
    return sum(1 for i, line in enumerate(source.splitlines(), 1) if line.strip() and i not in comments)


def without_module_docstring(source: str) -> str:
    tree = ast.parse(source)
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = source.splitlines(keepends=True)
        return "".join(lines[: first.lineno - 1] + lines[first.end_lineno :])
    return source


def sources() -> dict[str, str]:
    """The three versions' code, by name."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    tagged = ["".join(c["source"]) for c in cells if "pipeline" in c.get("metadata", {}).get("tags", [])]
    return {
        "job-orchestra, @step functions + Step.map (examples/02-data-science.ipynb)": "\n".join(tagged),
        "job-orchestra, Step classes + Step.map (docs/sklearn-classes.md)": "\n".join(
            BLOCK.findall(CLASSES.read_text(encoding="utf-8"))[:2]  # the steps, the wiring and run
        ),
        "Apache Hamilton (benchmarks/sklearn_hamilton.py)": without_module_docstring(HAMILTON.read_text()),
    }


def main() -> int:
    counts = {name: code_lines(code) for name, code in sources().items()}
    width = max(map(len, counts))
    for name, count in counts.items():
        print(f"{name:<{width}}  {count:>4} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
