"""Step.map with a fixed collection: item names and keys, the collected output, the plan's rows and groups,
caching, failure and resume per item, and the errors that refuse ambiguous maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from job_orchestra import Context, InvalidStepError, MapGroup, MapKeyError, Step
from job_orchestra.map_keys import MapItem
from job_orchestra.map_plan import placeholder_reason
from tests.map_kit import Boom, Box, Item, Source, Total

RUNS: list[str] = []


class Base(Step):
    def run(self) -> int:
        RUNS.append(self.name)
        return 10


class Fold(Step):
    def __init__(self, data: Step | None = None, fold: object = 0, offset: int = 0, **kw: object) -> None:
        super().__init__(depends_on=data, **kw)
        self.fold = fold
        self.offset = offset

    def run(self, *inputs: int) -> object:
        RUNS.append(self.name)
        return (sum(inputs), self.fold, self.offset)


@pytest.fixture(autouse=True)
def _clear() -> None:
    RUNS.clear()


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path / "box")


def test_simple_values_are_their_own_keys_and_the_output_is_a_list_in_item_order() -> None:
    group = Fold.map(Base(), fold=[3, "a.csv", None, True])
    assert isinstance(group, MapGroup) and group.group_name == "Fold" and group.source is None
    assert [s.name for s in group.items] == ["Fold[3]", "Fold[a.csv]", "Fold[None]", "Fold[True]"]
    assert [s._jo_map for s in group.items] == [
        MapItem("Fold", 3, 0),
        MapItem("Fold", "a.csv", 1),
        MapItem("Fold", None, 2),
        MapItem("Fold", True, 3),
    ]
    assert group.materialize() == [(10, 3, 0), (10, "a.csv", 0), (10, None, 0), (10, True, 0)]


def test_other_values_are_keyed_by_position_and_dicts_by_their_keys() -> None:
    by_position = Fold.map(fold=[1.5, (1, 2)], name_alias="cv")
    assert [s.name for s in by_position.items] == ["cv[0]", "cv[1]"]
    assert by_position.materialize() == [(0, 1.5, 0), (0, (1, 2), 0)]
    by_key = Fold.map(fold={"small": 1, "big": 100})
    assert [s.name for s in by_key.items] == ["Fold[small]", "Fold[big]"]
    assert by_key.materialize() == {"small": (0, 1, 0), "big": (0, 100, 0)}
    rekeyed = Fold.map(fold=[1.5, 2.5], keys=["lo", "hi"])
    assert rekeyed.materialize() == {"lo": (0, 1.5, 0), "hi": (0, 2.5, 0)}
    by_call = Fold.map(fold=[1.5, 2.5], keys=lambda v: f"f{v}")
    assert [s.name for s in by_call.items] == ["Fold[f1.5]", "Fold[f2.5]"]


def test_fixed_and_positional_arguments_reach_every_item() -> None:
    base = Base()
    group = Fold.map(base, fold=range(3), fixed={"offset": 7})
    assert all(item.dependencies == [base] and item.offset == 7 for item in group.items)
    assert group.materialize() == [(10, 0, 7), (10, 1, 7), (10, 2, 7)]
    assert RUNS.count("Base") == 1  # the shared input runs once


def test_the_text_plan_has_one_row_per_item_in_item_order_and_rows_name_their_group() -> None:
    ctx = Context()
    group = Fold.map(Base(ctx=ctx), fold=range(4), ctx=ctx)
    plan = group.execution_plan(show=False)
    assert [r.name for r in plan] == ["Base", "Fold[0]", "Fold[1]", "Fold[2]", "Fold[3]", "Fold"]
    assert [r.group for r in plan] == [None, "Fold", "Fold", "Fold", "Fold", None]
    assert " [ ] (>) Fold[2]\n" in str(plan)  # 1.1's row format, unchanged
    summary = plan.groups["Fold"]
    assert summary.items == ["Fold[0]", "Fold[1]", "Fold[2]", "Fold[3]"]
    assert summary.counts == {"cached": 0, "to run": 4, "stale": 0, "not needed": 0}
    assert summary.pending_source is None
    group.materialize()
    assert group.execution_plan(show=False).groups["Fold"].counts["cached"] == 4


def test_items_run_in_item_order_and_a_failure_at_item_k_keeps_the_items_before_it(box: Box) -> None:
    ctx = Context()
    box.fail(3)
    group = Item.map(x=list(range(6)), ctx=ctx, fixed={"box": box.path})
    with pytest.raises(Boom):
        group.materialize()
    assert box.runs() == ["Item[0]", "Item[1]", "Item[2]", "Item[3]"]
    assert sorted(k for k in ctx if k.startswith("Item[")) == ["Item[0]", "Item[1]", "Item[2]"]
    box.clear()
    assert group.materialize() == [0, 1, 2, 3, 4, 5]
    assert box.runs() == ["Item[3]", "Item[4]", "Item[5]"]


def test_a_new_item_runs_only_itself_and_a_removed_one_is_not_run_and_left_in_the_context(box: Box) -> None:
    ctx = Context()
    fixed = {"box": box.path}
    assert Item.map(x=["a", "c"], ctx=ctx, fixed=fixed).materialize() == ["a", "c"]
    box.clear()
    assert Item.map(x=["a", "b", "c"], ctx=ctx, fixed=fixed).materialize() == ["a", "b", "c"]
    assert box.runs() == ["Item[b]"]
    box.clear()
    assert Item.map(x=["c"], ctx=ctx, fixed=fixed).materialize() == ["c"]
    assert box.runs() == []
    assert ctx["Item[a]"] == "a"


def test_an_item_whose_parameter_changes_is_stale_and_only_it_runs_again(box: Box) -> None:
    ctx = Context()
    Item.map(x={"a": 1, "b": 2}, ctx=ctx, fixed={"box": box.path}).materialize()
    box.clear()
    group = Item.map(x={"a": 1, "b": 3}, ctx=ctx, fixed={"box": box.path})
    plan = group.execution_plan(show=False)
    assert plan["Item[b]"].availability.value == "[~]"
    assert plan.groups["Item"].counts == {"cached": 1, "to run": 1, "stale": 1, "not needed": 0}
    assert group.materialize() == {"a": 1, "b": 3}
    assert box.runs() == ["Item[b]"]


def test_a_consumer_of_the_group_gets_the_outputs_and_reruns_when_an_item_is_added(box: Box) -> None:
    ctx = Context()

    def total(values: list) -> Total:
        return Total(Item.map(x=values, ctx=ctx, fixed={"box": box.path}), box=box.path, ctx=ctx)

    assert total([1, 2]).materialize() == [1, 2]
    box.clear()
    assert total([1, 2]).materialize() == [1, 2]
    assert box.runs() == []
    assert total([1, 2, 4]).materialize() == [1, 2, 4]
    assert box.runs() == ["Item[4]", "Total"]
    plan = total([1, 2, 4]).execution_plan(show=False)
    assert plan.groups["Item"].counts == {"cached": 3, "to run": 0, "stale": 0, "not needed": 0}


@pytest.mark.parametrize(
    ("values", "shown"),
    [([1, 2, 1], "1"), (["a", "b", "b", "a"], "'b', 'a'"), ([1, True], "True"), ({"1": 1, 1: 2}, "1")],
)
def test_duplicate_keys_are_refused_naming_them(values: object, shown: str) -> None:
    with pytest.raises(MapKeyError, match=rf"Item\.map\(\): duplicate item keys {shown}") as info:
        Item.map(x=values)
    assert info.value.group == "Item" and info.value.keys


def test_bad_maps_are_refused_with_the_parameter_named() -> None:
    with pytest.raises(InvalidStepError, match="x= must be a list, tuple, range or dict"):
        Item.map(x=3)
    with pytest.raises(InvalidStepError, match="no mapped parameter"):
        Item.map(fixed={"x": 1})
    with pytest.raises(InvalidStepError, match=r"2 mapped parameters \(fold, offset\) need how="):
        Fold.map(fold=[1], offset=[2])
    with pytest.raises(InvalidStepError, match="in fixed= and is also"):
        Fold.map(fold=[1], fixed={"fold": 2})
    with pytest.raises(MapKeyError, match="keys= has 1 keys for 2 items"):
        Item.map(x=[1, 2], keys=["a"])
    with pytest.raises(MapKeyError, match="not hashable"):
        Item.map(x=[1, 2], keys=[[1], [2]])
    with pytest.raises(InvalidStepError, match=r"Base\(name_alias, x\) failed for item Base\[1\]"):
        Base.map(x=[1])


def test_an_empty_map_collects_nothing() -> None:
    assert Item.map(x=[]).materialize() == []
    assert Item.map(x={}).materialize() == {}


def test_placeholder_reason_text() -> None:
    assert placeholder_reason("ListFiles") == "? items (known after ListFiles runs)"


def test_a_snapshot_with_the_pipeline_keeps_groups_and_their_items(box: Box, tmp_path: Path) -> None:
    ctx = Context()
    static = Item.map(x=[1, 2], ctx=ctx, fixed={"box": box.path})
    source = Source(values=["p", "q"], box=box.path, ctx=ctx)
    dynamic = Item.map(static, x=source, ctx=ctx, name_alias="Dyn", fixed={"box": box.path})
    head = Total(dynamic, box=box.path, ctx=ctx)
    head.materialize()
    ctx.store(tmp_path / "snap", pipeline=head)
    loaded = Context.load(tmp_path / "snap").pipeline
    group = loaded.dependencies[0]
    assert isinstance(group, MapGroup) and [s.name for s in group.items] == ["Dyn[p]", "Dyn[q]"]
    assert group.source is not None and group.source.name == "Source"
    plan = loaded.execution_plan(show=False)
    assert plan.groups["Dyn"].counts["cached"] == 2 and plan.groups["Item"].items == ["Item[1]", "Item[2]"]
    assert [r.group for r in plan if r.name.startswith("Dyn[")] == ["Dyn", "Dyn"]
    assert not plan.to_run
