"""Property tests of Step.map against a naive model: random item lists changed between runs (items added,
removed, reordered), random failing items, on serial, threads and processes.

Checked on every run: each step runs at most once; only items without a cached result run (a removed item
never runs, a kept one never runs again); a failure at an item keeps every item that finished (serially:
exactly the items before it) and the next run does only what is left; the collected output is in item
order; a consumer runs again only when the list changed; removed items' results stay in the Context.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Context, Step
from tests.map_kit import Boom, Box, Item, Source, Total

RUN = st.tuples(
    st.lists(st.integers(0, 11), unique=True, max_size=8),  # the items, in order
    st.sets(st.integers(0, 11), max_size=3),  # the items that fail in this run
)
SCENARIO = st.lists(RUN, min_size=1, max_size=4)
EXAMPLES = {None: 80, "threads": 30, "processes": 20}


def _pipeline(items: list[int], ctx: Context, box: Box, dynamic: bool) -> tuple[Step, Step]:
    base = Source(values=(), box=box.path, ctx=ctx, name_alias="Base")
    if dynamic:
        listing = Source(values=list(items), box=box.path, ctx=ctx, name_alias="List")
        group = Item.map(base, x=listing, ctx=ctx, fixed={"box": box.path})
    else:
        group = Item.map(base, x=items, ctx=ctx, fixed={"box": box.path})
    return Total(group, box=box.path, ctx=ctx), group


def check_scenario(scenario: list[tuple[list[int], set[int]]], executor: str | None, dynamic: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        box = Box(Path(tmp))
        ctx = Context()
        cached: set[int] = set()  # the model: items whose result the Context holds
        total_of: list[int] | None = None  # the item list Total's cached result was computed from
        listed: list[int] | None = None  # the list the cached List step returned
        base_runs = 0
        for items, failing in scenario:
            box.clear()
            box.fail(*failing)
            head, _ = _pipeline(items, ctx, box, dynamic)
            to_run = [] if total_of == items else [x for x in items if x not in cached]
            bad = [x for x in to_run if x in failing]
            error = None
            try:
                out = head.materialize(executor, max_workers=2)
            except Boom as exc:
                error = exc
            runs = box.runs()
            assert len(runs) == len(set(runs)), f"a step ran twice: {runs}"
            ran_items = [int(r[5:-1]) for r in runs if r.startswith("Item[")]
            assert set(ran_items) <= set(to_run), (ran_items, to_run)
            if dynamic:  # the source runs first whenever its cached output is not that of this list
                assert runs.count("List") == (listed != items)
                listed = items
            base_runs += runs.count("Base")
            if bad:
                assert error is not None and bad[0] in ran_items  # the first failing item always starts
                if executor is None:
                    k = to_run.index(bad[0])
                    assert ran_items == to_run[: k + 1]  # item order, stopping at the failure
                assert "Total" not in runs
            else:
                assert error is None
                assert ran_items == to_run if executor is None else sorted(ran_items) == sorted(to_run)
                assert out == [(x, ((),)) for x in items]  # item order
                assert runs.count("Total") == (total_of != items)
                total_of = items
            cached |= set(ran_items) - failing
            assert {k for k in ctx if k.startswith("Item[")} == {f"Item[{x}]" for x in cached}
        assert base_runs <= 1


def _property(executor: str | None, dynamic: bool):
    @settings(
        max_examples=EXAMPLES[executor] // (2 if dynamic else 1),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(SCENARIO)
    def test(scenario: list[tuple[list[int], set[int]]]) -> None:
        check_scenario(scenario, executor, dynamic)

    test.__doc__ = f"Mapped pipelines ({'dynamic' if dynamic else 'static'}, {executor or 'serial'}) match the model."
    return test


test_static_serial_matches_the_model = _property(None, False)
test_static_threads_match_the_model = _property("threads", False)
test_static_processes_match_the_model = _property("processes", False)
test_dynamic_serial_matches_the_model = _property(None, True)
test_dynamic_threads_match_the_model = _property("threads", True)
test_dynamic_processes_match_the_model = _property("processes", True)
