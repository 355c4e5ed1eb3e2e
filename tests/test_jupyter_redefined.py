"""A step class defined again by a re-run cell: the plans mark the steps, materialize() refuses, rebind()
moves the pipeline to the current classes, keeping parameters, Contexts and names."""

from __future__ import annotations

import sys
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from job_orchestra import Context, ExecutionPlan, RedefinedStepError, Step
from job_orchestra.redefined import current_class, find_redefined
from jupyter_ext import display

DEFINE = """
from job_orchestra import Step, Context
ctx = Context()
class Load(Step):
    def run(self):
        return 2
class Train(Step):
    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
    def run(self, x):
        return x * self.factor
head = Train(3, depends_on=Load(ctx=ctx), ctx=ctx, name_alias="Model")
"""
REDEFINE = """
class Train(Step):
    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
    def run(self, x):
        return x * self.factor + 100
"""
REASON = "class Train was redefined after this step was built"


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_ext")
    yield ip
    ip.run_line_magic("unload_ext", "jupyter_ext")
    ip.reset(new_session=False)
    InteractiveShell.clear_instance()
    for name in ("ps1", "ps2"):
        if hasattr(sys, name):
            delattr(sys, name)


def cell(ip, source):
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, captured


def test_a_cell_run_again_marks_the_step_everywhere_and_rebind_runs_the_new_code(shell):
    assert cell(shell, DEFINE)[0].success
    assert cell(shell, "head.materialize()")[0].result == 6
    ns = shell.user_ns
    old_load = ns["head"].dependencies[0]
    assert ExecutionPlan.of(ns["head"]).redefined == {}

    assert cell(shell, REDEFINE)[0].success
    plan = ExecutionPlan.of(ns["head"])
    assert plan.redefined == {"Model": REASON}
    text = str(plan)
    assert f" (!) Model: {REASON}" in text
    assert "Call Model.rebind() to use the current classes." in text
    assert text.splitlines()[1:3] == [" [*] ( ) Load", " [*] (H) Model"]  # the rows themselves are 1.1's
    page = display.render("step", plan)["text/html"]
    assert REASON in page and "(!) redefined" in page and "Model.rebind()" in page
    assert "(!) redefined" in display.render("graph", plan)["image/svg+xml"]

    result, _ = cell(shell, "head.materialize()")
    assert isinstance(result.error_in_exec, RedefinedStepError)
    assert result.error_in_exec.names == ["Model"]
    assert "Model.rebind()" in str(result.error_in_exec)

    result, _ = cell(shell, "head.rebind()")
    assert result.success and result.result is ns["head"]
    head = ns["head"]
    assert type(head) is ns["Train"] and head.factor == 3 and head.name == "Model"
    assert head.ctx is ns["ctx"] and head.dependencies == [old_load]
    plan = ExecutionPlan.of(head)
    assert plan.redefined == {}
    assert [(r.name, r.availability.value, r.reason) for r in plan] == [
        ("Load", "[*]", None),
        ("Model", "[~]", "code: Train.run"),
    ]
    assert cell(shell, "head.materialize()")[0].result == 106


def test_an_edited_base_class_asks_for_the_subclass_cell_too(shell):
    cell(shell, "from job_orchestra import Step\nclass Base(Step):\n    def run(self): return 1")
    cell(shell, "class Leaf(Base): pass")
    cell(shell, "leaf = Leaf()")
    cell(shell, "class Base(Step):\n    def run(self): return 2")
    leaf = shell.user_ns["leaf"]
    assert ExecutionPlan.of(leaf).redefined == {
        "Leaf": "class Base (a base of Leaf) was redefined after class Leaf was defined"
    }
    with pytest.raises(RedefinedStepError, match="Run the cells that define these classes again"):
        leaf.rebind()
    cell(shell, "class Leaf(Base): pass")
    assert leaf.rebind().materialize() == 2


class Kept(Step):
    def run(self):
        return 1


def test_classes_made_in_functions_or_gone_modules_are_not_guessed_about():
    def make():
        class Inner(Step):
            def run(self):
                return 1

        return Inner

    assert current_class(make()) is None
    assert current_class(Kept) is Kept
    gone = type("Gone", (Step,), {"__module__": "no_such_module_anymore", "run": lambda self: 1})
    assert current_class(gone) is None
    assert ExecutionPlan.of(gone()).redefined == {}


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    return module


SOURCE = """
from job_orchestra import Step
class C{i}(Step):
    def __init__(self, p, **kwargs):
        super().__init__(**kwargs)
        self.p = p
    def run(self, *inputs):
        return {version} * 1000 + self.p + sum(inputs)
"""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 6),
    data=st.data(),
)
def test_generated_pipelines_mark_exactly_the_redefined_steps_and_rebind_fixes_them(n, data):
    """Random chains of steps of n classes; a random subset of the class cells runs again with new code."""
    module = _module("generated_cells")
    try:
        for i in range(n):
            exec(SOURCE.format(i=i, version=1), module.__dict__)
        ctx = Context()
        kinds = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8))
        steps: list[Step] = []
        for k, kind in enumerate(kinds):
            cls = module.__dict__[f"C{kind}"]
            steps.append(cls(k, depends_on=steps[-1:], ctx=ctx, name_alias=f"s{k}"))
        head = steps[-1]
        head.materialize()
        edited = data.draw(st.sets(st.integers(0, n - 1)))
        for i in edited:
            exec(SOURCE.format(i=i, version=2), module.__dict__)
        expected = {f"s{k}" for k, kind in enumerate(kinds) if kind in edited}
        plan = ExecutionPlan.of(head)
        assert set(plan.redefined) == expected
        assert all(f" (!) {name}: " in str(plan) for name in expected)
        if expected:
            with pytest.raises(RedefinedStepError):
                head.materialize()
        head.rebind()
        assert find_redefined(ExecutionPlan.of(head).graph) == {}
        value = 0
        for k, kind in enumerate(kinds):
            value = (2 if kind in edited else 1) * 1000 + k + value
        assert head.materialize() == value
        assert [s.p for s in steps] == list(range(len(kinds)))  # parameters kept
    finally:
        del sys.modules["generated_cells"]


def test_a_cell_run_again_unchanged_or_a_loaded_pipeline_is_not_marked(shell, tmp_path):
    assert cell(shell, DEFINE)[0].success
    cell(shell, "head.materialize()")
    assert cell(shell, DEFINE.split("head =")[0])[0].success  # the class cell again, unchanged
    assert ExecutionPlan.of(shell.user_ns["head"]).redefined == {}
    state = tmp_path / "session.dill"
    shell.run_line_magic("orchestra", f"save {state}")
    cell(shell, "del head, ctx")
    shell.run_line_magic("orchestra", f"load {state}")  # classes rebuilt from the snapshot, same code
    assert shell.user_ns["head"].materialize() == 6
