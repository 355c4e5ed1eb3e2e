"""``@step``: functions as steps, fingerprinted, checked, shipped and snapshotted exactly as class steps are.

Generated cases: random signatures and parameter values (hypothesis), and a matrix of edits (function body,
helper, constant, default value, comment, docstring...) in every place code can live, applied at once to a
function step and to the equivalent class step: their verdicts (fresh or stale) must agree.
"""

from __future__ import annotations

import importlib
import itertools
import linecache
import os
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import cloudpickle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Context, FunctionStepError, InvalidStepError, Step, step
from job_orchestra.function_step import FunctionStep, signature_of

REPO = Path(__file__).resolve().parents[1]


# -- steps defined in this file (pickled by reference) --------------------------------------------------------
@step
def numbers(*, n=4):
    return list(range(n))


@step
def scaled(xs, *, factor=2):
    """Multiply every number."""
    return [x * factor for x in xs]


class Total(Step):
    def run(self, xs):
        return sum(xs)


@step
def report(total, xs, *, title="total"):
    return f"{title}: {total} of {len(xs)}"


def test_a_function_step_is_a_step_class_named_like_the_function():
    assert isinstance(scaled, type) and issubclass(scaled, Step) and issubclass(scaled, FunctionStep)
    assert scaled.__name__ == "scaled" and scaled.__doc__ == "Multiply every number."
    assert scaled.func([1, 2], factor=3) == [3, 6]  # the plain function, for tests
    s = scaled(numbers(), factor=3, name_alias="tripled")
    assert s.name == "tripled" and s.factor == 3 and str(s.dependencies[0]) == "numbers"
    assert scaled(numbers()).name == "scaled" and scaled(numbers()).factor == 2  # the default, as an attribute


def test_class_and_function_steps_mix_in_one_pipeline_with_contexts():
    ctx = Context()
    xs = scaled(numbers(n=3, ctx=ctx), ctx=ctx)
    head = report(Total(depends_on=xs, ctx=ctx), xs, title="sum", ctx=ctx)
    assert head.materialize() == "sum: 6 of 3"
    assert ctx["scaled"] == [0, 2, 4] and ctx["Total"] == 6 and ctx["report"] == "sum: 6 of 3"
    assert {r.availability.value for r in head.execution_plan(show=False).rows} == {"[*]"}
    again = report(depends_on=[Total(depends_on=xs, ctx=ctx), xs], title="sum", ctx=ctx)  # depends_on= too
    assert again.execution_plan(show=False)["report"].availability.value == "[*]"
    changed = report(Total(depends_on=xs, ctx=ctx), xs, title="Sum", ctx=ctx)
    row = changed.execution_plan(show=False)["report"]
    assert (row.availability.value, row.reason) == ("[~]", "parameters: title 'sum' → 'Sum'")


def test_varargs_take_any_number_of_inputs():
    @step
    def gather(first, *rest, sep="+"):
        return sep.join(map(str, [first, *rest]))

    parts = [numbers(n=i, name_alias=f"n{i}") for i in range(4)]
    assert gather(*parts).materialize() == "[]+[0]+[0, 1]+[0, 1, 2]"
    assert gather(parts[0]).materialize() == "[]"
    with pytest.raises(FunctionStepError, match=r"gather takes 1 or more input\(s\) \(first, \*rest\), got 0"):
        gather()


def test_pickled_by_reference_from_a_file_and_run_on_processes():
    copy = pickle.loads(pickle.dumps(scaled(numbers(), factor=5)))
    assert type(copy) is scaled and copy.factor == 5
    ctx = Context()
    xs = scaled(numbers(ctx=ctx), ctx=ctx)
    head = report(Total(depends_on=xs, ctx=ctx), xs, ctx=ctx)
    assert head.materialize("processes") == "total: 12 of 4"
    assert {k: v for k, v in ctx.items() if k != "context_meta"} == {
        "numbers": [0, 1, 2, 3],
        "scaled": [0, 2, 4, 6],
        "Total": 12,
        "report": "total: 12 of 4",
    }


# -- refused calls ------------------------------------------------------------------------------------------
def _gen():
    yield 1


