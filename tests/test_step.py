"""Step: declaration, names, 1.1 helpers, outputs."""

from __future__ import annotations

import pytest

from job_orchestra import AttrDict, Context, InvalidStepError, Step


class One(Step):
    def run(self):
        return 1


class AddOne(Step):
    def run(self, x):
        return x + 1


class Pair(Step):
    def run(self, a, b):
        return (a, b)


class Dictish(Step):
    def run(self):
        return {"name": "x", "size": 3}


def test_name_is_alias_else_class_name():
    assert str(One()) == "One" == One().name
    assert str(One(name_alias="Uno")) == "Uno"
    assert "Uno" in repr(One(name_alias="Uno"))


def test_depends_on_accepts_one_step_a_list_or_a_tuple():
    a, b = One(), One(name_alias="B")
    assert AddOne(depends_on=a).dependencies == [a]
    assert Pair(depends_on=[a, b]).dependencies == [a, b]
    assert Pair(depends_on=(a, b)).dependencies == [a, b]
    assert One().dependencies == []


def test_default_dependencies_are_not_shared_between_steps():
    a, b = One(), One(name_alias="B")
    a.dependencies.append(One(name_alias="X"))
    assert b.dependencies == []
    assert One(name_alias="C").dependencies == []


def test_inputs_arrive_in_depends_on_order():
    a, b = One(), AddOne(depends_on=One(name_alias="Base"))
    assert Pair(depends_on=[b, a]).materialize() == (2, 1)
    assert Pair(depends_on=[a, b], name_alias="P2").materialize() == (1, 2)


@pytest.mark.parametrize("bad", [42, "One", None.__class__, {"a": 1}])
def test_a_non_step_dependency_is_refused_at_declaration(bad):
    with pytest.raises(TypeError, match="Step"):
        AddOne(depends_on=bad)


def test_a_non_step_inside_the_list_names_the_position_and_the_step():
    with pytest.raises(InvalidStepError, match=r"Pair.*depends_on\[1\].*'oops'"):
        Pair(depends_on=[One(), "oops"])


def test_a_non_step_put_into_dependencies_later_is_refused_before_anything_runs():
    calls = []

    class Track(Step):
        def run(self, *xs):
            calls.append(1)

    t = Track()
    head = AddOne(depends_on=t)
    t.dependencies.append(3.5)
    with pytest.raises(TypeError, match=r"'Track'.*position 0.*3\.5"):
        head.materialize()
    assert calls == []


@pytest.mark.parametrize("alias", ["", 7, ["x"]])
def test_name_alias_must_be_a_non_empty_string(alias):
    with pytest.raises(InvalidStepError, match="name_alias"):
        One(name_alias=alias)


def test_ctx_must_be_a_context():
    with pytest.raises(InvalidStepError, match="Context"):
        One(ctx={"a": 1})


def test_base_run_raises_not_implemented_naming_the_step():
    with pytest.raises(NotImplementedError, match="Plain"):
        Step(name_alias="Plain").run()


def test_dict_outputs_get_attribute_access_when_passed_on_and_stored():
    ctx = Context()
    seen = []

    class Use(Step):
        def run(self, d):
            seen.append((type(d), d.name, d["size"]))
            return d.size

    assert Use(depends_on=Dictish(ctx=ctx)).materialize() == 3
    assert seen == [(AttrDict, "x", 3)]
    assert isinstance(ctx["Dictish"], AttrDict) and ctx.Dictish.size == 3


def test_from_data_outputs_an_attribute_dict():
    out = Step.from_data([1, 2]).materialize()
    assert out == {"output": [1, 2]} and out.output == [1, 2]
    assert str(Step.from_data(3)) == "Data"
    assert str(Step.from_data(3, name_alias="Raw")) == "Raw"


def test_stepify_returns_its_output_and_accepts_dependencies():
    s = Step.stepify(7)
    assert str(s) == "Step" and s.materialize() == 7
    ctx = Context()
    t = Step.stepify({"k": 1}, depends_on=[One()], ctx=ctx, name_alias="Seven")
    assert t.materialize().k == 1 and ctx["Seven"] == {"k": 1}


def test_join_returns_the_tuple_of_inputs_and_noop_step_warns():
    j = Step.join([One(), AddOne(depends_on=One(name_alias="Z"))])
    assert type(j).__name__ == "Join" and str(j) == "Join"
    assert j.materialize() == (1, 2)
    with pytest.warns(DeprecationWarning, match="join"):
        n = Step.noop_step([One()], name_alias="N")
    assert str(n) == "N" and n.materialize() == (1,)


def test_depending_steps_breadth_and_depth_first_match_1_1():
    from tests.recipes import pasta

    merge = pasta()["PanFry"]
    assert merge.depending_steps_breadth_first() == [
        "PourPasta",
        "PourTomatoes",
        "PickBasil",
        "Salt",
        "BoilWater",
        "CutTomatoes",
        "BrownOnions",
    ]
    assert merge.depending_steps_depth_first() == [
        "BoilWater",
        "Salt",
        "PourPasta",
        "BrownOnions",
        "CutTomatoes",
        "PourTomatoes",
        "PickBasil",
    ]


def test_a_cached_head_is_returned_without_visiting_dependencies():
    calls = []

    class Boom(Step):
        def run(self):
            calls.append("boom")
            raise RuntimeError("must not run")

    ctx = Context(AddOne=41)
    head = AddOne(depends_on=Boom(), ctx=ctx)
    assert head.materialize() == 41
    assert calls == []


def test_none_results_are_not_stored():
    class Nothing(Step):
        def run(self):
            return None

    ctx = Context()
    assert Nothing(ctx=ctx).materialize() is None
    assert "Nothing" not in ctx
