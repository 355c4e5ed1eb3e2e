"""The core finds display layers through job_orchestra.rendering, never by importing them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from job_orchestra import Step, rendering
from tests.recipes import Leaf, Node


class TinyTerminalRenderer:
    """A renderer for a plain terminal: the plan as Markdown, steps left to the default."""

    def __init__(self) -> None:
        self.shown: list[object] = []

    def mimebundle(self, obj):
        from job_orchestra import ExecutionPlan

        if isinstance(obj, ExecutionPlan):
            rows = "\n".join(f"| {row.name} | {row.availability.value} |" for row in obj.rows)
            return {"text/markdown": rows, "text/plain": str(obj)}
        return None

    def ipython_display(self, obj) -> bool:
        self.shown.append(obj)
        return True


@pytest.fixture
def tiny():
    renderer = rendering.register(TinyTerminalRenderer())
    yield renderer
    rendering.unregister(renderer)


def _pipeline() -> Step:
    return Node(depends_on=[Leaf(name_alias="a"), Leaf(name_alias="b")])


def test_a_registered_renderer_is_asked_first(tiny):
    bundle = _pipeline().execution_plan(show=False)._repr_mimebundle_()
    assert set(bundle) == {"text/markdown", "text/plain"}
    assert "| a |" in bundle["text/markdown"] and "| Node |" in bundle["text/markdown"]


def test_a_renderer_that_passes_leaves_the_next_one(tiny):
    """The tiny renderer does not draw steps: the installed Jupyter layer (or the text default) does."""
    bundle = _pipeline()._repr_mimebundle_()
    assert "text/markdown" not in bundle and "Node" in bundle["text/plain"]


def test_ipython_display_goes_to_the_renderer(tiny):
    head = _pipeline()
    head._ipython_display_()
    head.dependency_graph()._ipython_display_()
    assert tiny.shown[0] is head and type(tiny.shown[1]).__name__ == "DependencyGraph"


def test_unregister_restores_the_previous_renderers(tiny):
    rendering.unregister(tiny)
    assert tiny not in rendering.renderers()
    rendering.unregister(tiny)  # twice is harmless


def _run(code: str, path: Path | None = None) -> dict:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = """
    import json, sys, warnings
    warnings.simplefilter("always")
    import job_orchestra
    from job_orchestra import Step, rendering
    before = sorted(m for m in ("jupyter_ext", "IPython", "ipywidgets", "importlib.metadata") if m in sys.modules)
    class A(Step):
        def run(self):
            return 1
    with warnings.catch_warnings(record=True) as caught:
        bundle = A().execution_plan(show=False)._repr_mimebundle_()
    print(json.dumps({"before": before, "mimes": sorted(bundle),
                      "renderers": [getattr(r, "__name__", type(r).__name__) for r in rendering.renderers()],
                      "warnings": [str(w.message) for w in caught]}))
"""


def test_import_loads_no_display_layer_and_discovery_finds_jupyter_ext():
    out = _run(PROBE)
    assert out["before"] == [], "importing the core must not import a display layer or package metadata"
    assert "jupyter_ext.renderer" in out["renderers"]
    assert "text/html" in out["mimes"]


def _fake_distribution(root: Path, name: str, module_source: str, value: str) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{rendering.GROUP}]\n{name} = {value}\n")
    (root / f"{name}.py").write_text(textwrap.dedent(module_source))


def test_an_installed_plug_in_is_discovered_by_entry_point(tmp_path):
    """Another renderer (a terminal or marimo one) plugs in the way jupyter_ext does: by an entry point."""
    _fake_distribution(
        tmp_path,
        "aaa_tiny",
        """
        def mimebundle(obj):
            return {"text/markdown": "*plan*", "text/plain": "plan"}
        """,
        "aaa_tiny",
    )
    out = _run(PROBE, tmp_path)
    assert out["renderers"][0] == "aaa_tiny"  # name order: before "jupyter"
    assert out["mimes"] == ["text/markdown", "text/plain"]


def test_a_broken_plug_in_warns_and_display_still_works(tmp_path):
    _fake_distribution(tmp_path, "aaa_broken", "raise ImportError('no such thing')\n", "aaa_broken")
    out = _run(PROBE, tmp_path)
    assert any("aaa_broken" in w and "failed to load" in w for w in out["warnings"])
    assert "text/html" in out["mimes"]  # the Jupyter layer still renders


def test_without_any_renderer_plans_and_steps_are_plain_text():
    out = _run(
        """
        import json
        from job_orchestra import Step, rendering
        rendering._discovered = []  # as if no display layer were installed
        class A(Step):
            def run(self):
                return 1
        plan = A().execution_plan(show=False)
        print(json.dumps({"plan": sorted(plan._repr_mimebundle_()), "step": sorted(A()._repr_mimebundle_()),
                          "html": plan._repr_html_()[:5]}))
        """
    )
    assert out == {"plan": ["text/plain"], "step": ["text/plain"], "html": "<pre>"}
