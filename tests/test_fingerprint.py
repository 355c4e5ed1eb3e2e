"""Fingerprints: code by content (not by position or process), parameters by value, inputs in order."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

from job_orchestra import Context, Step
from job_orchestra.fingerprint import code_digest, hash_value, params_digest
from job_orchestra.plan import ExecutionPlan

BASE = """
from job_orchestra import Step

LIMIT = 10

def helper(x):
    return x * 2

class Work(Step):
    def __init__(self, k=3, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def run(self):
        # a comment
        def inner(v):
            return v + 1
        return inner(helper(self.k)) + self.scale(LIMIT)

    def scale(self, v):
        return v if v in {"a", "b"} else v * 1
"""


def cell(source: str, name: str = "cell", module: str = "notebook") -> dict:
    """Run ``source`` as a notebook cell would: a fresh namespace, its own file name."""
    namespace: dict = {"__name__": module}
    exec(compile(textwrap.dedent(source), f"<{name}>", "exec"), namespace)
    return namespace


def digest(source: str, **kw) -> str:
    return code_digest(cell(source, **kw)["Work"])


def test_rerunning_or_moving_a_cell_keeps_the_code_digest():
    first = digest(BASE, name="ipython-input-1")
    assert digest(BASE, name="ipython-input-7") == first  # the same cell run again
    assert digest("\n\n\n\n" + BASE, name="moved") == first  # the cell moved down: other line numbers
    assert digest(BASE.replace("# a comment", "# another comment"), name="c") == first  # comments do not run


LRU = """
import functools
from job_orchestra import Step

class Work(Step):
    @functools.lru_cache
    def helper(self, x):
        return x * 2

    def run(self):
        return self.helper(2)
"""


def test_methods_wrapped_by_library_decorators_are_hashed_by_their_code():
    assert digest(LRU) == digest(LRU, name="again")
    assert digest(LRU) != digest(LRU.replace("x * 2", "x * 3"))


@pytest.mark.parametrize(
    "edit",
    [
        ("return inner(helper(self.k))", "return inner(helper(self.k + 1))"),  # run() itself
        ("return v + 1", "return v + 2"),  # a nested function defined in run()
        ("return v if v in", "return -v if v in"),  # another method of the class
        ("return x * 2", "return x * 3"),  # a module-level helper run() calls
        ("LIMIT = 10", "LIMIT = 11"),  # a module-level constant run() uses
        ("def __init__(self, k=3,", "def __init__(self, k=4,"),  # a default argument
        ('{"a", "b"}', '{"a", "c"}'),  # a constant set
    ],
)
def test_editing_code_changes_the_code_digest(edit):
    old, new = edit
    assert old in BASE
    assert digest(BASE.replace(old, new)) != digest(BASE)


def test_editing_a_base_class_or_a_class_attribute_changes_the_digest():
    src = """
    from job_orchestra import Step
    class Base(Step):
        factor = 2
        def run(self):
            return self.factor * self.more()
        def more(self):
            return 1
    class Work(Base):
        pass
    """
    assert digest(src) != digest(src.replace("return 1", "return 5"))
    assert digest(src) != digest(src.replace("factor = 2", "factor = 3"))


def test_digest_follows_replaced_methods_and_helpers():
    ns = cell(BASE)
    work = ns["Work"]
    before = code_digest(work)
    ns["helper"] = lambda x: x * 5  # the helper cell run again with other code
    after_helper = code_digest(work)
    assert after_helper != before
    work.scale = lambda self, v: 0  # a method patched on the class
    assert code_digest(work) not in (before, after_helper)


SCRIPT = """
import enum, sys
from dataclasses import dataclass, field
sys.path.insert(0, {root!r})
from job_orchestra import Step
from job_orchestra.fingerprint import code_digest, hash_value

class Color(enum.Enum):
    RED = 1

@dataclass
class Config:
    tags: set = field(default_factory=lambda: {{"x", "y", "z"}})
    limit: int = 3

class Work(Step):
    config = Config()
    color = Color.RED
    def run(self):
        return "x" in {{"a", "b", "c", "x"}}

print(code_digest(Work), hash_value({{"a", "b", "c"}}), hash_value(frozenset("xyz")), hash_value(Config()))
"""


def test_digests_are_the_same_in_a_new_process_whatever_the_hash_seed(tmp_path):
    script = tmp_path / "kernel.py"
    script.write_text(SCRIPT.format(root=os.getcwd()))
    outputs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True)
        outputs.add(out.stdout)
    assert len(outputs) == 1
    edited = dict(os.environ, PYTHONHASHSEED="1")
    script.write_text(SCRIPT.format(root=os.getcwd()).replace("limit: int = 3", "limit: int = 4"))
    out = subprocess.run([sys.executable, str(script)], env=edited, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] != outputs.pop().split()[0]  # a changed default of a class attribute counts


def test_equal_values_hash_equal_and_changes_show():
    a = np.arange(1000, dtype="float64")
    assert hash_value(a) == hash_value(a.copy())
    b = a.copy()
    b[500] += 1e-9
    assert hash_value(b) != hash_value(a)
    assert hash_value(a.astype("float32")) != hash_value(a)  # same numbers, other dtype
    assert hash_value(a.reshape(10, 100)) != hash_value(a)  # other shape
    strided = np.arange(20)[::2]
    assert hash_value(strided) == hash_value(np.ascontiguousarray(strided))
    assert hash_value(np.array(["a", None], dtype=object)) == hash_value(np.array(["a", None], dtype=object))
    assert hash_value(np.array(["2020-01-01"], dtype="datetime64[D]")) != hash_value(
        np.array(["2020-01-02"], dtype="datetime64[D]")
    )
    assert hash_value({"a": 1, "b": [1, 2]}) == hash_value({"a": 1, "b": [1, 2]})
    assert hash_value({"a": 1, "b": [1, 2]}) != hash_value({"a": 1, "b": [1, 3]})
    assert hash_value((1, 2)) != hash_value([1, 2])
    assert hash_value(1) != hash_value(1.0) != hash_value(True)
    assert hash_value(memoryview(b"abc")) == hash_value(memoryview(bytearray(b"abc")))
    assert hash_value(b"abc") != hash_value(b"abd")


def test_dataframes_hash_by_content():
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": pd.Categorical(["u", "v", "u"])})
    assert hash_value(df) == hash_value(df.copy())
    changed = df.copy()
    changed.loc[1, "b"] = "Y"
    assert hash_value(changed) != hash_value(df)
    assert hash_value(df.rename(columns={"a": "A"})) != hash_value(df)
    assert hash_value(df.set_index("a")) != hash_value(df)
    assert hash_value(df["a"]) == hash_value(df["a"].copy())
    assert hash_value(df["a"]) != hash_value(df["a"] + 1)


def test_functions_and_lambdas_hash_by_code():
    ns1 = cell("f = lambda x: x + 1", name="one")
    ns2 = cell("\n\nf = lambda x: x + 1", name="two")
    ns3 = cell("f = lambda x: x + 2", name="three")
    assert hash_value(ns1["f"]) == hash_value(ns2["f"])
    assert hash_value(ns1["f"]) != hash_value(ns3["f"])


def test_unpicklable_parameter_warns_and_counts_as_changed_elsewhere():
    class Holder(Step):
        def __init__(self, lock):
            super().__init__()
            self.lock = lock

        def run(self):
            return 1

    stream = (i for i in range(3))  # a generator: neither pickle nor dill can serialize it
    with pytest.warns(RuntimeWarning, match="'lock' of step 'Holder'"):
        first = params_digest(Holder(stream))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert params_digest(Holder(stream)) == first  # the same object: the same digest
        assert params_digest(Holder(i for i in range(3))) != first


class Scaled(Step):
    def __init__(self, factor, depends_on=None, ctx=None, name_alias=None):
        super().__init__(depends_on=depends_on, ctx=ctx, name_alias=name_alias)
        self.factor = factor

    def run(self, *inputs):
        return sum(inputs) * self.factor


def fingerprints(head: Step) -> dict[str, str | None]:
    plan = ExecutionPlan.of(head)
    return {row.name: plan.fingerprint(row.name) for row in plan}


def test_parameters_count_but_not_ctx_or_alias():
    base = fingerprints(Scaled(2, ctx=Context()))["Scaled"]
    assert fingerprints(Scaled(2, ctx=Context()))["Scaled"] == base
    assert fingerprints(Scaled(3, ctx=Context()))["Scaled"] != base
    other_ctx = Context(unrelated=1)
    assert fingerprints(Scaled(2, ctx=other_ctx))["Scaled"] == base
    aliased = Scaled(2, ctx=Context(), name_alias="Other")
    assert fingerprints(aliased)["Other"] == base


def test_data_of_from_data_and_stepify_counts():
    def fp(data):
        d = Step.from_data(data)
        head = Scaled(1, depends_on=Step.stepify(data, depends_on=d, name_alias="S"), ctx=Context())
        return fingerprints(head)

    same = fp(np.ones(5)), fp(np.ones(5))
    assert same[0] == same[1]
    other = fp(np.zeros(5))
    assert other["Data"] != same[0]["Data"] and other["S"] != same[0]["S"] and other["Scaled"] != same[0]["Scaled"]


def test_inputs_count_in_depends_on_order():
    a, b = Scaled(1, name_alias="a"), Scaled(2, name_alias="b")
    ab = fingerprints(Scaled(1, depends_on=[a, b], ctx=Context()))["Scaled"]
    ba = fingerprints(Scaled(1, depends_on=[b, a], ctx=Context()))["Scaled"]
    assert ab != ba


def test_no_context_no_fingerprints():
    assert set(fingerprints(Scaled(1, depends_on=Scaled(2, name_alias="x"))).values()) == {None}


class Fits(Step):
    def __init__(self, alpha, ctx=None):
        super().__init__(ctx=ctx)
        self.alpha = alpha

    def run(self):
        self.fitted_ = self.alpha * 2  # state kept on self by run(), sklearn style
        return self.fitted_


def test_attributes_set_by_run_are_not_parameters():
    ctx = Context()
    step = Fits(1.5, ctx=ctx)
    assert step.materialize() == 3.0
    assert step.execution_plan(show=False).to_run == []  # fitted_ does not make the result stale
    step.alpha = 2.0  # a real parameter changed on the object
    assert step.execution_plan(show=False)["Fits"].reason == "parameters: alpha 1.5 → 2.0"
    assert step.materialize() == 4.0


def test_awkward_values_hash_without_errors():
    cyclic: list = []
    cyclic.append(cyclic)
    deep: object = 1
    for _ in range(200):
        deep = [deep]
    awkward = [
        pd.DataFrame({"lists": [[1, 2], [3]], "dicts": [{"a": 1}, {"b": 2}]}),
        pd.Series(pd.date_range("2020", periods=3, tz="UTC")),
        pd.Series([1, None], dtype="Int64"),
        np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
        np.asfortranarray(np.ones((3, 4))),
        cyclic,
        deep,
        {1: "a", (2, 3): "b", None: 1},
        {1, "a", (1, 2)},
    ]
    for value in awkward:
        assert hash_value(value) == hash_value(value)
    changed = pd.DataFrame({"lists": [[1, 2], [4]], "dicts": [{"a": 1}, {"b": 2}]})
    assert hash_value(changed) != hash_value(awkward[0])


def test_a_failure_inside_fingerprinting_never_breaks_a_run(monkeypatch):
    import job_orchestra.fingerprint as fingerprint

    class Odd(Step):
        def run(self):
            return 5

    def broken(obj):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(fingerprint, "code_record", broken)
    ctx = Context()
    with pytest.warns(RuntimeWarning, match="cannot fingerprint the code of .*Odd"):
        assert Odd(ctx=ctx).materialize() == 5
    assert Odd(ctx=ctx).materialize() == 5  # the same class in the same process: still fresh


IPYTHON_SCRIPT = '''
import sys
sys.path.insert(0, {root!r})
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
CELL = """
from job_orchestra import Step
from job_orchestra.fingerprint import code_digest
class Clean(Step):
    def run(self, df):
        return [x for x in df if x is not None]
"""
digests = []
shell.run_cell(CELL)
digests.append(shell.user_ns["code_digest"](shell.user_ns["Clean"]))
shell.run_cell("x = 1\\ny = 2")  # other cells in between: the execution count moves on
shell.run_cell("\\n\\n" + CELL)  # the same cell, run again further down
digests.append(shell.user_ns["code_digest"](shell.user_ns["Clean"]))
shell.run_cell(CELL.replace("is not None", "is not None and x > 0"))  # the cell edited
digests.append(shell.user_ns["code_digest"](shell.user_ns["Clean"]))
print(" ".join(digests))
'''


def test_ipython_cells_rerun_moved_and_in_a_new_kernel(tmp_path):
    script = tmp_path / "kernel.py"
    script.write_text(IPYTHON_SCRIPT.format(root=os.getcwd()))
    runs = [
        subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout.split()
        for _ in range(2)
    ]
    first, again, edited = runs[0]
    assert first == again != edited  # re-run and moved: same; edited: different
    assert runs[1] == runs[0]  # a new kernel: the same digests


def test_masks_and_column_types_count():
    data = np.arange(4.0)
    assert hash_value(np.ma.masked_array(data, mask=[0, 1, 0, 0])) != hash_value(
        np.ma.masked_array(data, mask=[0, 0, 0, 0])
    )
    assert hash_value(pd.DataFrame({1: [1]})) != hash_value(pd.DataFrame({"1": [1]}))


def test_helpers_of_user_modules_and_autoreloaded_code_count(tmp_path, monkeypatch):
    """``import utils`` then ``utils.clean(...)``: editing utils.clean is an edit of the step; so is an
    in-place code swap, as IPython's autoreload does."""
    (tmp_path / "my_utils.py").write_text("def clean(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    my_utils = importlib.import_module("my_utils")
    ns = cell(
        "import my_utils\nfrom job_orchestra import Step\nclass Work(Step):\n    def run(self):\n"
        "        return my_utils.clean(1)\n"
    )
    before = code_digest(ns["Work"])
    assert code_digest(ns["Work"]) == before
    replacement = cell("def clean(x):\n    return x + 2\n")["clean"]
    my_utils.clean.__code__ = replacement.__code__  # autoreload's way of updating a function
    assert code_digest(ns["Work"]) != before
