"""Sphinx configuration: build with ``python -m sphinx -W -b html docs docs/_build/html``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "job-orchestra"
author = "job-orchestra developers"
copyright = "job-orchestra developers"
release = "2.0.0"

extensions = [
    "myst_nb",  # Markdown pages and the example notebooks (rendered from their stored outputs)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# The notebooks are executed and checked by the test suite (pytest --nbval); the docs show their saved outputs,
# including the static pictures (text/html) of their widgets.
nb_execution_mode = "off"
nb_output_stderr = "remove"
# Widget outputs of job-orchestra carry their final state as text/html: show that (the widget JavaScript
# would come from a CDN, and the example notebooks do not save widget state).
nb_mime_priority_overrides = [("html", "text/html", 5)]
myst_enable_extensions = ["colon_fence", "deflist"]

exclude_patterns = ["_build", "_generated", "examples/sanitize.cfg", "**/.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

# No intersphinx: the build must work offline (CI has no network beyond package registries).
html_theme = "furo"
html_title = "job-orchestra 2.0"


def _draw_layers() -> None:
    """Draw architecture.md's layer diagram from the real imports (scripts/layers.py), so it cannot go stale."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import graphviz
    import layers

    out = Path(__file__).parent / "_generated"
    out.mkdir(exist_ok=True)
    source = layers.dot(layers.check())
    try:
        svg = graphviz.Source(source).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:  # no `dot`: show the DOT text instead of failing the build
        svg = None
    page = out / "layers.md"
    if svg is None:
        page.write_text(f"Graphviz's `dot` is not installed; the diagram's source:\n\n```text\n{source}```\n")
    else:
        (out / "layers.svg").write_text(svg)
        page.write_text("![The modules of job_orchestra by layer, with their imports](_generated/layers.svg)\n")


_draw_layers()
