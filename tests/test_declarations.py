"""Declaration mistakes are refused before anything runs, naming the step; one-shot results are refused
before they reach a Context (docs/errors.md, "Running: concurrent runs, workers and declarations")."""

from __future__ import annotations

import array
import collections
import gc
import io
import itertools

import numpy as np
import pandas as pd
import pytest

from job_orchestra import Context, InvalidStepError, Step

RAN: list[str] = []


class Load(Step):
    def run(self):
        RAN.append("Load")
        return [1, 2, 3]


class Static(Step):
    @staticmethod
    def run(values):
        return values


class StaticNoArgs(Step):
    @staticmethod
    def run():
        return 1


class Klass(Step):
    @classmethod
    def run(cls, values):
        return values


class NotCallable(Step):
    run = 5


class NoneRun(Step):
    run = None


class PropertyRun(Step):
    @property
    def run(self):
        return "not a method"


class Plain(Step):
    def run(self, values):
        RAN.append("Plain")
        return values


def _instance_not_callable(**kw):
    step = Plain(**kw)
    step.run = "oops"
    return step


# kind -> (make the faulty step given depends_on=, what the message says)
MISTAKES = {
    "staticmethod": (lambda **kw: Static(**kw), r"declares run as a @staticmethod"),
    "staticmethod-no-args": (lambda **kw: StaticNoArgs(**kw), r"declares run as a @staticmethod"),
    "classmethod": (lambda **kw: Klass(**kw), r"declares run as a @classmethod"),
    "class-attribute-int": (lambda **kw: NotCallable(**kw), r"has run = 5 \(int\), not a method"),
    "class-attribute-none": (lambda **kw: NoneRun(**kw), r"has run = None \(NoneType\), not a method"),
    "property": (lambda **kw: PropertyRun(**kw), r"has a run attribute that gives str, not a method"),
    "instance-attribute": (_instance_not_callable, r"has run replaced on the instance by 'oops' \(str\), not a method"),
}


@pytest.fixture(autouse=True)
def clear():
    RAN.clear()


@pytest.mark.parametrize("kind", sorted(MISTAKES))
@pytest.mark.parametrize("executor", [None, "threads"])
@pytest.mark.parametrize("where", ["head", "middle"])
@pytest.mark.parametrize("with_ctx", [False, True], ids=["no-ctx", "ctx"])
def test_a_run_that_is_not_a_plain_method_is_refused_before_anything_runs(kind, executor, where, with_ctx):
    make, says = MISTAKES[kind]
    ctx = Context() if with_ctx else None  # with a Context the plan fingerprints the steps first
    faulty = make(depends_on=Load(ctx=ctx), name_alias="faulty", ctx=ctx)
    head = faulty if where == "head" else Plain(depends_on=faulty)
    with pytest.raises(InvalidStepError, match=rf"Step 'faulty' \(\w+\) {says}.*def run\(self, \*inputs\)"):
        head.materialize(executor)
    assert RAN == []  # nothing ran, not even the dependency


@pytest.mark.parametrize("executor", [None, "threads"])
@pytest.mark.parametrize("cached", [False, True])
def test_a_step_named_context_meta_is_refused(executor, cached):
    ctx = Context()
    if cached:  # the Context's own metadata is always there: today it is returned as the "result"
        assert "context_meta" in ctx
    step = Plain(depends_on=Load(), name_alias="context_meta", ctx=ctx)
    with pytest.raises(InvalidStepError, match=r"Step 'context_meta' \(Plain\) has a name its Context reserves"):
        step.materialize(executor)
    with pytest.raises(InvalidStepError, match=r"'context_meta'"):
        Plain(depends_on=step, name_alias="user").materialize(executor)
    assert RAN == []
    assert Plain(depends_on=Load(), name_alias="context_meta").materialize() == [1, 2, 3]  # no Context: fine


class NoSuper(Step):
    def __init__(self, factor):
        self.factor = factor  # forgot super().__init__()

    def run(self):
        return self.factor


class NoSuperAlias(Step):
    def __init__(self):
        self.dependencies = []  # half-initialized by hand

    def run(self):
        return 1


@pytest.mark.parametrize("cls", [NoSuper, NoSuperAlias])
def test_str_and_repr_of_a_step_without_super_init_are_readable_and_materialize_says_why(cls):
    step = cls(2) if cls is NoSuper else cls()
    assert str(step) == cls.__name__
    assert repr(step) == f"<{cls.__name__} not initialized: its __init__ does not call super().__init__()>"
    assert f"{step!r}" in repr([step])
    with pytest.raises(InvalidStepError, match=rf"A {cls.__name__} step has no \.\w+: .*super\(\)\.__init__"):
        step.materialize()
    with pytest.raises(InvalidStepError, match=rf"A {cls.__name__} step has no"):
        Plain(depends_on=step).materialize("threads")


