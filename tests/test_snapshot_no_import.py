"""Storing or hashing never imports a module: dill's namespace check imported any module named by a dict's
``"__name__"`` (a function's state is such a dict), so a script ``run.py`` storing its pipeline ran twice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = """
    import sys
    from pathlib import Path
    from job_orchestra import Context, Step
    Path("ran.log").open("a").write(__name__ + "\\n")

    def {helper}():
        return 1

    class A(Step):
        def run(self):
            return {helper}()

    ctx = Context()
    a = A(ctx=ctx)
    a.materialize()
    ctx["value"] = {{"__name__": "{module}", "data": [1, 2]}}
    ctx.store("snap", pipeline=a)
    loaded = Context.load("snap")
    assert loaded.pipeline.materialize() == 1
    assert loaded["value"] == {{"__name__": "{module}", "data": [1, 2]}}
    from job_orchestra.fingerprint import hash_value
    hash_value({{"__name__": "{module}", "f": lambda: 0}})
"""


@pytest.mark.parametrize("script_name", ["run.py", "pipeline.py", "other.py"])
@pytest.mark.parametrize("helper", ["pipeline", "helper"])
def test_a_script_storing_its_pipeline_runs_once_and_imports_nothing(
    tmp_path: Path, script_name: str, helper: str
) -> None:
    # The step's run() and its helper are functions named like the script (or not); a module next to the
    # script is named by a stored dict: importing any of them would write to ran.log.
    (tmp_path / "sidefx.py").write_text('open("ran.log", "a").write("imported\\n")\n')
    source = textwrap.dedent(SCRIPT).format(helper=helper, module="sidefx")
    (tmp_path / script_name).write_text(source)
    done = subprocess.run([sys.executable, script_name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran.log").read_text().splitlines() == ["__main__"]
