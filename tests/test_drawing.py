"""dependency_graph(): a graphviz drawing, inline SVG, a text fallback without dot."""

from __future__ import annotations

import shutil

import graphviz
import pytest

from job_orchestra import Context, Step
from job_orchestra.drawing import INSTALL_HINT, DependencyGraph

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


class Leaf(Step):
    def run(self):
        return 1


class Node(Step):
    def run(self, *xs):
        return sum(xs)


def pipeline():
    ctx = Context(Cached=1)
    cached = Node(depends_on=Leaf(), ctx=ctx, name_alias="Cached")
    return Node(depends_on=[cached, Leaf(name_alias="Other")], name_alias="Head")


def test_graph_is_a_graphviz_digraph_with_nodes_edges_and_statuses():
    g = pipeline().dependency_graph()
    assert isinstance(g, graphviz.Digraph) and isinstance(g, DependencyGraph)
    src = g.source
    for name in ("Leaf", "Cached", "Other", "Head"):
        assert f"\t{name} [" in src
    assert "\tLeaf -> Cached" in src and "\tCached -> Head" in src and "\tOther -> Head" in src
    assert 'tooltip="Cached: cached"' in src and 'tooltip="Head: head"' in src
    assert 'tooltip="Other: scheduled"' in src and 'tooltip="Leaf: skipped"' in src
    assert "Node</FONT>" in src  # the class is shown under an alias


@needs_dot
def test_mimebundle_has_svg_and_text():
    bundle = pipeline().dependency_graph()._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml") and "<svg" in bundle["image/svg+xml"]
    assert "Head" in bundle["text/plain"]


@needs_dot
@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_graph_saves_to_files(tmp_path, fmt):
    out = pipeline().dependency_graph().render(tmp_path / "graph", format=fmt, cleanup=True)
    data = open(out, "rb").read()
    assert {"svg": b"<svg", "png": b"\x89PNG", "pdf": b"%PDF"}[fmt] in data[:400]


def test_without_dot_the_graph_shows_text_and_an_install_hint(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    bundle = pipeline().dependency_graph()._repr_mimebundle_()
    assert set(bundle) == {"text/plain"}
    assert INSTALL_HINT in bundle["text/plain"] and "(H) Head" in bundle["text/plain"]


def test_dependency_graph_js_is_deprecated_but_works():
    with pytest.warns(DeprecationWarning, match="dependency_graph"):
        js = pipeline().dependency_graph_js()
    assert js.startswith("element.innerHTML") and "Head" in js


def test_100k_chain_draws_without_recursion():
    step: Step = Leaf()
    for i in range(100_000):
        step = Node(depends_on=step, name_alias=f"n{i}")
    src = step.dependency_graph().source
    assert src.count(" -> ") == 100_000
