"""Dynamic fan-out: Step.map over what an upstream step returns. The plan shows a placeholder until the
source's result is cached, materialize() runs the source first, then the items; growing lists reuse items."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from job_orchestra import Context, MapSourceError, Step
from tests.map_kit import Box, Item, Source, Total


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path / "box")


class ListFiles(Source):
    pass


def files(box: Box, names: list[str], ctx: Context) -> tuple[Step, Step]:
    listing = ListFiles(values=names, box=box.path, ctx=ctx)
    return listing, Item.map(x=listing, ctx=ctx, name_alias="Parse", fixed={"box": box.path})


def test_the_plan_shows_a_placeholder_until_the_source_has_run_then_every_item(box: Box) -> None:
    ctx = Context()
    listing, group = files(box, ["a.csv", "b.csv"], ctx)
    plan = group.execution_plan(show=False)
    assert [(r.name, r.reason) for r in plan] == [
        ("ListFiles", None),
        ("Parse", "? items (known after ListFiles runs)"),
    ]
    assert " [x] (H) Parse  - ? items (known after ListFiles runs)" in str(plan)
    assert plan.groups["Parse"].pending_source == "ListFiles" and plan.groups["Parse"].items == []
    assert group.items == [] and group.source is listing
    assert box.runs() == []  # planning runs nothing

    assert group.materialize() == ["a.csv", "b.csv"]
    assert box.runs() == ["ListFiles", "Parse[a.csv]", "Parse[b.csv]"]
    plan = group.execution_plan(show=False)
    assert [r.name for r in plan] == ["ListFiles", "Parse[a.csv]", "Parse[b.csv]", "Parse"]
    assert [r.group for r in plan] == [None, "Parse", "Parse", None]
    assert plan.groups["Parse"].pending_source is None
    assert plan.groups["Parse"].counts["cached"] == 2


def test_a_grown_list_runs_only_the_new_items_and_a_shrunk_one_runs_nothing(box: Box) -> None:
    ctx = Context()
    files(box, ["a.csv", "c.csv"], ctx)[1].materialize()
    box.clear()
    assert files(box, ["a.csv", "b.csv", "c.csv"], ctx)[1].materialize() == ["a.csv", "b.csv", "c.csv"]
    assert box.runs() == ["ListFiles", "Parse[b.csv]"]
    box.clear()
    assert files(box, ["c.csv"], ctx)[1].materialize() == ["c.csv"]
    assert box.runs() == ["ListFiles"]
    assert ctx["Parse[a.csv]"] == "a.csv"  # a removed item's result is left alone


def test_a_stale_source_folds_the_group_back_to_its_placeholder(box: Box) -> None:
    ctx = Context()
    listing, group = files(box, ["a.csv"], ctx)
    group.materialize()
    assert [r.name for r in group.execution_plan(show=False)] == ["ListFiles", "Parse[a.csv]", "Parse"]
    listing.values = ["a.csv", "z.csv"]  # the source's parameters changed: its cached output is stale
    plan = group.execution_plan(show=False)
    assert [r.name for r in plan] == ["ListFiles", "Parse"] and plan["ListFiles"].availability.value == "[~]"
    assert plan.groups["Parse"].pending_source == "ListFiles"
    assert len(group.execution_plan(show=False, stale="use")) == 3  # as 1.1 would: the cached list
    box.clear()
    assert group.materialize() == ["a.csv", "z.csv"]
    assert box.runs() == ["ListFiles", "Parse[z.csv]"]


@pytest.mark.parametrize("executor", [None, "threads", "processes"])
def test_the_source_runs_once_and_a_failing_item_keeps_the_source_and_the_others(box: Box, executor) -> None:
    ctx = Context()
    box.fail("b")
    head = Total(files(box, ["a", "b", "c"], ctx)[1], box=box.path, ctx=ctx)
    with pytest.raises(Exception, match=r"Parse\[b\]"):
        head.materialize(executor, max_workers=2)
    assert box.runs().count("ListFiles") == 1 and "ListFiles" in ctx and "Parse[a]" in ctx
    box.clear()
    head = Total(files(box, ["a", "b", "c"], ctx)[1], box=box.path, ctx=ctx)
    assert head.materialize(executor, max_workers=2) == ["a", "b", "c"]
    assert "ListFiles" not in box.runs() and "Parse[a]" not in box.runs()
    assert {"Parse[b]", "Total"} <= set(box.runs())


def test_a_dict_output_gives_keyed_items_and_a_dict(box: Box) -> None:
    ctx = Context()
    regions = Source(values={"eu": 1, "us": 2}, box=box.path, ctx=ctx, name_alias="Regions")
    group = Item.map(x=regions, ctx=ctx, fixed={"box": box.path})
    assert group.materialize() == {"eu": 1, "us": 2}
    assert [s.name for s in group.items] == ["Item[eu]", "Item[us]"]


def test_a_grid_over_a_source_and_a_list(box: Box) -> None:
    ctx = Context()
    days = Source(values=["mon", "tue"], box=box.path, ctx=ctx, name_alias="Days")
    group = Item.map(x=days, depends_on=Source(values=7, box=box.path, ctx=ctx), ctx=ctx, fixed={"box": box.path})
    assert group.materialize() == [("mon", (7,)), ("tue", (7,))]
    grid = Trial.map(day=days, seed=[1, 2], how="product", ctx=ctx)
    assert grid.materialize() == {("mon", 1): "mon/1", ("mon", 2): "mon/2", ("tue", 1): "tue/1", ("tue", 2): "tue/2"}


class Trial(Step):
    def __init__(self, day: str = "", seed: int = 0, **kw: object) -> None:
        super().__init__(**kw)
        self.day = day
        self.seed = seed

    def run(self) -> str:
        return f"{self.day}/{self.seed}"


def test_a_map_over_the_output_of_another_map(box: Box) -> None:
    ctx = Context()
    first = Item.map(x=Source(values=[1, 2], box=box.path, ctx=ctx), ctx=ctx, fixed={"box": box.path})
    second = Item.map(x=first, ctx=ctx, name_alias="Again", fixed={"box": box.path})
    plan = second.execution_plan(show=False)
    assert plan["Again"].reason == "? items (known after Item runs)"
    assert second.materialize() == [1, 2]
    assert [r.name for r in second.execution_plan(show=False)] == [
        "Source",
        "Item[1]",
        "Item[2]",
        "Item",
        "Again[1]",
        "Again[2]",
        "Again",
    ]


def test_a_source_without_a_context_is_refused_naming_it(box: Box) -> None:
    listing = ListFiles(values=["a"], box=box.path)
    group = Item.map(x=listing, fixed={"box": box.path})
    assert group.execution_plan(show=False)["Item"].reason == "? items (known after ListFiles runs)"
    with pytest.raises(MapSourceError, match="mapped over the output of ListFiles, which has no Context") as info:
        group.materialize()
    assert (info.value.group, info.value.source) == ("Item", "ListFiles")
    assert box.runs() == []


def test_a_source_returning_no_collection_is_refused_naming_it(box: Box) -> None:
    ctx = Context()
    group = Item.map(x=Source(values=3, box=box.path, ctx=ctx), ctx=ctx, fixed={"box": box.path})
    with pytest.raises(MapSourceError, match=r"output of Source \(x=\), which returned int"):
        group.materialize()


def test_duplicates_in_a_source_output_are_refused(box: Box) -> None:
    ctx = Context()
    group = Item.map(x=Source(values=["a", "a"], box=box.path, ctx=ctx), ctx=ctx, fixed={"box": box.path})
    with pytest.raises(ValueError, match="duplicate item keys 'a'"):
        group.materialize()


def test_dask_runs_the_items() -> None:
    distributed = pytest.importorskip("distributed")
    ctx = Context()
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as c,
        distributed.Client(c) as client,
    ):
        group = Trial.map(day=["mon", "tue"], seed=range(2), how="zip", ctx=ctx)
        assert group.materialize(client) == {("mon", 0): "mon/0", ("tue", 1): "tue/1"}
    assert "Trial[mon,0]" in ctx


def test_a_step_without_context_needed_by_the_source_and_the_items_is_said_to_run_twice(box: Box) -> None:
    ctx = Context()
    shared = Source(values=5, box=box.path, name_alias="Shared")  # no Context
    listing = Lister(shared, box=box.path, ctx=ctx)
    group = Item.map(shared, x=listing, ctx=ctx, fixed={"box": box.path})
    with pytest.warns(RuntimeWarning, match="Shared ran to give a mapped step its items and runs again"):
        assert group.materialize() == [("a", (5,)), ("b", (5,))]
    assert box.runs().count("Shared") == 2
    box.clear()
    ctx = Context()
    kept = Source(values=5, box=box.path, name_alias="Shared", ctx=ctx)  # with a Context: once, no warning
    group = Item.map(kept, x=Lister(kept, box=box.path, ctx=ctx), ctx=ctx, fixed={"box": box.path})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        group.materialize()
    assert box.runs().count("Shared") == 1


class Lister(Step):
    def __init__(self, *deps: Step, box: str = "", **kw: object) -> None:
        super().__init__(depends_on=list(deps), **kw)
        self.box = box

    def run(self, *inputs: object) -> list:
        return ["a", "b"]
