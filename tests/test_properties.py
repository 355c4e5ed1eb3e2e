"""Property-based tests on random DAGs, checked against an independent reference model.

The reference works on plain adjacency lists, by naive recursion, without using job_orchestra's graph code.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Context, Step

LOG: list = []  # calls of Probe.run, kept outside the steps (a step's attributes are its parameters)


class Probe(Step):
    """Returns (its name, the tuple of its inputs) and logs each call."""

    def run(self, *inputs):
        LOG.append((str(self), inputs))
        return (str(self), inputs)


@st.composite
def pipelines(draw):
    n = draw(st.integers(min_value=1, max_value=12))
    deps = []
    for i in range(n):
        if i == 0:
            deps.append([])
            continue
        chosen = draw(st.lists(st.integers(min_value=0, max_value=i - 1), max_size=min(i, 4)))
        deps.append(chosen)  # repeats allowed: depends_on=[a, a] passes a's output twice
    with_ctx = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    prefilled = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    shared_ctx = draw(st.booleans())
    return deps, with_ctx, prefilled, shared_ctx


def build(spec):
    deps, with_ctx, prefilled, shared_ctx = spec
    LOG.clear()
    log = LOG
    shared = Context()
    steps: list[Step] = []
    for i, ds in enumerate(deps):
        ctx = (shared if shared_ctx else Context()) if with_ctx[i] else None
        if ctx is not None and prefilled[i]:
            ctx[f"s{i}"] = ("cached", f"s{i}")
        steps.append(Probe(depends_on=[steps[d] for d in ds], ctx=ctx, name_alias=f"s{i}"))
    return steps, log


def reachable(deps, head):
    seen, stack = {head}, [head]
    while stack:
        for d in deps[stack.pop()]:
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


def reference(spec):
    """Naive model: cached steps, the schedule rule, the expected value, and 1.1's row order."""
    deps, with_ctx, prefilled, _ = spec
    head = len(deps) - 1
    cached = {i for i in range(len(deps)) if with_ctx[i] and prefilled[i]}

    def value(i):
        if i in cached:
            return ("cached", f"s{i}")
        return (f"s{i}", tuple(value(d) for d in deps[i]))

    scheduled = set()  # reached from the head through steps that are not cached

    def walk(i):
        if i in cached:
            return
        for d in deps[i]:
            if d not in cached:
                scheduled.add(d)
            walk(d)

    walk(head)

    def listing(i):  # 1.1: direct dependencies, then each dependency's listing
        out = list(deps[i])
        for d in deps[i]:
            out += listing(d)
        return out

    legacy = list(dict.fromkeys(x for x in listing(head) if x != head))
    legacy.reverse()
    return cached, scheduled, value(head), [*legacy, head]


def run_order_1_1(spec, cached):
    """The order 1.1 runs steps in, by naive recursion: each dependency in depends_on order, then the step;
    a cached step's dependencies are not visited. 1.1 runs a shared step again; 2.0 only the first time."""
    deps = spec[0]
    order: list[int] = []

    def visit(i):
        if i in cached:
            return
        for d in deps[i]:
            visit(d)
        if i not in order:
            order.append(i)

    visit(len(deps) - 1)
    return order


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_random_dags_match_the_reference(spec):
    deps = spec[0]
    head_index = len(deps) - 1
    steps, log = build(spec)
    head = steps[head_index]
    cached, scheduled, expected, legacy_order = reference(spec)
    members = reachable(deps, head_index)

    plan = head.execution_plan(show=False)
    order = [int(r.name[1:]) for r in plan]
    assert sorted(order) == sorted(members)
    position = {s: k for k, s in enumerate(order)}
    assert all(position[d] < position[s] for s in order for d in deps[s])  # a valid execution order
    if all(legacy_order.index(d) < legacy_order.index(s) for s in legacy_order for d in deps[s]):
        assert order == legacy_order  # 1.1's rows, wherever 1.1's order was valid
    assert head.depending_steps_breadth_first() == [f"s{i}" for i in reversed(legacy_order[:-1])]  # 1.1's listing
    assert head.depending_steps_depth_first() == [f"s{i}" for i in run_order_1_1(spec, set())[:-1]]

    for row in plan:
        i = int(row.name[1:])
        assert row.availability.value == ("[x]" if not spec[1][i] else "[*]" if i in cached else "[ ]")
        want = "(H)" if i == head_index else "(>)" if i in scheduled else "( )"
        assert row.schedule.value == want, (row, scheduled)

    assert head.materialize() == expected
    ran = [name for name, _ in log]
    assert ran == [f"s{i}" for i in run_order_1_1(spec, cached)]  # 1.1's order, each step once
    assert len(ran) == len(set(ran))  # each step at most once
    should_run = set(scheduled) | ({head_index} if head_index not in cached else set())
    assert {int(n[1:]) for n in ran} == should_run
    for name, inputs in log:  # inputs in depends_on order
        i = int(name[1:])
        assert [x[0] if x[0] != "cached" else x[1] for x in inputs] == [f"s{d}" for d in deps[i]]
