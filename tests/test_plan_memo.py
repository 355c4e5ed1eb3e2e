"""The remembered plan of a graph (job_orchestra.plan_memo) never changes a plan.

Random pipelines are planned, changed at random between plans (parameters set, replaced, deleted or
mutated in place, arrays edited in place, methods replaced, classes redefined or swapped, module globals
read by ``run()`` replaced or mutated in place, data files edited, Contexts edited, results recorded by a
run), and planned again: every plan made with the memo must equal the plan made without it, with both stale
policies, error included. A counter checks that the memo was in fact used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Context, Step, plan_memo
from job_orchestra.plan import ExecutionPlan


def materialize_any(head: Step) -> None:
    """Run the pipeline; a step that fails is one more state the plans must agree on, not a test failure."""
    with contextlib.suppress(Exception):
        head.materialize()


SCALE = 1
LIMITS = [1, 2]


class Tagged(int):
    """An int that carries attributes: the same object can hash differently later."""


def make_classes(tag: int = 0) -> tuple[type, type]:
    """Two step classes, defined again at each call (a notebook cell run again)."""

    class Probe(Step):
        def run(self, *inputs):
            return (str(self), inputs, SCALE, sum(LIMITS))

    class Other(Step):
        def run(self, *inputs):
            return ("other", inputs, tag)

    return Probe, Other


def _new_run(v: int):
    namespace: dict = {}
    exec(f"def run(self, *inputs):\n    return ('replaced', inputs, {v})", namespace)
    return namespace["run"]


def snapshot(head, stale):
    """Everything a plan says and will record, or the error it raises."""
    try:
        plan = ExecutionPlan.of(head, stale=stale)
    except Exception as exc:  # the error is part of what must not change
        return ("error", type(exc).__name__, str(exc))
    fp = plan._fp
    return (
        [tuple(row) for row in plan.rows],
        plan.to_run,
        dict(plan.redefined),
        None if fp is None else (fp.heads, fp.effective, fp.params, fp.file_lines, sorted(fp.files)),
    )


def full_snapshot(head, stale):
    plan_memo.enabled(False)
    try:
        return snapshot(head, stale)
    finally:
        plan_memo.enabled(True)


MUTATIONS = [
    "param_new",
    "param_set",
    "param_equal",
    "param_del",
    "list_inplace",
    "tuple_list_inplace",
    "array_inplace",
    "tagged_attr",
    "dict_set",
    "method",
    "redefine",
    "swap_class",
    "global_set",
    "global_inplace",
    "file_edit",
    "file_touch",
    "ctx_add",
    "ctx_toggle",
    "run_swap",
    "ctx_del",
    "ctx_change",
    "ctx_swap",
    "ctx_put_result",
    "run",
]


@st.composite
def scenarios(draw):
    n = draw(st.integers(min_value=2, max_value=7))
    deps = [[]] + [draw(st.lists(st.integers(0, i - 1), max_size=min(i, 3), unique=True)) for i in range(1, n)]
    kinds = draw(st.lists(st.sampled_from([0, 1, 2, 2, 3, 4, 4, 5, 5]), min_size=n, max_size=n))  # 2, 4, 5: params
    opened = draw(st.booleans())
    ops = draw(
        st.lists(
            st.tuples(st.sampled_from(MUTATIONS), st.integers(0, n - 1), st.integers(0, 3)),
            min_size=1,
            max_size=10,
        )
    )
    return deps, kinds, ops, opened


HITS = [0, 0]  # plans made, plans answered by the memo


@pytest.fixture(autouse=True, scope="module")
def _memo_was_used():
    real = plan_memo.lookup

    def counting(graph, policy):
        found = real(graph, policy)
        HITS[0] += 1
        HITS[1] += found is not None
        return found

    plan_memo.lookup = counting
    yield
    plan_memo.lookup = real
    assert HITS[1] >= HITS[0] // 10, HITS  # the memo answered a good share of the plans


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_memo_plan_equals_full_plan_under_random_changes(scenario):
    global SCALE, LIMITS
    deps, kinds, ops, opened = scenario
    Probe, Other = make_classes()
    tmp = tempfile.mkdtemp(prefix="jo-memo-")
    data = os.path.join(tmp, "data.txt")
    with open(data, "w") as f:
        f.write("0")
    contexts = [Context(), Context.open(os.path.join(tmp, "cache")) if opened else Context()]
    steps = []
    for i, ds in enumerate(deps):
        inputs = [steps[d] for d in ds]
        if i == 0 and kinds[0] == 2:
            steps.append(Step.from_file(data, name_alias=f"s0-{id(tmp)}"))
            continue
        cls = Other if kinds[i] == 1 else Step if kinds[i] == 3 else Probe  # Step: a bare stand-in, no run()
        step = cls(depends_on=inputs, ctx=contexts[i % 2], name_alias=f"s{i}")
        if kinds[i] == 3:
            step.ctx[step.name] = ("given", i)  # what a bare stand-in returns
        if kinds[i] == 2:
            step.items, step.arr, step.pair, step.k, step.tag = [1], np.zeros(4), (1, [2]), 7, Tagged(1)
        if kinds[i] == 4:  # only values that look immutable (or are): an int and a tuple holding a list
            step.pair, step.k = (1, [2]), 7
        if kinds[i] == 5:  # an int and an int subclass
            step.k, step.tag = 7, Tagged(1)
        steps.append(step)
    head = steps[-1]
    saved = SCALE, LIMITS
    try:
        materialize_any(head)
        for op, a, v in [(None, 0, 0), *ops]:
            step = steps[a]
            attrs = step.__dict__
            if op == "param_new":
                step.seed = v
            elif op == "param_set" and "k" in attrs:
                step.k = v
            elif op == "param_equal" and "k" in attrs:
                step.k = int(str(step.k))  # an equal value, another object
            elif op == "param_del" and "k" in attrs:
                del step.k
            elif op == "list_inplace" and "items" in attrs:
                step.items.append(v)
            elif op == "tuple_list_inplace" and "pair" in attrs:
                step.pair[1].append(v)  # a tuple is immutable, the list in it is not
            elif op == "array_inplace" and "arr" in attrs:
                step.arr[v] += 1
            elif op == "tagged_attr" and "tag" in attrs:
                step.tag.note = v
            elif op == "dict_set" and "k" in attrs:
                attrs["k"] = v + 10
            elif op == "method" and type(step).__module__ == __name__:  # our classes, never Step itself
                type(step).run = _new_run(v)  # %autoreload replaces a method in place
            elif op == "redefine":
                Probe, Other = make_classes(v)  # the cell defining the classes runs again
            elif op == "swap_class" and "_jo_files" not in attrs:
                step.__class__ = Other if v % 2 else Probe  # e.g. rebind() onto the class defined again
            elif op == "global_set":
                SCALE = v
            elif op == "global_inplace":
                LIMITS.append(v)
            elif op == "file_edit":
                with open(data, "w") as f:
                    f.write(str(v))
            elif op == "file_touch":
                os.utime(data, None)
            elif op == "ctx_add" and step.ctx is not None:
                step.ctx[step.name] = ("by hand", v)
            elif op == "ctx_toggle" and step.ctx is not None:
                if step.name in step.ctx:
                    del step.ctx[step.name]
                else:
                    step.ctx[step.name] = ("by hand", v)
            elif op == "run_swap" and "_jo_files" not in attrs:  # run() given on the instance or taken away,
                if "run" in attrs:  # with as many attributes as before
                    del attrs["run"]
                    attrs["_jo_note"] = v
                else:
                    attrs.pop("_jo_note", None)
                    attrs["run"] = _new_run(v).__get__(step)
            elif op == "ctx_del" and step.ctx is not None and step.name in step.ctx:
                del step.ctx[step.name]
            elif op == "ctx_change" and step.ctx is not None and step.name in step.ctx:
                step.ctx[step.name] = ("changed", v)
            elif op == "ctx_swap" and "_jo_files" not in attrs:
                step.ctx = None if v == 0 else contexts[v % 2]
            elif op == "ctx_put_result" and step.ctx is not None:
                step.ctx._put_result(step.name, ("recorded", v), f"{v:032x}:0:0:")
            elif op == "run":
                materialize_any(head)
            for stale in ("rerun", "use"):
                if opened:  # a plan may take an earlier version back from disk: let one do it first
                    full_snapshot(head, stale)
                memo = snapshot(head, stale)  # may use the memo of the plan before the change
                full = full_snapshot(head, stale)
                again = snapshot(head, stale)  # made with the memo the plans above left
                assert memo == full, (op, a, v, stale)
                assert again == full, (op, a, v, stale)
    finally:
        SCALE, LIMITS = saved
        plan_memo.enabled(True)
        shutil.rmtree(tmp)


def test_a_repeated_plan_is_answered_by_the_memo_and_a_change_is_seen():
    Probe, _ = make_classes()
    ctx = Context()
    a = Probe(ctx=ctx, name_alias="a")
    a.arr = np.zeros(3)
    b = Probe(depends_on=a, ctx=ctx, name_alias="b")
    b.materialize()
    before = HITS[1]
    assert b.execution_plan(show=False).to_run == []
    assert b.execution_plan(show=False).to_run == []
    assert HITS[1] > before
    a.arr[1] = 5  # an array changed in place, no sign of it but its content
    plan = b.execution_plan(show=False)
    assert plan.to_run == ["a", "b"] and plan["a"].reason.startswith("parameters: arr")


def test_a_result_another_process_wrote_to_the_cache_is_seen(tmp_path):
    Probe, _ = make_classes()

    def pipeline(ctx):
        return Probe(depends_on=Probe(ctx=ctx, name_alias="a"), ctx=ctx, name_alias="b")

    mine = pipeline(Context.open(tmp_path))
    assert mine.execution_plan(show=False).to_run == ["a", "b"]
    assert mine.execution_plan(show=False).to_run == ["a", "b"]
    pipeline(Context.open(tmp_path)).materialize()  # another process, the same cache directory
    assert mine.execution_plan(show=False).to_run == []


def test_a_bare_stand_in_given_a_run_on_the_instance_is_seen():
    ctx = Context()
    bare = Step(ctx=ctx, name_alias="a")
    ctx._put_result("a", 1, "0" * 32 + ":0:0:")  # a result recorded with another fingerprint
    head = make_classes()[0](depends_on=bare, ctx=ctx, name_alias="b")
    attrs = bare.__dict__
    attrs["_jo_note"] = 0
    full = full_snapshot(head, "rerun")
    assert snapshot(head, "rerun") == full and snapshot(head, "rerun") == full
    assert "a" not in ExecutionPlan.of(head).to_run  # without run(), a stand-in uses what is there
    del attrs["_jo_note"]
    attrs["run"] = _new_run(1).__get__(bare)  # as many attributes as before, but now it can run
    assert snapshot(head, "rerun") == full_snapshot(head, "rerun")
    assert "a" in ExecutionPlan.of(head).to_run


def map_snapshot(head, stale, memo=True):
    """:func:`snapshot` with each group's summary: the rows carry the group names, the summaries the counts."""
    plan_memo.enabled(memo)
    try:
        plan = None
        try:
            plan = ExecutionPlan.of(head, stale=stale)
        except Exception:
            pass
        groups = None if plan is None else {k: (v.items, v.counts, v.pending_source) for k, v in plan.groups.items()}
        return snapshot(head, stale), groups
    finally:
        plan_memo.enabled(True)


