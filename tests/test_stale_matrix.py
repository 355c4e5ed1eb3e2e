"""The staleness matrix: every kind of edit, in every place code can live, with the verdict it must get.

Places: a file module (rewritten and reloaded), a package module (``pkg.helpers.K`` reached by a dotted
path), a notebook cell run by a real IPython ``InteractiveShell``, and a namespace ``exec``'d from nothing
(its classes say ``__module__ == "builtins"``). Each case runs the pipeline, makes one change, plans again
and checks the verdict: fresh, stale with its precise reason, or ``[?]`` (cannot tell) with what it cannot
hash. The cases are generated as the product of places and changes.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from dataclasses import dataclass, field

import pytest

from job_orchestra import Context

STEP = '''
import {helpers}
from {helpers} import TABLE, scale
from job_orchestra import Step

CV_SEED = {seed}
CONFIG = {config}
LIMITS = {limits}
TAGS = {tags}
FROZEN = {frozen}
NESTED = {nested}
OFFSET = 1


def double(x):
    return x * {factor}


DISPATCH = {{"double": double}}
FN = lambda x: x + OFFSET  # noqa: E731


def make_adder(box):
    return lambda x: x + box[0]


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, x):
        return x * self.k


class Work(Step):
    def __init__(self, lr=0.1, opts=None, fn=None, **kwargs):
        super().__init__(**kwargs)
        self.lr = lr
        self.opts = opts if opts is not None else {{"a": 1, "b": 2}}
        self.fn = fn

    def run(self):
        """{doc}"""
        # {comment}
        total = CV_SEED + CONFIG["a"] + sum(LIMITS) + len(TAGS) + len(FROZEN) + NESTED[1][0]
        total += DISPATCH["double"](1) + scale(1) + {helpers}.K + TABLE["t"]
        if self.fn is not None and not hasattr(self.fn, "read"):
            total += self.fn(1)
        return total{body}
'''
HELPERS = """
K = {K}
TABLE = {{"t": {t}}}


def scale(x):
    return x * {hfactor}
"""
DEFAULTS = {
    "seed": "1",
    "config": '{"a": 1, "b": 2}',
    "limits": "[1, 2, 3]",
    "tags": '{"x", "y"}',
    "frozen": "frozenset({1, 2})",
    "nested": "((1, 2), (3, 4))",
    "factor": "2",
    "doc": "Sum of everything.",
    "comment": "a comment",
    "body": "",
    "K": "7",
    "t": "5",
    "hfactor": "2",
}
HELPER_FIELDS = {"K", "t", "hfactor"}
FRESH = ("[*]", None)


@dataclass
class Change:
    """One change between the first run and the second plan, and the verdict it must get."""

    name: str
    edit: dict[str, str] = field(default_factory=dict)  # fields of the sources changed
    expected: tuple[str, str | None] | None = None  # (marker, reason); reason may use {helpers}
    pad: bool = False  # the same source further down (other line numbers)
    first: dict = field(default_factory=dict)  # keyword arguments of the step at the first run
    second: dict = field(default_factory=dict)  # ... and at the second plan (when not the same)
    mutate: object = None  # a function(namespace, kwargs) run after the first run


def _kw(**kw):
    return kw


def _set_global(name, value):
    def mutate(ns, objects):
        ns[name] = value

    return mutate


CHANGES = [
    Change("the same source run again", expected=FRESH),
    Change("a comment", {"comment": "another comment"}, FRESH),
    Change("the docstring", {"doc": "Another docstring."}, FRESH),
    Change("line numbers", {}, FRESH, pad=True),
    Change("run() edited", {"body": " + 1"}, ("[~]", "code: Work.run")),
    Change("a helper imported by name", {"hfactor": "3"}, ("[~]", "code: helper scale")),
    Change("a constant through a dotted path", {"K": "8"}, ("[~]", "constant {helpers}.K")),
    Change("a dict imported by name", {"t": "6"}, ("[~]", "constant TABLE")),
    Change("a constant", {"seed": "2"}, ("[~]", "constant CV_SEED")),
    Change("a module-level dict", {"config": '{"a": 1, "b": 3}'}, ("[~]", "constant CONFIG")),
    Change("a module-level dict reordered", {"config": '{"b": 2, "a": 1}'}, FRESH),
    Change("a module-level list", {"limits": "[1, 2, 4]"}, ("[~]", "constant LIMITS")),
    Change("a module-level set", {"tags": '{"x", "z"}'}, ("[~]", "constant TAGS")),
    Change("a module-level frozenset", {"frozen": "frozenset({1, 3})"}, ("[~]", "constant FROZEN")),
    Change("a nested tuple", {"nested": "((1, 2), (4, 4))"}, ("[~]", "constant NESTED")),
    Change("a function in a dispatch dict", {"factor": "3"}, ("[~]", "constant DISPATCH")),
    Change(
        "a module-level dict changed in place",
        expected=("[~]", "constant CONFIG"),
        mutate=lambda ns, objects: ns["CONFIG"].update(a=5),
    ),
    Change("a parameter", expected=("[~]", "parameters: lr 0.1 → 0.2"), second=_kw(lr=0.2)),
    Change("a parameter set to an equal value", expected=FRESH, first=_kw(lr=0.1), second=_kw(lr=float("0.1"))),
    Change(
        "a dict parameter reordered",
        expected=FRESH,
        first=_kw(opts={"a": 1, "b": 2}),
        second=_kw(opts={"b": 2, "a": 1}),
    ),
    Change(
        "a dict parameter changed",
        expected=("[~]", "parameters: opts"),
        first=_kw(opts={"a": 1}),
        second=_kw(opts={"a": 2}),
    ),
    Change(
        "a lambda parameter reading a global",
        expected=("[~]", "parameters: fn"),
        first=_kw(fn="FN"),
        mutate=_set_global("OFFSET", 2),
    ),
    Change(
        "a closure parameter over a mutable cell",
        expected=("[~]", "parameters: fn"),
        first=_kw(fn="adder"),
        mutate=lambda ns, objects: objects["box"].__setitem__(0, 2),
    ),
    Change(
        "a bound method parameter whose object changed",
        expected=("[~]", "parameters: fn"),
        first=_kw(fn="method"),
        mutate=lambda ns, objects: setattr(objects["scaler"], "k", 3),
    ),
    Change(
        "an attribute first set after the first plan",
        expected=("[~]", "parameters: seed (new)"),
        mutate=lambda ns, objects: setattr(objects["step"], "seed", 3),
    ),
    Change(
        "an open file as a parameter",
        expected=("[?]", "cannot tell: parameter fn is an open file"),
        first=_kw(fn="file"),
    ),
]


class Place:
    """Where the step's code lives; ``load(source)`` (re)defines it and returns its namespace."""

    def __init__(self, kind: str, tmp_path, uid: str) -> None:
        self.kind = kind
        self.tmp = tmp_path
        self.uid = uid
        if kind == "package":
            (tmp_path / f"pkg_{uid}").mkdir()
            (tmp_path / f"pkg_{uid}" / "__init__.py").write_text("")
            self.helpers = f"pkg_{uid}.helpers"
            self.module = f"pkg_{uid}.steps"
        else:
            self.helpers = f"helpers_{uid}"
            self.module = f"work_{uid}"

    def _write(self, module: str, source: str) -> None:
        path = self.tmp.joinpath(*module.split(".")).with_suffix(".py")
        path.write_text(source)
        importlib.invalidate_caches()

    def _import(self, module: str) -> dict:
        if module in sys.modules:
            return vars(importlib.reload(sys.modules[module]))
        return vars(importlib.import_module(module))

    def load(self, step_source: str, helpers_source: str) -> dict:
        self._write(self.helpers, helpers_source)
        self._import(self.helpers)
        if self.kind in ("file module", "package"):
            self._write(self.module, step_source)
            return self._import(self.module)
        if self.kind == "IPython cell":
            from IPython.core.interactiveshell import InteractiveShell

            shell = InteractiveShell.instance()
            result = shell.run_cell(step_source, store_history=True)
            result.raise_error()
            return shell.user_ns
        namespace: dict = {}  # exec'd from nothing: no __name__, classes say __module__ == "builtins"
        exec(compile(step_source, "<exec>", "exec"), namespace)
        assert namespace["Work"].__module__ == "builtins"
        return namespace

    def cleanup(self) -> None:
        for name in [m for m in sys.modules if self.uid in m]:
            del sys.modules[name]