async def _coro():
    return 1


def _kwargs(x, **kw):
    return x


def _reserved(x, *, ctx=None):
    return x


def _name(x, *, name="a"):
    return x


def _posonly(x, k=1, /):
    return x


def _before_varargs(x, k=1, *more):
    return x


class _NotAFunction:
    pass


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (_NotAFunction, "_NotAFunction is a class. Subclass Step instead"),
        (len, r"decorates a plain function, got <built-in function len>"),
        (lambda x: x, "needs a function with a name"),
        (_gen, "_gen: a generator function"),
        (_coro, "_coro: async functions"),
        (_kwargs, r"_kwargs: \*\*kwargs cannot be parameters"),
        (_reserved, "_reserved: the parameter 'ctx' would hide the step's own 'ctx'"),
        (_name, "_name: the parameter 'name' would hide"),
        (_posonly, "_posonly: a positional-only parameter with a default"),
        (_before_varargs, r"_before_varargs: parameters with a default before \*more would take its inputs"),
    ],
    ids=["class", "builtin", "lambda", "generator", "async", "kwargs", "ctx", "name", "posonly", "before-varargs"],
)
def test_what_cannot_be_a_step_is_refused_at_decoration(target, match):
    with pytest.raises(FunctionStepError, match=match):
        step(target)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: scaled(), r"scaled takes 1 input\(s\) \(xs\), got 0\.$"),
        (lambda: scaled(numbers(), numbers()), r"scaled takes 1 input\(s\) \(xs\), got 2\. Pass parameters by keyword"),
        (lambda: scaled(numbers(), 3), r"scaled: input '#2' is 3 \(int\), not a Step"),
        (lambda: scaled([1, 2]), r"scaled: input 'xs' is \[1, 2\] \(list\), not a Step.*Step.from_data"),
        (lambda: scaled(numbers(), scale=3), r"scaled: unknown parameter\(s\) 'scale'; its parameters are: factor\."),
        (lambda: numbers(m=1, name_alias="few"), r"few: unknown parameter\(s\) 'm'"),
        (lambda: scaled(numbers(), depends_on=numbers()), "scaled: inputs given both positionally and as depends_on="),
        (
            lambda: scaled(numbers(), factor=numbers()),
            "scaled: parameter 'factor' is the step numbers; steps are inputs",
        ),
        (lambda: scaled(depends_on=[numbers(), 4]), r"scaled: input '#2' is 4 \(int\)"),
        (lambda: scaled(numbers(), ctx={}), "scaled: ctx= must be a job_orchestra.Context"),
    ],
    ids=["none", "two", "value-positional", "list", "unknown", "unknown-alias", "both", "step-param", "dep", "ctx"],
)
def test_bad_calls_are_refused_naming_the_step(build, match):
    with pytest.raises(InvalidStepError, match=match) as info:
        build()
    assert isinstance(info.value, (FunctionStepError, InvalidStepError))


def test_a_keyword_only_parameter_without_default_is_required():
    @step
    def fit(data, *, alpha):
        return alpha

    with pytest.raises(FunctionStepError, match=r"fit: missing the parameter\(s\) 'alpha'"):
        fit(numbers())
    assert fit(numbers(), alpha=0.5).materialize() == 0.5


# -- random signatures and values ---------------------------------------------------------------------------
NAMES = ["a", "b", "c", "alpha", "beta", "seed", "depth", "label", "x_1"]
VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="abcxyz _-", max_size=8),
    st.booleans(),
    st.none(),
)


@st.composite
def signatures(draw):
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=7))
    n_inputs = draw(st.integers(0, min(3, len(names))))
    inputs, rest = names[:n_inputs], names[n_inputs:]
    varargs = draw(st.booleans())
    n_positional_params = 0 if varargs else draw(st.integers(0, len(rest)))
    positional, kwonly = rest[:n_positional_params], rest[n_positional_params:]
    defaults = {name: draw(VALUES) for name in rest}
    overrides = {name: draw(VALUES) for name in rest if draw(st.booleans())}
    extra = draw(st.integers(0, 2)) if varargs else 0
    return inputs, positional, kwonly, defaults, varargs, overrides, extra