MAP_MUTATIONS = [
    "item_param",
    "item_param_equal",
    "item_param_new",
    "item_ctx_del",
    "item_ctx_change",
    "item_put_result",
    "source_set",
    "source_inplace",
    "source_ctx_del",
    "method",
    "redefine",
    "remap",
    "run",
]


def make_map_classes(tag: int = 0) -> tuple[type, type]:
    """An item class with one parameter and a source returning its ``values`` (defined again at each call)."""

    class Cell(Step):
        def __init__(self, i=0, **kwargs):
            super().__init__(**kwargs)
            self.i = i

        def run(self, *inputs):
            return ("cell", self.i, inputs, tag)

    class Source(Step):
        def run(self, *inputs):
            return self.values

    return Cell, Source


def build_mapped(kind: int, size: int, ctx: Context, classes: tuple[type, type]):
    """A mapped pipeline: 0, a map over a range; 1, over a source step's output; 2, a map over the output of
    a map over a range (dynamic, its source a group); 3, a map over a range and one over a source, joined."""
    Cell, Source = classes
    src = Source(ctx=ctx, name_alias="src")
    src.values = list(range(size))
    if kind == 0:
        groups = [Cell.map(i=range(size), ctx=ctx, name_alias="M")]
    elif kind == 1:
        groups = [Cell.map(i=src, ctx=ctx, name_alias="D")]
    elif kind == 2:
        first = Cell.map(i=range(size), ctx=ctx, name_alias="M")
        groups = [first, Cell.map(i=first, ctx=ctx, name_alias="D")]
    else:
        groups = [Cell.map(i=range(size), ctx=ctx, name_alias="M"), Cell.map(i=src, ctx=ctx, name_alias="D")]
    head = Cell(depends_on=groups[-1:] if kind == 2 else groups, ctx=ctx, name_alias="head")
    return head, src, groups