def _gen():
    yield from range(3)


async def _coroutine():
    return 1


class Iterish:
    """Not an Iterator subclass, but its iter() is itself: one pass only (found without calling iter())."""

    def __init__(self):
        self.items = [1, 2]

    def __iter__(self):
        return self

    def __next__(self):
        if not self.items:
            raise StopIteration
        return self.items.pop()


class Reiterable:
    """Its iter() is a fresh iterator each time: fine to keep."""

    def __iter__(self):
        return iter([1, 2])


class QueryLike:
    """Iterating it has a side effect (like running a database query): the check must not iterate it."""

    def __iter__(self):
        raise AssertionError("iterated while being stored")


ONE_SHOT = {
    "generator": lambda: _gen(),
    "generator-expression": lambda: (x for x in range(3)),
    "map": lambda: map(str, range(3)),
    "filter": lambda: filter(None, range(3)),
    "zip": lambda: zip(range(3), range(3)),
    "enumerate": lambda: enumerate("abc"),
    "reversed": lambda: reversed([1, 2]),
    "list-iterator": lambda: iter([1, 2]),
    "dict-items-iterator": lambda: iter({"a": 1}.items()),
    "itertools-count": lambda: itertools.count(),
    "itertools-chain": lambda: itertools.chain([1], [2]),
    "text-file": lambda: io.StringIO("a\nb\n"),
    "binary-file": lambda: io.BytesIO(b"ab"),
    "iter-is-self": lambda: Iterish(),
    "coroutine": lambda: _coroutine(),
}
KEPT = {
    "list": lambda: [1, 2],
    "tuple": lambda: (1, 2),
    "dict": lambda: {"a": 1},
    "set": lambda: {1, 2},
    "str": lambda: "abc",
    "bytes": lambda: b"abc",
    "range": lambda: range(3),
    "deque": lambda: collections.deque([1]),
    "array": lambda: array.array("i", [1, 2]),
    "numpy": lambda: np.arange(3),
    "numpy-0d": lambda: np.float64(1.5),
    "dataframe": lambda: pd.DataFrame({"a": [1, 2]}),
    "series": lambda: pd.Series([1, 2]),
    "reiterable": lambda: Reiterable(),
    "iterating-has-side-effects": lambda: QueryLike(),
    "dict-view": lambda: {"a": 1}.keys(),
}


class Returns(Step):
    def __init__(self, make, **kw):
        super().__init__(**kw)
        self.make = make

    def run(self):
        return self.make()


@pytest.mark.parametrize("kind", sorted(ONE_SHOT))
@pytest.mark.parametrize("executor", [None, "threads"])
@pytest.mark.filterwarnings("ignore:coroutine '_coroutine' was never awaited")
def test_a_one_shot_result_is_refused_before_it_reaches_a_context(kind, executor):
    ctx = Context()
    step = Returns(ONE_SHOT[kind], name_alias="stream", ctx=ctx)
    with pytest.raises(InvalidStepError, match=r"Step 'stream' \(Returns\) returned an? .*consumed only once"):
        Plain(depends_on=step, name_alias="user").materialize(executor)
    assert "stream" not in ctx
    assert RAN == []  # its consumer never ran
    gc.collect()  # a refused coroutine warns when collected: here, under this test's filter


@pytest.mark.parametrize("kind", sorted(KEPT))
def test_re_iterable_results_are_kept(kind):
    ctx = Context()
    out = Returns(KEPT[kind], name_alias="value", ctx=ctx).materialize()
    assert "value" in ctx and ctx["value"] is out


def test_a_one_shot_result_without_a_context_is_passed_on():
    """Without a Context there is no later consumer: a generator may feed its one consumer."""

    class Sum(Step):
        def run(self, xs):
            return sum(xs)

    assert Sum(depends_on=Returns(_gen)).materialize() == 3


def test_the_errors_page_names_tests_that_exist():
    """Each entry of the "Running" section of docs/errors.md names a test that exists."""
    import importlib
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "errors.md").read_text(encoding="utf-8")
    section = text[text.index("## Running: declarations, concurrent runs and dying workers") :]
    named = re.findall(r"`(test_\w+)\.py::(test_\w+)`", section)
    assert len(named) >= 9
    for module, test in named:
        assert hasattr(importlib.import_module(f"tests.{module}"), test), f"docs/errors.md names {module}::{test}"
