"""Grids: Step.map over two or more parameters, as every combination (how="product") or zipped."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job_orchestra import Context, InvalidStepError, MapKeyError, Step


class Train(Step):
    def __init__(self, lr: object = 0, depth: object = 0, seed: object = 0, **kw: object) -> None:
        super().__init__(**kw)
        self.lr = lr
        self.depth = depth
        self.seed = seed

    def run(self) -> tuple:
        return (self.lr, self.depth, self.seed)


VALUES = st.one_of(
    st.lists(st.integers(-5, 5), unique=True, max_size=4),
    st.lists(st.text("abc", min_size=1, max_size=2), unique=True, max_size=4),
    st.lists(st.floats(0, 1, allow_nan=False), max_size=3),  # keyed by position
)


def _keys(values: list) -> list:
    return list(values) if all(type(v) in (int, str) for v in values) else list(range(len(values)))


@settings(max_examples=60, deadline=None)
@given(VALUES, VALUES)
def test_a_product_has_every_combination_in_order_keyed_by_tuples(lrs: list, depths: list) -> None:
    grid = Train.map(lr=lrs, depth=depths, how="product", name_alias="grid")
    expected = {
        (klr, kd): (lr, d, 0)
        for (klr, lr), (kd, d) in itertools.product(zip(_keys(lrs), lrs), zip(_keys(depths), depths))
    }
    out = grid.materialize()
    assert list(out) == list(expected) and out == expected
    assert [s.name for s in grid.items] == [f"grid[{a},{b}]" for a, b in expected]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 5).flatmap(
        lambda n: st.tuples(*[st.lists(st.integers(0, 50), min_size=n, max_size=n, unique=True)] * 2)
    )
)
def test_zip_pairs_the_ith_values(pair: tuple[list, list]) -> None:
    lrs, depths = pair
    out = Train.map(lr=lrs, depth=depths, how="zip").materialize()
    assert out == {(a, b): (a, b, 0) for a, b in zip(lrs, depths)}
    assert list(out) == list(zip(lrs, depths))


def test_three_parameters_and_cached_cells_reused_when_the_grid_grows() -> None:
    ctx = Context()
    grid = Train.map(lr=[0.1, 0.01], depth=[2, 3], seed=range(2), how="product", ctx=ctx)
    assert len(grid.items) == 8 and grid.items[0].name == "Train[0,2,0]"
    grid.materialize()
    bigger = Train.map(lr=[0.1, 0.01], depth=[2, 3, 4], seed=range(2), how="product", ctx=ctx)
    plan = bigger.execution_plan(show=False)
    assert plan.groups["Train"].counts == {"cached": 8, "to run": 4, "stale": 0, "not needed": 0}
    assert [r.name for r in plan if r.runs] == [
        "Train[0,4,0]",
        "Train[0,4,1]",
        "Train[1,4,0]",
        "Train[1,4,1]",
        "Train",
    ]


def test_grids_refuse_to_guess() -> None:
    with pytest.raises(InvalidStepError, match=r"need how='product' .* or how='zip'"):
        Train.map(lr=[1, 2], depth=[1, 2])
    with pytest.raises(InvalidStepError, match="got how='grid'"):
        Train.map(lr=[1, 2], depth=[1, 2], how="grid")
    with pytest.raises(MapKeyError, match=r"different lengths \(lr: 2, depth: 3\)"):
        Train.map(lr=[1, 2], depth=[1, 2, 3], how="zip")
    with pytest.raises(MapKeyError, match="duplicate item keys"):  # names collide: "a,b" + "c" and "a" + "b,c"
        Train.map(lr=["a,b", "a"], depth=["c", "b,c"], how="product")


def test_keys_rename_grid_cells() -> None:
    out = Train.map(lr=[1, 2], depth=[5, 6], how="zip", keys=lambda v: f"lr{v[0]}-d{v[1]}").materialize()
    assert out == {"lr1-d5": (1, 5, 0), "lr2-d6": (2, 6, 0)}
