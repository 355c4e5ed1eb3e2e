"""The packages stay layered: no import cycles (imports inside functions count), nothing imported from a
higher layer, the core never importing the display layer, and every lazy import saying why."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layers():
    spec = importlib.util.spec_from_file_location("layers", ROOT / "scripts" / "layers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["layers"] = module
    spec.loader.exec_module(module)
    return module


def test_no_cycles_and_no_upward_imports():
    layers = _layers()
    report = layers.check()
    assert report.problems == []


def test_the_checker_sees_a_cycle_an_upward_import_and_an_uncommented_lazy_import(tmp_path, monkeypatch):
    """The check can fail: a copy of the core with three planted mistakes is reported for each."""
    layers = _layers()
    for package in layers.PACKAGES:
        target = tmp_path / package
        target.mkdir()
        for source in (ROOT / package).glob("*.py"):
            (target / source.name).write_text(source.read_text())
    core = tmp_path / "job_orchestra"
    (core / "errors.py").write_text((core / "errors.py").read_text() + "\nfrom .step import Step\n")
    (core / "graph.py").write_text((core / "graph.py").read_text() + "\nfrom jupyter_ext import show\n")
    (core / "plan.py").write_text((core / "plan.py").read_text() + "\ndef f():\n    import json\n    return json\n")
    monkeypatch.setattr(layers, "ROOT", tmp_path)
    problems = "\n".join(layers.check(tmp_path).problems)
    assert "import cycle" in problems
    assert "job_orchestra.errors (foundations) imports job_orchestra.step (facade), a higher layer" in problems
    assert "job_orchestra.graph imports jupyter_ext, a layer built on it" in problems
    assert "plan.py" in problems and "json inside a function without a comment" in problems


def test_the_diagram_shows_every_core_module_in_its_layer():
    layers = _layers()
    dot = layers.dot(layers.check())
    for _title, members in layers.LAYERS:
        for member in members:
            if (ROOT / "job_orchestra" / f"{member}.py").exists() and member != "__init__":
                assert f'"job_orchestra.{member}" [label="{member}"]' in dot
    assert '"job_orchestra.step" -> "job_orchestra.plan"' in dot
