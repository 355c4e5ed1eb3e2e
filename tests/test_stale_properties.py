"""Property tests: random DAGs x random Context attachments x random code and parameter edits.

A reference model tracks the *provenance* of every cached value (which code version, parameter and input
provenances produced it; a hand-set value stands for itself), with no hashing at all. After every
``materialize()`` the steps that ran must be exactly those the model predicts, and the result must equal
the model's value, and a fresh run without any Context whenever no value was put in by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from job_orchestra import Context

LOG: list[str] = []

SOURCE = """
from job_orchestra import Step

class Node(Step):
    def __init__(self, p, depends_on=None, ctx=None, name_alias=None):
        super().__init__(depends_on=depends_on, ctx=ctx, name_alias=name_alias)
        self.p = p

    def run(self, *inputs):
        LOG.append(self.name_alias)
        return {K} + 10 * self.p + sum((i + 1) * x for i, x in enumerate(inputs))
"""
CONSTANTS = (1, 7, 100)


def _versions() -> list[type]:
    """The same cell, edited: one class per version of run()'s code."""
    classes = []
    for k in CONSTANTS:
        namespace = {"__name__": "property_cell", "LOG": LOG}
        exec(compile(SOURCE.format(K=k), f"<cell {k}>", "exec"), namespace)
        classes.append(namespace["Node"])
    return classes


VERSIONS = _versions()


def compute(version: int, p: int, inputs: list[int]) -> int:
    return CONSTANTS[version] + 10 * p + sum((i + 1) * x for i, x in enumerate(inputs))


@dataclass
class Model:
    deps: list[list[int]]
    version: list[int]
    param: list[int]
    ctx_of: list[int | None]  # which of the Contexts each node uses (None: no Context)
    cache: dict[int, tuple[int, object]] = field(default_factory=dict)  # node -> (value, provenance)

    def provenance(self, i: int, memo: dict) -> object:
        """What node i's value would be computed from now (code, parameter, inputs as they will be used)."""
        if i not in memo:
            memo[i] = ("run", self.version[i], self.param[i], tuple(self.effective(d, memo) for d in self.deps[i]))
        return memo[i]

    def available(self, i: int, memo: dict) -> bool:
        if self.ctx_of[i] is None or i not in self.cache:
            return False
        _, prov = self.cache[i]
        return prov[0] == "given" or prov == self.provenance(i, memo)

    def effective(self, d: int, memo: dict) -> object:
        return self.cache[d][1] if self.available(d, memo) else self.provenance(d, memo)

    def materialize(self, target: int) -> tuple[set[int], int]:
        memo: dict = {}
        needed, stack = set(), [target]
        while stack:
            i = stack.pop()
            if i in needed:
                continue
            needed.add(i)
            if not self.available(i, memo):
                stack.extend(self.deps[i])
        runs = {i for i in needed if not self.available(i, memo)}
        values: dict[int, int] = {}
        for i in sorted(runs):  # node numbers are a topological order
            inputs = [self.cache[d][0] if d not in runs else values[d] for d in self.deps[i]]
            values[i] = compute(self.version[i], self.param[i], inputs)
        for i in runs:
            if self.ctx_of[i] is not None:
                self.cache[i] = (values[i], self.provenance(i, memo))
        result = values[target] if target in runs else self.cache[target][0]
        return runs, result

    def fresh(self, target: int) -> int:
        values: dict[int, int] = {}
        for i in range(target + 1):
            values[i] = compute(self.version[i], self.param[i], [values[d] for d in self.deps[i]])
        return values[target]

    def reaches_hand_value(self, target: int) -> bool:
        seen, stack = set(), [target]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            if i in self.cache and self.cache[i][1][0] == "given":
                return True
            stack.extend(self.deps[i])
        return False


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 6))
    deps = []
    for i in range(n):
        chosen = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        deps.append(chosen)  # the drawn order is the depends_on order
    version = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    param = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    ctx_of = draw(st.lists(st.sampled_from([None, 0, 1, 1]), min_size=n, max_size=n))
    node = st.integers(0, n - 1)
    op = st.one_of(
        st.tuples(st.just("materialize"), node),
        st.tuples(st.just("materialize"), st.just(n - 1)),
        st.tuples(st.just("code"), node, st.integers(0, 2)),
        st.tuples(st.just("param"), node, st.integers(0, 3)),
        st.tuples(st.just("hand"), node, st.integers(0, 2)),  # small: equal values come back too
        st.tuples(st.just("invalidate"), node),
    )
    ops = draw(st.lists(op, min_size=1, max_size=14))
    ops.append(("materialize", n - 1))
    return deps, version, param, ctx_of, ops


def build(model: Model, contexts: list[Context]) -> list:
    """The notebook's cells run again: new step objects from the current code and parameters."""
    steps: list = []
    for i in range(len(model.deps)):
        ctx = None if model.ctx_of[i] is None else contexts[model.ctx_of[i]]
        cls = VERSIONS[model.version[i]]
        steps.append(cls(model.param[i], depends_on=[steps[d] for d in model.deps[i]], ctx=ctx, name_alias=f"n{i}"))
    return steps


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
@example(  # a value put in by hand, used, then replaced by another: its dependents are stale
    ([[], [0]], [0, 0], [0, 0], [0, 0], [("hand", 0, 3), ("materialize", 1), ("hand", 0, 4), ("materialize", 1)])
)
@example(  # an edit behind a step without Context reaches the cached steps after it
    ([[], [0], [1]], [0, 0, 0], [0, 0, 0], [0, None, 1], [("materialize", 2), ("code", 0, 1), ("materialize", 2)])
)
@example(  # inputs in depends_on order: swapping parameters of two inputs changes the result
    ([[], [], [0, 1]], [0, 0, 0], [1, 2, 0], [0, 0, 0], [("materialize", 2), ("param", 0, 2), ("param", 1, 1)])
)
def test_exactly_the_predicted_steps_run_and_results_are_fresh(scenario):
    deps, version, param, ctx_of, ops = scenario
    model = Model(deps, list(version), list(param), list(ctx_of))
    contexts = [Context(), Context()]
    for op in ops:
        kind, i = op[0], op[1]
        if kind == "code":
            model.version[i] = op[2]
        elif kind == "param":
            model.param[i] = op[2]
        elif kind == "hand":
            if model.ctx_of[i] is None:
                continue
            contexts[model.ctx_of[i]][f"n{i}"] = op[2]
            model.cache[i] = (op[2], ("given", op[2]))
        elif kind == "invalidate":
            if model.ctx_of[i] is not None:
                contexts[model.ctx_of[i]].invalidate(f"n{i}")
                model.cache.pop(i, None)
        else:
            steps = build(model, contexts)
            plan = steps[i].execution_plan(show=False)
            expected_runs, expected = model.materialize(i)
            assert set(plan.to_run) == {f"n{j}" for j in expected_runs}
            LOG.clear()
            result = steps[i].materialize()
            assert sorted(LOG) == sorted(f"n{j}" for j in expected_runs), (op, plan)
            assert result == expected
            if not model.reaches_hand_value(i):
                assert result == model.fresh(i)
                LOG.clear()
                fresh = build(Model(deps, model.version, model.param, [None] * len(deps)), contexts)
                assert fresh[i].materialize() == result
