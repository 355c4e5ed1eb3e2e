"""Fingerprint details the matrix does not show: [?] rows and legend, old fingerprints, the reason hook,
outputs of run(), library parts, and what a cached code digest notices."""

from __future__ import annotations

import warnings

import pytest

from job_orchestra import Context, Step
from job_orchestra.code_digest import code_record
from job_orchestra.fingerprint import hash_value
from job_orchestra.staleness import _EXTRA_REASONS, register_reason
from tests.test_fingerprint import cell


def test_a_module_level_open_file_makes_the_plan_say_it_cannot_tell(tmp_path):
    ns = cell(
        f"""
from job_orchestra import Step
LOG = open({str(tmp_path / "log.txt")!r}, "w")

class Write(Step):
    def run(self):
        LOG.write("x")
        return 1
"""
    )
    try:
        ctx = Context()
        step = ns["Write"](ctx=ctx)
        assert step.materialize() == 1
        plan = step.execution_plan(show=False)
        assert (plan[0].availability.value, plan[0].reason) == ("[?]", "cannot tell: constant LOG is an open file")
        assert "[?] cannot tell" in str(plan).splitlines()[0]
        assert str(plan).splitlines()[1] == " [?] (H) Write  - cannot tell: constant LOG is an open file"
        assert plan.to_run == []  # used as it is, and said so
    finally:
        ns["LOG"].close()


def test_fingerprints_of_an_earlier_version_load_and_give_coarse_reasons():
    class Old(Step):
        def run(self):
            return 1

    ctx = Context()
    step = Old(ctx=ctx)
    step.materialize()
    recorded = ctx.fingerprint("Old")
    _, _, params, inputs = recorded.partition("\n")[0].split(":")
    ctx._put_result("Old", 1, f"{'0' * 32}:{'1' * 16}:{params}:{inputs}")  # no record, another code digest
    row = step.execution_plan(show=False)[0]
    assert (row.availability.value, row.reason) == ("[~]", "code")
    ctx._put_result("Old", 1, recorded)
    assert step.execution_plan(show=False)[0].availability.value == "[*]"


def test_other_modules_can_add_reasons_through_the_hook():
    class Hooked(Step):
        def run(self):
            return 1

    ctx = Context()
    step = Hooked(ctx=ctx)
    step.materialize()
    register_reason(lambda name, s, recorded: "class redefined" if name == "Hooked" else None)
    try:
        row = step.execution_plan(show=False)[0]
        assert (row.availability.value, row.reason) == ("[~]", "class redefined")
    finally:
        _EXTRA_REASONS.clear()
    assert step.execution_plan(show=False)[0].availability.value == "[*]"


def test_attributes_a_run_adds_are_outputs_and_later_attributes_are_parameters():
    class Fit(Step):
        def run(self):
            self.model_ = "fitted"
            return 1

    ctx = Context()
    step = Fit(ctx=ctx)
    step.materialize()
    assert step.execution_plan(show=False)[0].availability.value == "[*]"  # model_ is an output
    step.alpha = 0.5
    assert step.execution_plan(show=False)[0].reason == "parameters: alpha (new)"
    step.materialize()
    del step.alpha
    assert step.execution_plan(show=False)[0].reason == "parameters: alpha (removed)"


def test_library_code_counts_by_name_and_version():
    ns = cell(
        "import json\nfrom job_orchestra import Step\nclass J(Step):\n    def run(self):\n        return json.dumps(1)"
    )
    parts = code_record(ns["J"]).parts
    assert "library json" in parts and not any(k.startswith("helper") for k in parts)


def test_a_class_exec_d_in_a_bare_namespace_is_hashed_as_user_code():
    first: dict = {}
    exec("class Box:\n    def get(self):\n        return 1\n", first)
    second: dict = {}
    exec("class Box:\n    def get(self):\n        return 2\n", second)
    assert first["Box"].__module__ == "builtins"
    assert hash_value(first["Box"]) != hash_value(second["Box"])
    assert hash_value(int) == hash_value(int)  # real built-ins stay references


def test_the_cached_digest_notices_in_place_changes_and_rebinding():
    ns = cell("from job_orchestra import Step\nT = {'a': [1]}\nclass S(Step):\n    def run(self):\n        return T\n")
    first = code_record(ns["S"]).digest
    ns["T"]["a"].append(2)  # deep in place
    second = code_record(ns["S"]).digest
    ns["T"] = {"a": [1]}  # rebound to a value equal to the first
    assert first != second and code_record(ns["S"]).digest == first


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"x": 1, "y": 2}, {"y": 2, "x": 1}, True),
        ({1: "a", "b": 2}, {"b": 2, 1: "a"}, True),
        ({"x": 1}, {"x": 1.0}, False),
        ([1, 2], [2, 1], False),
    ],
)
def test_dicts_are_order_free_and_lists_are_not(a, b, same):
    assert (hash_value(a) == hash_value(b)) is same


def test_collections_ordereddict_keeps_its_order():
    from collections import OrderedDict

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hash_value(OrderedDict(a=1, b=2)) != hash_value(OrderedDict(b=2, a=1))


def test_builtins_copied_into_the_globals_by_a_pickle_change_nothing():
    """dill copies the built-ins a function uses into its restored globals: they are still built-ins."""
    source = "from job_orchestra import Step\nclass S(Step):\n    def run(self):\n        return len(range(3))\n"
    plain: dict = {"__name__": "nb"}
    exec(source, plain)
    restored: dict = {"__name__": "nb", "len": len, "range": range}
    exec(source, restored)
    assert code_record(restored["S"]).digest == code_record(plain["S"]).digest
    assert "library builtins" not in code_record(restored["S"]).parts


STATE_SOURCE = """
def f(self, runs, k, v):
    LOGS[id(self)] = runs
    CACHE.setdefault(k, []).append(v)
    del SEEN[k]
    OUT.append(v)
    x = READ[k] + READ2.get(k) + len(READ3)
    g(READ4, k)
    READ5.data[k] = 1
    return x
"""


def test_containers_the_code_changes_in_place_are_state_and_those_it_reads_are_configuration():
    from job_orchestra.code_normal import stored_globals

    namespace: dict = {}
    exec(STATE_SOURCE, namespace)
    assert stored_globals(namespace["f"].__code__) == {"LOGS", "CACHE", "SEEN", "OUT"}


def test_a_class_level_registry_filled_by_instances_is_the_class_state():
    ns = cell(
        "from job_orchestra import Step\nclass Counter(Step):\n    _logs = {}\n"
        "    def __init__(self, **kw):\n        super().__init__(**kw)\n        Counter._logs[id(self)] = 0\n"
        "    def run(self):\n        return 1\n"
    )
    ctx = Context()
    ns["Counter"](ctx=ctx).materialize()
    assert ns["Counter"](ctx=ctx).execution_plan(show=False)[0].availability.value == "[*]"