PLACES = ["file module", "package", "IPython cell", "exec"]
CASES = list(itertools.product(PLACES, CHANGES))


def _sources(place: Place, fields: dict[str, str], pad: bool = False) -> tuple[str, str]:
    values = {**DEFAULTS, **fields, "helpers": place.helpers}
    step = ("\n\n\n" if pad else "") + textwrap.dedent(STEP).format(**values)
    return step, textwrap.dedent(HELPERS).format(**values)


def _arguments(kw: dict, ns: dict, objects: dict) -> dict:
    out = dict(kw)
    fn = out.get("fn")
    if fn == "FN":
        out["fn"] = ns["FN"]
    elif fn == "adder":
        objects["box"] = [1]
        out["fn"] = ns["make_adder"](objects["box"])
    elif fn == "method":
        objects["scaler"] = ns["Scaler"](2)
        out["fn"] = objects["scaler"].apply
    elif fn == "file":
        out["fn"] = objects["file"]
    return out


@pytest.mark.filterwarnings("ignore:job-orchestra. the parameter 'fn' of step 'Work':RuntimeWarning")
@pytest.mark.parametrize(("place_kind", "change"), CASES, ids=[f"{p}-{c.name}" for p, c in CASES])
def test_matrix(place_kind, change, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a rewritten file is never read from a stale .pyc
    monkeypatch.syspath_prepend(str(tmp_path))
    uid = f"m{abs(hash((place_kind, change.name))) % 10**8}"
    place = Place(place_kind, tmp_path, uid)
    objects: dict = {}
    handle = (tmp_path / "data.txt").open("w")
    objects["file"] = handle
    try:
        ns = place.load(*_sources(place, {}))
        ctx = Context()
        step = ns["Work"](ctx=ctx, **_arguments(change.first, ns, objects))
        objects["step"] = step
        step.execution_plan(show=False)  # displaying a step in a notebook plans it
        first = step.materialize()
        assert step.execution_plan(show=False)["Work"].availability.value in ("[*]", "[?]")
        if change.mutate is not None:
            change.mutate(ns, objects)
            again = step
        else:
            ns = place.load(*_sources(place, change.edit, change.pad))
            kwargs = change.second or change.first
            again = ns["Work"](ctx=ctx, **_arguments(kwargs, ns, objects))
        row = again.execution_plan(show=False)["Work"]
        marker, reason = change.expected
        assert (row.availability.value, row.reason) == (marker, reason and reason.format(helpers=place.helpers))
        if marker == "[~]":  # a stale result runs again and is fresh afterwards
            again.materialize()
            assert again.execution_plan(show=False)["Work"].availability.value == "[*]"
        elif marker == "[*]":
            assert again.materialize() == first
    finally:
        handle.close()
        place.cleanup()


def test_the_matrix_covers_every_place_and_change():
    assert len(CASES) == len(PLACES) * len(CHANGES) >= 100
    verdicts = {c.expected[0] for c in CHANGES}
    assert verdicts == {"[*]", "[~]", "[?]"}
