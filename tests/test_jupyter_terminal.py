"""Terminal IPython: a graph shows as text with one line saying where the picture is; ``ipython script.py``
prints execution plans as job-orchestra 1.1 did."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from job_orchestra.plan import LEGEND
from jupyter_ext.display import TERMINAL_HINT

PIPELINE = """
from job_orchestra import Context, Step
class Load(Step):
    def run(self):
        return 1
class Train(Step):
    def run(self, x):
        return x + 1
head = Train(Load(ctx=Context()))
"""


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()  # no kernel: what a terminal `ipython` session is
    yield ip
    ip.reset(new_session=False)
    InteractiveShell.clear_instance()
    for name in ("ps1", "ps2"):
        if hasattr(sys, name):
            delattr(sys, name)


def test_a_graph_in_a_terminal_is_text_plus_where_the_picture_is(shell):
    assert shell.run_cell(PIPELINE).success
    with capture_output() as captured:
        shell.run_cell("head.dependency_graph()")
    (out,) = captured.outputs
    text = out.data["text/plain"].splitlines()
    assert text[0] == "Dependency graph of Train (2 steps)"
    assert text[-1] == TERMINAL_HINT and "render(" in text[-1] and "python -m job_orchestra graph" in text[-1]
    with capture_output() as captured:
        shell.run_cell("head.execution_plan()")
    assert "Execution plan." not in captured.stdout  # displayed once, not printed as well


@pytest.mark.parametrize("runner", ["ipython", "%run"])
def test_a_script_run_by_ipython_prints_its_plan(tmp_path, runner):
    script = tmp_path / "pipeline_script.py"
    script.write_text(PIPELINE + "head.execution_plan()\nprint('end of script')\n")
    if runner == "ipython":
        command = [sys.executable, "-m", "IPython", "--quick", "--no-banner", str(script)]
    else:
        command = [sys.executable, "-m", "IPython", "--quick", "--no-banner", "-c", f"%run {script}"]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert done.returncode == 0, done.stderr
    expected = f"{LEGEND}\n [ ] (>) Load\n [x] (H) Train\n\nend of script"
    assert expected in done.stdout  # the same text as a plain ``python script.py`` prints
