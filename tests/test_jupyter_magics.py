"""``%orchestra``: plan, graph, run, widget, save and load (also into a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

PIPELINE = """
from job_orchestra import Step, Context
ctx = Context()
class Dough(Step):
    def run(self):
        return "dough"
class Bake(Step):
    def run(self, dough):
        return f"baked {dough}"
bread = Bake(Dough(ctx=ctx), ctx=ctx)
"""


def forget_shell(prompts=("ps1", "ps2")):
    """Later tests must not think they run inside IPython (the shell is a singleton and sets sys.ps1)."""
    InteractiveShell.clear_instance()
    for name in prompts:
        if hasattr(sys, name):
            delattr(sys, name)


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_ext")
    result = ip.run_cell(PIPELINE)
    assert result.success
    yield ip
    ip.run_line_magic("unload_ext", "jupyter_ext")  # stops live views: later tests see no global callback
    ip.reset(new_session=False)
    forget_shell()


def magic(ip, line):
    return ip.run_line_magic("orchestra", line)


def test_plan_and_graph_display_html_and_svg(shell):
    with capture_output() as captured:
        magic(shell, "plan bread")
        magic(shell, "graph bread")
    plan_out, graph_out = captured.outputs
    assert "jo-plan-table" in plan_out.data["text/html"]
    assert plan_out.data["text/plain"].splitlines()[1:] == [" [ ] (>) Dough", " [ ] (H) Bake"]
    assert "<svg" in graph_out.data["image/svg+xml"]


def test_run_returns_the_result_and_widget_returns_a_panel(shell):
    from jupyter_ext import PipelineWidget

    assert magic(shell, "run bread") == "baked dough"
    assert shell.user_ns["ctx"]["Dough"] == "dough"
    panel = magic(shell, "widget bread")
    assert isinstance(panel, PipelineWidget) and panel.head is shell.user_ns["bread"]


def test_attribute_paths_are_accepted(shell):
    shell.run_cell("class Box: pass\nbox = Box(); box.head = bread")
    assert magic(shell, "run box.head") == "baked dough"
    with pytest.raises(UsageError, match="'box' has no attribute 'tail'"):
        magic(shell, "run box.tail")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "needs a command"),
        ("fly bread", "unknown command 'fly'"),
        ("plan nothing_here", "no variable named 'nothing_here'"),
        ("plan ctx", "'ctx' is a Context, not a Step"),
        ("plan", "takes one step name"),
        ("load /no/such/file.dill", "no file at '/no/such/file.dill'"),
        ("save /no/such/dir/state.dill", "the folder '/no/such/dir' does not exist"),
        ("save", "takes one path"),
    ],
)
def test_clear_errors(shell, line, message):
    with pytest.raises(UsageError, match=message):
        magic(shell, line)


def test_save_refuses_to_overwrite_without_f_and_rejects_foreign_files(shell, tmp_path):
    target = tmp_path / "state.dill"
    target.write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match="exists; pass -f"):
        magic(shell, f"save {target}")
    with pytest.raises(UsageError, match="not a %orchestra save file"):
        magic(shell, f"load {target}")
    with pytest.raises(UsageError, match="is a directory"):
        magic(shell, f"save {tmp_path}")
    with capture_output() as captured:
        magic(shell, f"save -f {target}")
    assert captured.stdout.strip() == "Saved 2 objects: bread, ctx"


def test_save_then_load_in_a_fresh_process_keeps_names_links_and_results(shell, tmp_path):
    assert magic(shell, "run bread") == "baked dough"
    target = tmp_path / "state.dill"
    magic(shell, f"save {target}")
    script = textwrap.dedent(
        f"""
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "jupyter_ext")
        ip.run_line_magic("orchestra", "load {target}")
        ns = ip.user_ns
        assert "Bake" not in ns  # the classes came with the objects, by value
        assert ns["bread"].ctx is ns["ctx"], "links between objects are kept"
        assert ns["bread"].execution_plan(show=False).to_run == [], "the cached results are used"
        print(ip.run_line_magic("orchestra", "run bread"))
        print(ns["bread"].execution_plan(show=False).rows[0])
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Loaded 2 objects: bread, ctx", "baked dough", " [*] ( ) Dough"]


def test_save_in_one_kernel_and_load_in_a_fresh_kernel(tmp_path):
    """The real thing: two Jupyter kernels; the second has never seen the notebook's classes."""
    import nbformat
    from nbclient import NotebookClient

    target = tmp_path / "session.dill"
    first = PIPELINE + f"bread.materialize()\n%load_ext jupyter_ext\n%orchestra save {target}"
    second = f"""%load_ext jupyter_ext
%orchestra load {target}
result = %orchestra run bread
print('Bake' in globals(), type(bread).__name__, bread.ctx is ctx, result)
print(bread.execution_plan(show=False))"""
    outputs = []
    for source in (first, second):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        NotebookClient(nb, timeout=120, kernel_name="python3").execute(stderr=subprocess.DEVNULL)
        outputs.append("".join(o.get("text", "") for o in nb.cells[0].outputs))
    assert outputs[0] == "Saved 2 objects: bread, ctx\n"
    lines = outputs[1].splitlines()
    assert lines[:2] == ["Loaded 2 objects: bread, ctx", "False Bake True baked dough"]
    assert lines[3:5] == [" [*] ( ) Dough", " [*] (H) Bake"]
