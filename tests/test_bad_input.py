"""The bad-input catalogue (docs/errors.md): each misuse gets a clear error naming the step or key at fault.

Test names follow the catalogue's numbering, so a reader can go from a doc entry to its test and back.
"""

from __future__ import annotations

import os
import sys

import pytest

from job_orchestra import (
    Callback,
    Context,
    CycleError,
    DuplicateStepName,
    InvalidStepError,
    SnapshotError,
    SnapshotExistsError,
    Step,
    UnserializableValueError,
)

RAN: list[str] = []


class Load(Step):
    def run(self):
        RAN.append("Load")
        return [1, 2, 3]


class Mean(Step):
    def run(self, values):
        RAN.append("Mean")
        return sum(values) / len(values)


class Pair(Step):
    def run(self, left, right):
        return (left, right)


@pytest.fixture(autouse=True)
def clear():
    RAN.clear()


# -- declaring steps ---------------------------------------------------------------------------------------
def test_01_dependency_that_is_not_a_step():
    with pytest.raises(InvalidStepError, match=r"Mean: depends_on\[1\] is 42 \(int\), not a Step.*Step\.from_data"):
        Mean(depends_on=[Load(), 42])
    assert issubclass(InvalidStepError, TypeError)  # except TypeError keeps working, as with 1.1


@pytest.mark.parametrize("bad", ["Load", {"a": Load()}, 3.5])
def test_02_depends_on_of_the_wrong_type(bad):
    with pytest.raises(InvalidStepError, match=r"Mean: depends_on= takes one Step or a list of Steps, got"):
        Mean(depends_on=bad)


def test_03_a_step_class_instead_of_a_step():
    with pytest.raises(InvalidStepError, match=r"Mean: depends_on= got the class Load.*depends_on=Load\(\)"):
        Mean(depends_on=Load)
    with pytest.raises(InvalidStepError, match=r"depends_on\[0\] is the class Load.*Load\(\)"):
        Pair(depends_on=[Load, Load()])


def test_04_ctx_that_is_not_a_context():
    with pytest.raises(InvalidStepError, match=r"Load: ctx= must be a job_orchestra\.Context, got dict"):
        Load(ctx={})


@pytest.mark.parametrize("alias", [3, "", b"name"])
def test_05_bad_name_alias(alias):
    with pytest.raises(InvalidStepError, match="name_alias= must be a non-empty string"):
        Load(name_alias=alias)
    with pytest.raises(InvalidStepError, match="name_alias= must be a non-empty string"):
        Step.from_data([1], name_alias=alias)


def test_06_init_without_super_init():
    class Scale(Step):
        def __init__(self, factor):
            self.factor = factor  # forgot super().__init__(...)

        def run(self):
            return self.factor

    with pytest.raises(InvalidStepError, match=r"A Scale step has no \.(dependencies|name_alias).*super\(\)\.__init__"):
        Scale(2).materialize()
    with pytest.raises(InvalidStepError, match="A Scale step"):
        Mean(depends_on=Scale(2)).execution_plan(show=False)


def test_07_no_run_method():
    class Forgot(Step):
        def compute(self, values):
            return values

    with pytest.raises(InvalidStepError, match=r"Step 'Forgot' \(Forgot\) does not define run"):
        Forgot(depends_on=Load()).materialize()
    assert RAN == []  # refused before anything ran


def test_08_run_arity_does_not_match_dependencies():
    wanted = r"Step 'Pair' \(Pair\) has 1 dependencies \(Load\) but its run\(\) takes 2"
    with pytest.raises(InvalidStepError, match=wanted):
        Pair(depends_on=Load()).materialize()
    with pytest.raises(InvalidStepError, match=r"Step 'Mean' \(Mean\) has 2 dependencies \(Load, other\)"):
        Mean(depends_on=[Load(), Load(name_alias="other")]).materialize()
    assert RAN == []


def test_09_two_steps_with_one_name():
    with pytest.raises(DuplicateStepName, match=r"'Load' is the name of 2 different steps.*name_alias"):
        Pair(depends_on=[Load(), Load()]).materialize()


