"""Random pipelines run side by side with the published job-orchestra 1.1.4: same results, same plan rows.

Runs only where a Python with job-orchestra 1.1 is available, named by the JO11_PYTHON environment variable
(the test command, scripts/run-tests.sh, sets it up in a cache directory; $JO11_PYTHON overrides it).
Plan rows must be identical wherever 1.1's row order is a valid execution order (ours always is).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.recipes import jo11_python

JO11 = str(jo11_python())
RUNNER = Path(__file__).parent / "compat" / "runner.py"
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path(JO11).exists(), reason="no job-orchestra 1.1 interpreter (JO11_PYTHON)")


def random_spec(rng: random.Random) -> dict:
    n = rng.randint(1, 9)
    n_contexts = rng.randint(0, 2)
    nodes = []
    for i in range(n):
        k = rng.randint(0, min(i, 3))
        deps = rng.sample(range(i), k) if i else []
        if i == n - 1 and i > 0 and not deps:
            deps = [i - 1]
        name = f"S{i}" + rng.choice(["", "", "d", "n"])
        ctx = rng.randrange(n_contexts) if n_contexts and rng.random() < 0.5 else None
        nodes.append({"name": name, "deps": deps, "ctx": ctx, "prefilled": ctx is not None and rng.random() < 0.3})
    return {"nodes": nodes, "contexts": n_contexts}


SPECS = [random_spec(random.Random(seed)) for seed in range(60)]


def run(python: str, pythonpath: str | None) -> list[dict]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [python, str(RUNNER)], input=json.dumps(SPECS), capture_output=True, text=True, env=env, cwd="/", timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def both() -> tuple[list[dict], list[dict]]:
    return run(JO11, None), run(sys.executable, str(REPO))


def legacy_order_is_valid(spec: dict, rows: list[str]) -> bool:
    names = [r[9:] for r in rows]
    position = {name: i for i, name in enumerate(names)}
    by_name = {node["name"]: node for node in spec["nodes"]}
    return all(position[spec["nodes"][d]["name"]] < position[name] for name in names for d in by_name[name]["deps"])


@pytest.mark.parametrize("index", range(len(SPECS)))
def test_same_results_and_plan_rows_as_1_1(both, index):
    spec = SPECS[index]
    theirs, ours = both[0][index], both[1][index]
    assert ours["result"] == theirs["result"]
    assert ours["second_result"] == theirs["second_result"]
    assert ours["contexts"] == theirs["contexts"]
    for label in ("plan_before", "plan_after"):
        if legacy_order_is_valid(spec, theirs[label]):
            assert ours[label] == theirs[label], label
        else:
            assert sorted(ours[label]) == sorted(theirs[label]), label