def _source(inputs, positional, kwonly, defaults, varargs):
    args = [*inputs, *(f"{p}={defaults[p]!r}" for p in positional)]
    if varargs:
        args.append("*more")
    elif kwonly:
        args.append("*")
    args += [f"{k}={defaults[k]!r}" for k in kwonly]
    params = [*positional, *kwonly]
    more = "list(more)" if varargs else "[]"
    return (
        "from job_orchestra import step\n"
        f"@step\ndef generated({', '.join(args)}):\n"
        f"    return {{'inputs': [{', '.join(inputs)}{', ' if inputs else ''}*{more}], "
        f"'params': {{{', '.join(f'{p!r}: {p}' for p in params)}}}}}\n"
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signatures())
def test_random_signatures_run_with_their_inputs_and_parameters(sig):
    inputs, positional, kwonly, defaults, varargs, overrides, extra = sig
    ns: dict = {}
    exec(compile(_source(inputs, positional, kwonly, defaults, varargs), "<generated>", "exec"), ns)
    cls = ns["generated"]
    assert signature_of(cls.func)[:3] == (tuple(inputs), "more" if varargs else None, (*positional, *kwonly))
    ctx = Context()
    sources = [Step.stepify(i * 10, name_alias=f"in{i}") for i in range(len(inputs) + extra)]
    built = cls(*sources, ctx=ctx, **overrides)
    expected_params = {**defaults, **overrides}
    assert {k: getattr(built, k) for k in expected_params} == expected_params
    out = built.materialize()
    assert out["inputs"] == [i * 10 for i in range(len(sources))]
    assert dict(out["params"]) == expected_params
    assert built.execution_plan(show=False)["generated"].availability.value == "[*]"
    if expected_params:  # every parameter is fingerprinted and named when it changes
        key = sorted(expected_params)[0]
        old = expected_params[key]
        new = "changed" if old != "changed" else "other"
        row = cls(*sources, ctx=ctx, **{**overrides, key: new}).execution_plan(show=False)["generated"]
        assert (row.availability.value, row.reason) == ("[~]", f"parameters: {key} {old!r} → {new!r}")
    with pytest.raises(FunctionStepError, match="generated"):
        if varargs:
            cls(*sources[: len(inputs) - 1]) if inputs else cls(**{"nope": 1})
        else:
            cls(*sources, Step.stepify(0))


# -- the edit matrix: function step and class step side by side ------------------------------------------------
SOURCE = '''
from job_orchestra import Step, step

SEED = {seed}
UNUSED = {unused}


def double(x):
    return x * {factor}


def unused_helper(x):
    return x - {ufactor}


@step
def load():
    return [1, 2, 3]


@step
def work(data, *, k={k}):
    """{doc}"""
    # {comment}
    return double(sum(data)) + SEED + k{body}


class Work(Step):
    def __init__(self, data, k={k}, **kwargs):
        super().__init__(depends_on=data, **kwargs)
        self.k = k

    def run(self, data):
        """{doc}"""
        # {comment}
        return double(sum(data)) + SEED + self.k{body}
'''
FIELDS = {
    "seed": "1",
    "unused": "10",
    "factor": "2",
    "ufactor": "1",
    "k": "2",
    "doc": "Work on the data.",
    "comment": "a comment",
    "body": "",
}
FRESH = ("[*]", None)


@dataclass
class Edit:
    name: str
    fields: dict[str, str] = field(default_factory=dict)
    function: tuple[str, str | None] = FRESH  # the verdict for ``work``
    klass: tuple[str, str | None] = FRESH  # ... and for ``Work``
    pad: bool = False
    first: dict = field(default_factory=dict)  # keyword arguments at the first run
    second: dict | None = None  # ... and at the second plan (when not the same)


