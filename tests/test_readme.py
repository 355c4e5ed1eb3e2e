"""The README's quick start runs, and prints the plan the README shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_quick_start_runs_and_prints_the_plan_shown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick_start, snapshot = blocks("python")[:2]
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(quick_start, "README quick start", "exec"), namespace)
        exec(compile(snapshot, "README snapshot", "exec"), namespace)
    shown = blocks("text")[0]
    printed = out.getvalue()
    assert printed.count("Execution plan.") == 2
    assert printed.rstrip("\n").endswith(shown.rstrip("\n"))
    assert (
        namespace["lunch"] == "spaghetti in salted boiling water, tossed with cut tomatoes on browned onions and basil"
    )
    assert (tmp_path / "kitchen" / "manifest.json").exists()