@st.composite
def map_scenarios(draw):
    kind = draw(st.integers(0, 3))
    size = draw(st.integers(0, 4))
    ops = draw(
        st.lists(
            st.tuples(st.sampled_from(MAP_MUTATIONS), st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=10
        )
    )
    return kind, size, ops


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(map_scenarios())
def test_memo_plan_equals_full_plan_for_mapped_pipelines(scenario):
    """Maps over a range, over a source step's output, over another map: items' parameters changed, items'
    results edited, items added or removed (the source's output or the range changed), classes redefined."""
    kind, size, ops = scenario
    ctx = Context()
    classes = make_map_classes()
    head, src, groups = build_mapped(kind, size, ctx, classes)
    materialize_any(head)
    for op, a, v in [(None, 0, 0), *ops]:
        items = [item for g in groups for item in g._jo_items]
        item = items[a % len(items)] if items else None
        if op == "item_param" and item is not None:
            item.i = v
        elif op == "item_param_equal" and item is not None:
            item.i = int(str(item.i)) if isinstance(item.i, int) else item.i
        elif op == "item_param_new" and item is not None:
            item.extra = v
        elif op == "item_ctx_del" and item is not None and item.name in ctx:
            del ctx[item.name]
        elif op == "item_ctx_change" and item is not None:
            ctx[item.name] = ("by hand", v)
        elif op == "item_put_result" and item is not None:
            ctx._put_result(item.name, ("recorded", v), f"{v:032x}:0:0:")
        elif op == "source_set":
            src.values = list(range(v + a % 3))  # items added or removed
        elif op == "source_inplace":
            src.values.append(v + 10)
        elif op == "source_ctx_del" and "src" in ctx:
            del ctx["src"]
        elif op == "method":
            classes[0].run = _new_run(v)
        elif op == "redefine":
            classes = make_map_classes(v)
        elif op == "remap":  # the cell building the pipeline runs again, with another size
            head, src, groups = build_mapped(kind, v + a % 3, ctx, classes)
        elif op == "run":
            materialize_any(head)
        for stale in ("rerun", "use"):
            memo = map_snapshot(head, stale)  # may use the memo of the plan before the change
            full = map_snapshot(head, stale, memo=False)
            again = map_snapshot(head, stale)
            assert memo == full, (op, a, v, stale)
            assert again == full, (op, a, v, stale)


def test_a_plan_shows_the_groups_as_they_stood_when_it_was_made():
    """The rows are built on first use, annotated with the groups as planned, not as a later run left them."""
    Cell, Source = make_map_classes()
    ctx = Context()
    head = build_mapped(1, 3, ctx, (Cell, Source))[0]
    plan = head.execution_plan(show=False)
    head.materialize()  # expands D: three items
    assert {k: (v.items, v.pending_source) for k, v in plan.groups.items()} == {"D": ([], "src")}
    assert [(r.name, r.group, r.reason) for r in plan.rows] == [
        ("src", None, None),
        ("D", None, "? items (known after src runs)"),
        ("head", None, None),
    ]
    plan = head.execution_plan(show=False)
    head.materialize()
    assert [r.group for r in plan.rows] == [None, "D", "D", "D", None, None]
    assert plan.groups["D"].counts == {"cached": 3, "to run": 0, "stale": 0, "not needed": 0}