def test_10_a_cycle_made_by_mutating_dependencies():
    a = Load()
    b = Mean(depends_on=a)
    a.dependencies.append(b)
    with pytest.raises(CycleError, match=r"cycle: .*Load.*Mean|cycle: .*Mean.*Load"):
        b.materialize()


def test_11_join_and_stepify_of_non_steps():
    with pytest.raises(InvalidStepError, match=r"Join: depends_on= takes one Step or a list of Steps, got int"):
        Step.join(5)
    with pytest.raises(InvalidStepError, match=r"named: depends_on\[0\] is 'x'"):
        Step.stepify(1, depends_on=["x"], name_alias="named")


# -- running ------------------------------------------------------------------------------------------------
def test_12_bad_stale_option():
    with pytest.raises(ValueError, match=r"stale= takes 'rerun'.*or 'use'.*got 'yes'"):
        Mean(depends_on=Load()).materialize(stale="yes")


@pytest.mark.parametrize("callbacks", [5, [5], ["progress"]])
def test_13_bad_callbacks(callbacks):
    with pytest.raises(TypeError, match="callbacks= takes"):
        Mean(depends_on=Load()).materialize(callbacks=callbacks)
    assert RAN == []
    assert Mean(depends_on=Load()).materialize(callbacks=[Callback()]) == 2


def test_14_a_parameter_that_cannot_be_hashed_warns_naming_step_and_attribute():
    class Stream(Step):
        def __init__(self, rows, ctx=None):
            super().__init__(ctx=ctx)
            self.rows = rows

        def run(self):
            return list(self.rows)

    with pytest.warns(RuntimeWarning, match=r"the parameter 'rows' of step 'Stream'.*create them in run\(\)"):
        assert Stream((i for i in range(3)), ctx=Context()).materialize() == [0, 1, 2]


def test_26_a_run_that_changes_its_own_parameters_warns_and_keeps_them_as_state():
    class Logged(Step):
        def __init__(self, log, ctx=None):
            super().__init__(ctx=ctx)
            self.log = log

        def run(self):
            self.log.append("ran")
            return len(self.log)

    ctx = Context()
    step = Logged([], ctx=ctx)
    with pytest.warns(RuntimeWarning, match=r"step 'Logged' changed its attribute\(s\) 'log' while it ran"):
        assert step.materialize() == 1
    assert step.materialize() == 1 and step.log == ["ran"]  # cached, not stale


# -- snapshots ----------------------------------------------------------------------------------------------
def test_27_a_bare_step_whose_context_lacks_its_result():
    ctx = Context({"Sorted": [1, 2]})
    with pytest.raises(InvalidStepError, match=r"its Context has no key 'Sortd' \(its keys: 'Sorted'\)"):
        Step(name_alias="Sortd", ctx=ctx).materialize()
    assert Step(name_alias="Sorted", ctx=ctx).materialize() == [1, 2]


def test_28_a_cleverdict_method_2_0_does_not_keep():
    from job_orchestra.cleverdict_compat import CleverDictMethodRetired

    ctx = Context()
    with pytest.raises(
        CleverDictMethodRetired, match=r"Context\.autosave: a cleverdict\.CleverDict method .*ctx\.store"
    ):
        ctx.autosave()
    with pytest.raises(AttributeError, match="set_autosave"):  # it is an AttributeError: hasattr() says False
        ctx.set_autosave(print)
    assert not hasattr(ctx, "add_alias")


def test_15_store_into_an_existing_file_or_directory(tmp_path):
    (tmp_path / "file.txt").write_text("keep me")
    with pytest.raises(SnapshotExistsError, match=r"file\.txt': that path exists already \(a file\)"):
        Context().store(tmp_path / "file.txt")
    assert (tmp_path / "file.txt").read_text() == "keep me"
    with pytest.raises(FileExistsError, match=r"exists already \(a directory\)"):
        Context().store(tmp_path)


def test_16_store_where_the_parent_is_missing_or_a_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the directory .*missing' does not exist"):
        Context().store(tmp_path / "missing" / "snap")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"file\.txt' is a file, not a directory"):
        Context().store(tmp_path / "file.txt" / "snap")