EDITS = [
    Edit("the same source again"),
    Edit("a comment", {"comment": "another comment"}),
    Edit("the docstring", {"doc": "Other words."}),
    Edit("line numbers", pad=True),
    Edit("an unused constant", {"unused": "11"}),
    Edit("an unused helper", {"ufactor": "2"}),
    Edit("the body", {"body": " + 1"}, ("[~]", "code: work"), ("[~]", "code: Work.run")),
    Edit("a helper", {"factor": "3"}, ("[~]", "code: helper double"), ("[~]", "code: helper double")),
    Edit("a constant", {"seed": "2"}, ("[~]", "constant SEED"), ("[~]", "constant SEED")),
    Edit(
        "a default value",
        {"k": "3"},
        ("[~]", "code: work; parameters: k 2 → 3"),
        ("[~]", "code: Work.__init__; parameters: k 2 → 3"),
    ),
    Edit(
        "a default value overridden", {"k": "3"}, ("[~]", "code: work"), ("[~]", "code: Work.__init__"), first={"k": 2}
    ),
    Edit("a parameter", {}, ("[~]", "parameters: k 2 → 5"), ("[~]", "parameters: k 2 → 5"), second={"k": 5}),
    Edit("a parameter set to its default", {}, first={}, second={"k": 2}),
    Edit(
        "a body and a constant",
        {"body": " * 2", "seed": "4"},
        ("[~]", "code: work; constant SEED"),
        ("[~]", "code: Work.run; constant SEED"),
    ),
]
PLACES = ["file module", "exec", "IPython cell"]
CASES = list(itertools.product(PLACES, EDITS))


def _load(place: str, source: str, tmp_path, module: str) -> dict:
    if place == "file module":
        (tmp_path / f"{module}.py").write_text(source)
        importlib.invalidate_caches()
        if module in sys.modules:
            return vars(importlib.reload(sys.modules[module]))
        return vars(importlib.import_module(module))
    if place == "IPython cell":
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_cell(source, store_history=True).raise_error()
        return shell.user_ns
    namespace: dict = {}
    exec(compile(source, "<exec>", "exec"), namespace)
    return namespace


def _pipeline(ns: dict, ctx: Context, kwargs: dict) -> Step:
    data = ns["load"](ctx=ctx)
    return Step.join([ns["work"](data, ctx=ctx, **kwargs), ns["Work"](data, ctx=ctx, **kwargs)])


