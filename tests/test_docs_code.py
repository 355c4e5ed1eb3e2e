"""Every ```python block of the README and of docs/*.md runs, and shows what it says it shows.

Each page runs in its own process and directory, its blocks in order in one namespace (after the page's
prelude below, for pages whose snippets continue an example the text describes). Checked outputs:
``>>>`` examples (doctest), a ``# ... returns X`` comment (the expression must equal X), and a
```text block right after a block (what the block prints must end with it). ```ipython blocks (magics)
run in an IPython shell.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("docs/concepts/*.md")], key=lambda p: str(p))
BLOCK = re.compile(r"^```(python|ipython)\n(.*?)^```\n(?:\n*```text\n(.*?)^```\n)?", re.S | re.M)
RETURNS = re.compile(r"^(?P<indent>\s*)(?P<expr>[^#\n=]+?)\s*#.*\breturns (?P<value>-?\d+(?:\.\d+)?|'[^']*')\s*$")

# Names the snippets of a page use that the page describes in prose (the page's running example).
PRELUDES = {
    "docs/concepts/contexts-and-snapshots.md": """
from job_orchestra import Context, Step
class Split(Step):
    def run(self):
        return [1, 2, 3]
class Features(Step):
    def run(self, rows):
        return [r * 2 for r in rows]
split = Split()
""",
    "docs/concepts/contexts-and-snapshots.md#2": """
_ctx = Context()
_head = Features(depends_on=Split(ctx=_ctx), ctx=_ctx)
_head.materialize()
path = "report-snapshot"
_ctx.store(path, pipeline=_head)
""",
    "docs/snapshots-and-staleness.md": """
from job_orchestra import Context, Step
ctx = Context()
class LoadData(Step):
    def run(self):
        return [3, None, 1]
class Clean(Step):
    def run(self, rows):
        return [r for r in rows if r is not None]
class Train(Step):
    def run(self, rows):
        return sum(rows)
load = LoadData(ctx=ctx)
Train(depends_on=Clean(depends_on=load, ctx=ctx), ctx=ctx).materialize()
class Clean(Step):  # the code of Clean changed since its result was stored
    def run(self, rows):
        return sorted(r for r in rows if r is not None)
clean = Clean(depends_on=load, ctx=ctx)
head = train = Train(depends_on=clean, ctx=ctx)
""",
    "docs/concepts/parallel-and-command-line.md": """
from job_orchestra import Step
class Leaf(Step):
    def run(self):
        return 1
head = Step.join([Leaf(name_alias=f"L{i}") for i in range(3)])
""",
    "docs/errors.md": "from job_orchestra import Step\n",
    "docs/concepts/file-inputs.md": """
import os, pandas as pd
os.makedirs("data/parts")
pd.DataFrame({"group": ["a", "b", "a"], "value": [1, 2, 3]}).to_parquet("data/meta.parquet")
pd.DataFrame({"x": [1, 2]}).to_csv("data/parts/2024-01.csv", index=False)
pd.DataFrame({"x": [3, 4]}).to_csv("data/parts/2024-02.csv", index=False)
""",
}
NEEDS = {"docs/concepts/parallel-and-command-line.md": "distributed", "docs/concepts/file-inputs.md": "pyarrow"}

RUNNER = r"""
import contextlib, doctest, io, json, re, sys
spec = json.loads(sys.stdin.read())
ns = {"__name__": "__main__"}
shell = None
for i, block in enumerate(spec["blocks"]):
    if block["prelude"]:
        exec(compile(block["prelude"], f"prelude of block {i + 1}", "exec"), ns)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if block["lang"] == "ipython":
            if shell is None:
                from IPython.core.interactiveshell import InteractiveShell
                shell = InteractiveShell.instance()
                shell.user_ns.update(ns)
            result = shell.run_cell(block["code"])
            result.raise_error()
            ns.update(shell.user_ns)
        elif block["code"].lstrip().startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(block["code"], ns, f"block {i + 1}", None, 0)
            runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
            runner.run(test, out=lambda text: sys.stderr.write(text), clear_globs=False)
            if runner.failures:
                sys.exit(f"block {i + 1}: {runner.failures} doctest example(s) failed")
        else:
            exec(compile(block["code"], f"block {i + 1}", "exec"), ns)
    printed = out.getvalue()
    sys.stdout.write(printed)
    if block["shown"] is not None and not printed.rstrip("\n").endswith(block["shown"].rstrip("\n")):
        sys.exit(f"block {i + 1} printed\n{printed}\nbut the page shows\n{block['shown']}")
"""


def check_returns(code: str) -> str:
    """Turn ``expr  # ... returns X`` lines into assertions that ``expr == X``."""
    lines = []
    for line in code.splitlines():
        m = RETURNS.match(line)
        if m and not m["expr"].lstrip().startswith(("return", "def ", "class ")):
            expr, value, indent = m["expr"].strip(), m["value"], m["indent"]
            line = (
                f"{indent}__value = {expr}\n"
                f"{indent}assert __value == {value}, f'{expr} returned {{__value!r}}, the page says {value}'"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


def page_blocks(page: Path) -> list[dict]:
    rel = page.relative_to(ROOT).as_posix()
    blocks = []
    for i, m in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8"))):
        key = rel if i == 0 else f"{rel}#{i + 1}"
        blocks.append({"lang": m[1], "code": check_returns(m[2]), "shown": m[3], "prelude": PRELUDES.get(key, "")})
    return blocks


PAGES_WITH_CODE = [p for p in PAGES if page_blocks(p)]


def test_the_pages_with_code_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES_WITH_CODE}
    assert {"README.md", "docs/getting-started.md", "docs/snapshots-and-staleness.md"} <= names
    assert {k.split("#")[0] for k in PRELUDES} <= names


def test_a_wrong_return_comment_fails():
    code = check_returns("x = 2\nx + 1  # returns 4\n")
    with pytest.raises(AssertionError, match="returned 3, the page says 4"):
        exec(code, {})


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run_and_show_what_the_page_says(page, tmp_path):
    rel = page.relative_to(ROOT).as_posix()
    if rel in NEEDS:
        pytest.importorskip(NEEDS[rel])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env["MPLBACKEND"] = "Agg"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps({"blocks": page_blocks(page)}),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{rel}:\n{done.stderr[-4000:]}"
