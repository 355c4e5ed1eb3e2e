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