@pytest.mark.parametrize(("place", "edit"), CASES, ids=[f"{p}-{e.name}" for p, e in CASES])
def test_edits_make_function_and_class_steps_stale_alike(place, edit, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = f"fsteps_{abs(hash((place, edit.name))) % 10**8}"
    try:
        ns = _load(place, textwrap.dedent(SOURCE).format(**FIELDS), tmp_path, module)
        ctx = Context()
        first = _pipeline(ns, ctx, edit.first).materialize()
        assert first[0] == first[1]  # the two steps compute the same thing
        source = ("\n\n\n" if edit.pad else "") + textwrap.dedent(SOURCE).format(**{**FIELDS, **edit.fields})
        ns = _load(place, source, tmp_path, module)
        head = _pipeline(ns, ctx, edit.first if edit.second is None else edit.second)
        plan = head.execution_plan(show=False)
        got = {n: (plan[n].availability.value, plan[n].reason) for n in ("work", "Work")}
        assert got == {"work": edit.function, "Work": edit.klass}
        assert got["work"][0] == got["Work"][0]  # function and class steps agree
        second = head.materialize()
        assert second[0] == second[1]
        plan = head.execution_plan(show=False)
        assert {plan[n].availability.value for n in ("load", "work", "Work")} == {"[*]"}
    finally:
        sys.modules.pop(module, None)


def test_the_matrix_is_large_and_covers_fresh_and_stale():
    assert len(CASES) >= 40
    assert {e.function[0] for e in EDITS} == {"[*]", "[~]"}


# -- notebook code: processes, Dask, snapshots -------------------------------------------------------------------
CELL = """
from job_orchestra import Context, Step, step
OFFSET = 100


def shift(x):
    return x + OFFSET


@step
def numbers(*, n=4):
    print("RUN numbers")
    return list(range(n))


@step
def shifted(xs, *, factor=2):
    print("RUN shifted")
    return [shift(x) * factor for x in xs]


class Total(Step):
    def run(self, xs):
        print("RUN Total")
        return sum(xs)


@step
def breaks(total):
    values = [total]
    raise ValueError("no convergence in the cell")
"""


def _cell(name: str, source: str = CELL) -> dict:
    """Run ``source`` as IPython would: its lines in linecache without a file, a module nobody can import."""
    linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
    namespace = {"__name__": "cell_namespace_not_importable"}
    exec(compile(source, name, "exec"), namespace)
    return namespace


RAISE_LINE = CELL.splitlines().index('    raise ValueError("no convergence in the cell")') + 1


def _notebook_pipeline(ns: dict, ctx: Context) -> Step:
    return ns["Total"](depends_on=ns["shifted"](ns["numbers"](ctx=ctx), factor=3, ctx=ctx), ctx=ctx)


def test_notebook_function_steps_run_on_processes_and_fail_with_the_cells_lines():
    ns = _cell("<ipykernel cell 3 of the function step test>")
    ctx = Context()
    assert _notebook_pipeline(ns, ctx).materialize("processes") == 3 * (400 + 6)
    assert ctx["shifted"] == [300, 303, 306, 309]
    copy = pickle.loads(cloudpickle.dumps(ns["shifted"](ns["numbers"](), factor=7)))
    assert copy.factor == 7 and type(copy).func([1], factor=1) == [101]
    with pytest.raises(ValueError, match="no convergence") as info:
        ns["breaks"](ns["numbers"]()).materialize("processes")
    worker = "\n".join(info.value.__notes__)
    assert f'File "<ipykernel cell 3 of the function step test>", line {RAISE_LINE}, in breaks' in worker
    assert 'raise ValueError("no convergence in the cell")' in worker


def test_notebook_function_steps_run_on_dask():
    distributed = pytest.importorskip("distributed")
    ns = _cell("<ipykernel cell 4 of the function step test>")
    ctx = Context()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            assert _notebook_pipeline(ns, ctx).materialize(client) == 1218
            with pytest.raises(ValueError, match="no convergence") as info:
                ns["breaks"](ns["numbers"]()).materialize(client)
    assert ctx["numbers"] == [0, 1, 2, 3]
    assert f"line {RAISE_LINE}, in breaks" in "\n".join(info.value.__notes__)


WRITER = """
import linecache, sys
CELL = sys.stdin.read()
name = "<ipykernel cell 1 of a notebook>"
linecache.cache[name] = (len(CELL), None, CELL.splitlines(keepends=True), name)
exec(compile(CELL, name, "exec"), globals())  # a notebook: the cell's code lives in __main__
ctx = Context()
head = Total(depends_on=shifted(numbers(ctx=ctx), factor=3, ctx=ctx), ctx=ctx)
print("RESULT", head.materialize())
ctx.store(sys.argv[1], pipeline=head)
"""
READER = """
import linecache, sys
from job_orchestra import Context
ctx = Context.load(sys.argv[1])
head = ctx.pipeline
print("PLAN", sorted({r.availability.value for r in head.execution_plan(show=False).rows}))
ctx.pop("Total")
print("RESULT", head.materialize())
ctx.pop("Total"), ctx.pop("shifted")
print("PROCESSES", head.materialize("processes"), ctx["shifted"])
CELL = sys.stdin.read()
name = "<ipykernel cell 1 of the next session>"
linecache.cache[name] = (len(CELL), None, CELL.splitlines(keepends=True), name)
exec(compile(CELL, name, "exec"), globals())  # the notebook's cells run again in the new session
again = Total(depends_on=shifted(numbers(ctx=ctx), factor=3, ctx=ctx), ctx=ctx)
plan = again.execution_plan(show=False)
print("AGAIN", plan["numbers"].availability.value, plan["shifted"].availability.value, plan["shifted"].reason)
"""


@pytest.mark.parametrize(
    ("second_cell", "verdict"),
    [(CELL, "AGAIN [*] [*] None"), (CELL.replace("OFFSET = 100", "OFFSET = 101"), "AGAIN [*] [~] constant OFFSET")],
    ids=["same cell", "edited cell"],
)
def test_notebook_function_steps_travel_in_snapshots_to_a_fresh_process(tmp_path, second_cell, verdict):
    snap = str(tmp_path / "snap")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    run = dict(capture_output=True, text=True, env=env, timeout=180)
    first = subprocess.run([sys.executable, "-c", WRITER, snap], input=CELL, **run)
    assert first.returncode == 0, first.stderr
    assert "RESULT 1218" in first.stdout
    second = subprocess.run([sys.executable, "-c", READER, snap], input=second_cell, **run)
    assert second.returncode == 0, second.stderr
    assert "PLAN ['[*]']" in second.stdout  # the loaded functions have the fingerprints they were stored with
    assert "RESULT 1218" in second.stdout and "PROCESSES 1218 [300, 303, 306, 309]" in second.stdout
    serial = second.stdout.partition("RESULT")[0]
    assert "RUN Total" in serial and "RUN shifted" not in serial and "RUN numbers" not in serial
    assert verdict in second.stdout


# -- Step.map on function steps --------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", [None, "threads", "processes"])
def test_function_steps_map_over_parameters_and_items_keep_their_own_results(executor):
    ctx = Context()
    data = numbers(ctx=ctx)
    group = scaled.map(data, factor=[1, 2, 3], ctx=ctx)
    assert group.materialize(executor) == [[0, 1, 2, 3], [0, 2, 4, 6], [0, 3, 6, 9]]
    assert [ctx[f"scaled[{f}]"] for f in (1, 2, 3)] == [[0, 1, 2, 3], [0, 2, 4, 6], [0, 3, 6, 9]]
    grown = scaled.map(data, factor=[1, 2, 3, 4], ctx=ctx)
    plan = grown.execution_plan(show=False)
    assert [plan[f"scaled[{f}]"].availability.value for f in (1, 2, 3, 4)] == ["[*]", "[*]", "[*]", "[ ]"]
    grid = report.map(Total(depends_on=data), data, title={"a": "A", "b": "B"}, ctx=ctx)
    assert grid.materialize(executor) == {"a": "A: 6 of 4", "b": "B: 6 of 4"}
    with pytest.raises(InvalidStepError, match=r"scaled.*unknown parameter\(s\) 'scale'"):
        scaled.map(data, scale=[1, 2])


def test_the_errors_page_names_tests_that_exist():
    import re

    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    section = text[text.index("## Function steps (`@step`)") : text.index("## Accepting code")]
    named = re.findall(r"`test_function_step\.py::(test_\w+)`", section)
    assert len(named) >= 4 and all(name in globals() for name in named), named


def test_a_redefined_function_is_marked_and_rebind_moves_its_steps_keeping_parameters(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    source = "from job_orchestra import step\n\n\n@step\ndef rescaled(*, k=1):\n    return k\n"
    (tmp_path / "fsteps_redefined.py").write_text(source)
    module = importlib.import_module("fsteps_redefined")
    try:
        ctx = Context()
        built = module.rescaled(k=3, ctx=ctx)
        assert built.materialize() == 3
        (tmp_path / "fsteps_redefined.py").write_text(source.replace("return k", "return k + 1"))
        importlib.invalidate_caches()
        importlib.reload(module)
        assert "(!) rescaled: function rescaled was redefined" in str(built.execution_plan(show=False))
        with pytest.raises(Exception, match="would run old code"):
            built.materialize()
        built.rebind()
        row = built.execution_plan(show=False)["rescaled"]
        assert (row.availability.value, row.reason) == ("[~]", "code: rescaled")
        assert built.materialize() == 4 and built.k == 3
    finally:
        sys.modules.pop("fsteps_redefined", None)


def test_the_line_count_script_counts_the_three_versions():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "count_lines.py")], capture_output=True, text=True, check=True
    )
    counts = {line.split("(")[0].strip(): int(line.split()[-2]) for line in result.stdout.splitlines()}
    functions = counts["job-orchestra, @step functions + Step.map"]
    classes = counts["job-orchestra, Step classes + Step.map"]
    hamilton = counts["Apache Hamilton"]
    assert 40 < functions < min(hamilton, classes)  # the goal: fewer lines than Hamilton and than classes
