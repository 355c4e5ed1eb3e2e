"""mybinder.org can build the examples: repo2docker's Dockerfile selects Python 3.11+, pip-installs every
package the notebooks import, and runs binder/postBuild (which installs job-orchestra from the checkout).

repo2docker runs here without Docker: ``repo2docker --no-run --no-build --debug .`` prints the Dockerfile.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWN = {"job_orchestra", "jupyter_ext"}  # installed by binder/postBuild


def notebook_imports() -> dict[str, set[str]]:
    """Top-level modules each example notebook imports (IPython magics and shell lines left out)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "examples").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            tree = ast.parse("\n".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!"))))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(path.name)
    return found


def third_party(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    local = {p.stem for p in (ROOT / "examples").glob("*.py")}  # modules beside the notebooks
    return {m: nbs for m, nbs in modules.items() if m not in sys.stdlib_module_names and m not in OWN | local}


def distributions(module: str) -> set[str]:
    names = metadata.packages_distributions().get(module, [module])
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names}


def requirements() -> set[str]:
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    reqs = [re.split(r"[<>=!~\[; ]", ln.strip(), maxsplit=1)[0] for ln in lines if ln.strip() and ln[0] != "#"]
    return {re.sub(r"[-_.]+", "-", r).lower() for r in reqs}


def test_the_notebooks_imports_are_found():
    modules = third_party(notebook_imports())
    assert {"distributed", "sklearn", "pandas"} <= set(modules)
    assert "04-parallel-execution.ipynb" in modules["distributed"]


def test_binder_requirements_cover_every_package_the_notebooks_import():
    wanted = requirements()
    missing = {m: sorted(nbs) for m, nbs in third_party(notebook_imports()).items() if not distributions(m) & wanted}
    assert not missing, f"binder/requirements.txt lacks what these notebooks import: {missing}"


def test_binder_runtime_meets_the_projects_minimum_python():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.(\d+)", runtime) and int(runtime.split(".")[1]) >= 11
    minimum = re.search(r'requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert minimum and int(runtime.split(".")[1]) >= int(minimum[1])


@pytest.fixture(scope="module")
def dockerfile() -> str:
    r2d = shutil.which("repo2docker") or str(Path(sys.executable).with_name("repo2docker"))
    if not Path(r2d).exists():
        pytest.skip("repo2docker is not installed (pip install jupyter-repo2docker, in the test extra)")
    done = subprocess.run(
        [r2d, "--no-run", "--no-build", "--debug", "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_repo2docker_selects_the_runtime_python(dockerfile):
    assert "Python version unspecified" not in dockerfile
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip().removeprefix("python-")
    assert f"Building conda environment for python={runtime}" in dockerfile


def test_repo2docker_installs_the_requirements_and_runs_post_build(dockerfile):
    assert re.search(r'pip install --no-cache-dir -r "binder/requirements\.txt"', dockerfile)
    assert "RUN ./binder/postBuild" in dockerfile
    assert "graphviz" in dockerfile  # binder/apt.txt: the drawings need dot
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert re.search(r"pip install .*\s\.(\s|$)", post_build), "postBuild must install job-orchestra itself"
