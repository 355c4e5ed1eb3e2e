"""The documentation builds with warnings as errors (the same command as CI), notebooks included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("sphinx", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("myst_nb", reason="the docs extra is not installed: pip install -e '.[docs]'")


def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-d", str(tmp_path / "doctrees")]
    done = subprocess.run([*command, "docs", str(out)], cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    for page in ("examples/01-pasta-recipe", "examples/02-data-science", "examples/03-widget-and-live-plans"):
        text = (out / f"{page}.html").read_text()
        assert "jo-plan-table" in text or "<svg" in text or ".svg" in text, page
    api = (out / "api.html").read_text()
    assert "PipelineWidget" in api and "ExecutionPlan" in api
    check_every_public_name_is_documented(out / "objects.inv")
    check_types_are_linked(api)


# The modules a user touches: what they export (``__all__``) must be in the API reference.
PUBLIC_MODULES = [
    "job_orchestra",
    "job_orchestra.errors",
    "job_orchestra.executors",
    "job_orchestra.cleverdict_compat",
    "job_orchestra.cli",
    "jupyter_ext",
    "jupyter_ext.magics",
    "jupyter_ext.runs",
]
# Methods 1.1 and 2.0 code calls, including those that only exist for the with statement.
PUBLIC_METHODS = {
    "job_orchestra.Callback": ["register", "unregister", "__enter__", "__exit__", "step_finish"],
    "job_orchestra.Context": ["store", "load", "invalidate", "to_dict", "info", "get_aliases"],
    "job_orchestra.Step": ["run", "materialize", "execution_plan", "dependency_graph", "stepify", "join"],
}


def documented_names(inventory: Path) -> set[str]:
    from sphinx.util.inventory import InventoryFile

    with open(inventory, "rb") as f:
        data = InventoryFile.load(f, "", lambda *parts: "/".join(parts))
    names: set[str] = set()
    for domain, entries in data.items():
        if domain.startswith("py:"):
            names.update(entries)
    return names


def check_every_public_name_is_documented(inventory: Path) -> None:
    import importlib

    names = documented_names(inventory)
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            home = getattr(obj, "__module__", module_name)
            qual = getattr(obj, "__qualname__", name)
            candidates = {f"{module_name}.{name}", f"{home}.{qual}"}
            if not candidates & names:
                missing.append(f"{module_name}.{name}")
    for owner, methods in PUBLIC_METHODS.items():
        missing += [f"{owner}.{m}" for m in methods if f"{owner}.{m}" not in names]
    assert not missing, f"not in docs/api.md: {missing}"


def check_types_are_linked(api: str) -> None:
    """Parameter types link to their own entries (e.g. Step.materialize's callbacks to Callback)."""
    import re

    def params_of(anchor: str) -> str:
        start = api.index(f'id="{anchor}"')
        return api[start : api.index("</dd>", start)]

    link = r'href="#{}"'
    assert re.search(link.format(r"job_orchestra\.Callback"), params_of("job_orchestra.Step.materialize"))
    assert re.search(link.format(r"job_orchestra\.Step"), params_of("job_orchestra.Context.store"))
    assert re.search(link.format(r"job_orchestra\.Step"), params_of("job_orchestra.Step.stepify"))
