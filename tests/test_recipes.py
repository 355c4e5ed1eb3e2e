"""The 1.1 README's recipes run unchanged and print the plans the README shows."""

from __future__ import annotations

import subprocess
import sys

from job_orchestra import Context
from tests import recipes

LEGEND = (
    "Execution plan. Result availability: [*] available - [ ] n/a - [x] no context. "
    "Scheduled execution: (H) head - (>) scheduled run on materialize - ( ) no run required."
)


def test_pasta_plan_before_running_matches_the_readme():
    steps = recipes.pasta()
    plan = steps["PanFry"].execution_plan(show=False)
    rows = [
        " [x] (>) BrownOnions",
        " [x] (>) CutTomatoes",
        " [x] (>) BoilWater",
        " [x] (>) Salt",
        " [x] (>) PickBasil",
        " [x] (>) PourTomatoes",
        " [x] (>) PourPasta",
        " [x] (H) PanFry",
    ]
    assert str(plan) == LEGEND + "\n" + "\n".join(rows) + "\n"
    assert repr(plan) == str(plan)


def test_pasta_with_context_runs_and_caches_pour_tomatoes():
    ctx = Context()
    steps = recipes.pasta(ctx)
    merge = steps["PanFry"]
    assert [(r.availability.value, r.schedule.value, r.name) for r in merge.execution_plan(show=False)] == [
        ("[x]", "(>)", "BrownOnions"),
        ("[x]", "(>)", "CutTomatoes"),
        ("[x]", "(>)", "BoilWater"),
        ("[x]", "(>)", "Salt"),
        ("[x]", "(>)", "PickBasil"),
        ("[ ]", "(>)", "PourTomatoes"),
        ("[x]", "(>)", "PourPasta"),
        ("[x]", "(H)", "PanFry"),
    ]
    lunch = merge.materialize()
    assert lunch == (
        "pasta in salted boiling water + sauce of (tomatoes cut beside browned onions) and (browned onions) + basil"
    )
    assert sorted(recipes.CALLS) == sorted(steps)  # every step once, BrownOnions included
    assert ctx["PourTomatoes"].sauce == ctx.PourTomatoes["sauce"]

    after = merge.execution_plan(show=False)
    assert str(after).splitlines()[1:] == [
        " [x] ( ) BrownOnions",
        " [x] ( ) CutTomatoes",
        " [x] (>) BoilWater",
        " [x] (>) Salt",
        " [x] (>) PickBasil",
        " [*] ( ) PourTomatoes",
        " [x] (>) PourPasta",
        " [x] (H) PanFry",
    ]
    recipes.CALLS.clear()
    assert merge.materialize() == lunch
    assert sorted(recipes.CALLS) == ["BoilWater", "PanFry", "PickBasil", "PourPasta", "Salt"]


def test_salty_variant_with_name_alias_runs_each_step_once():
    steps = recipes.salty_pasta()
    merge = steps["PanFry"]
    assert [r.name for r in merge.execution_plan(show=False)] == [
        "BrownOnions",
        "CutTomatoes",
        "PourTomatoes",
        "BoilWater",
        "SaltWater",
        "PickBasil",
        "SaltTomatoes",
        "PourPasta",
        "PanFry",
    ]
    assert [r.step_class for r in merge.execution_plan(show=False)][4] == "Salt"
    out = merge.materialize()
    assert out.startswith("pasta in salted boiling water + salted sauce of")
    assert sorted(recipes.CALLS) == sorted(steps)  # 1.1 ran BrownOnions twice here


def test_a_1_1_script_sees_the_plan_printed_once(tmp_path):
    script = tmp_path / "recipe.py"
    script.write_text(
        "from tests import recipes\n"
        "steps = recipes.pasta()\n"
        "steps['PanFry'].execution_plan()\n"
        "print('lunch:', steps['PanFry'].materialize())\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, cwd=_repo_root()
    ).stdout
    assert out.count("Execution plan.") == 1
    assert out.index(" [x] (>) BrownOnions") < out.index(" [x] (H) PanFry") < out.index("lunch: pasta in")


def test_in_ipython_the_plan_is_displayed_once_not_printed_and_displayed():
    code = (
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_cell('from tests import recipes; steps = recipes.pasta()')\n"
        "ip.run_cell(\"steps['PanFry'].execution_plan()\")\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_repo_root()
    ).stdout
    assert out.count("Execution plan.") == 1, out


def _repo_root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[1])