@pytest.mark.parametrize("path", [None, 3, b"/tmp/x", ""])
def test_17_store_and_load_with_a_path_of_the_wrong_type(path):
    error = ValueError if path == "" else TypeError
    with pytest.raises(error, match=r"Context\.store\(\): path"):
        Context().store(path)
    with pytest.raises(error, match=r"Context\.load\(\): path"):
        Context.load(path)


def test_18_store_with_a_pipeline_that_is_not_a_step(tmp_path):
    with pytest.raises(TypeError, match=r"pipeline= takes the head Step of the pipeline, got list"):
        Context().store(tmp_path / "s", pipeline=[Load()])
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("key", "error"), [(123, TypeError), (b"", ValueError)])
def test_19_bad_signing_key(tmp_path, key, error):
    with pytest.raises(error, match=r"Context\.store\(\): key="):
        Context().store(tmp_path / "s", key=key)


def test_20_a_value_that_cannot_be_serialized(tmp_path):
    ctx = Context(fine=1, rows=(i for i in range(3)))
    with pytest.raises(UnserializableValueError, match=r"Context entry 'rows' \(a builtins\.generator\)") as info:
        ctx.store(tmp_path / "s")
    assert info.value.key == "rows" and isinstance(info.value, TypeError)
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    ctx[".rows"] = ctx.pop("rows")  # the fix the message suggests: hide it from snapshots
    ctx.store(tmp_path / "s")
    assert ".rows" not in Context.load(tmp_path / "s")


def test_21_load_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Context.load(tmp_path / "nope")


def test_22_load_an_empty_directory_or_a_file(tmp_path):
    with pytest.raises(SnapshotError, match="is an empty directory, not a snapshot"):
        Context.load(tmp_path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(SnapshotError, match=r"x\.json' is a file, not a snapshot"):
        Context.load(tmp_path / "x.json")
    with pytest.raises(SnapshotError, match=r"has no manifest\.json"):
        Context.load(tmp_path)


def test_23_load_an_unsigned_snapshot_with_a_key(tmp_path):
    Context(a=1).store(tmp_path / "s")
    with pytest.raises(SnapshotError, match="is not signed, but key= was given"):
        Context.load(tmp_path / "s", key="secret")


NAMES = ["a/b", "up/../x", "con", "x:y*?<>|", "tab\tnew\nline", "é ü 漢字", "n" * 300, "nul\x00byte", "\\"]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_24_step_names_that_are_not_file_names_round_trip(tmp_path, name):
    """Snapshot files are numbered, never named after keys, so any step name is fine."""
    ctx = Context()
    head = Mean(depends_on=Load(ctx=ctx, name_alias=name), ctx=ctx)
    assert head.materialize() == 2
    ctx.store(tmp_path / "snap")
    loaded = Context.load(tmp_path / "snap")
    assert loaded[name] == [1, 2, 3]
    assert sorted(os.listdir(tmp_path / "snap" / "entries")) == ["000000.dill", "000001.dill", "000002.dill"]
    RAN.clear()
    again = Mean(depends_on=Load(ctx=loaded, name_alias=name), ctx=loaded)
    assert again.materialize() == 2 and RAN == []


def test_25_hidden_step_names_are_not_stored(tmp_path):
    ctx = Context()
    Mean(depends_on=Load(ctx=ctx, name_alias=".scratch"), ctx=ctx).materialize()
    assert ".scratch" in ctx
    ctx.store(tmp_path / "s")
    assert ".scratch" not in Context.load(tmp_path / "s")


def test_catalogue_is_documented():
    """Every numbered test here has its entry in docs/errors.md, and the other way round."""
    doc = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "errors.md")
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    tests = [name for name in dir(sys.modules[__name__]) if name.startswith("test_")]
    numbers = sorted({name[5:7] for name in tests if name[5:7].isdigit()})
    assert len(numbers) >= 15
    for number in numbers:
        assert f"({number})" in text, f"docs/errors.md has no entry ({number})"
