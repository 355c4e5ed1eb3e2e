"""Stale results: shown as [~] with a reason, re-run with their dependents, nothing else; stale="use" is 1.1."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from job_orchestra import Context, Step
from job_orchestra.drawing import DependencyGraph, status_of
from job_orchestra.plan import LEGEND, Availability, ExecutionPlan
from tests.recipes import jo11_python

LEGEND_11 = (
    "Execution plan. Result availability: [*] available - [ ] n/a - [x] no context. "
    "Scheduled execution: (H) head - (>) scheduled run on materialize - ( ) no run required."
)
RUNS: list[str] = []


class Counted(Step):
    """A step whose run() logs its name and sums its inputs plus ``bias``."""

    def __init__(self, bias=0, depends_on=None, ctx=None, name_alias=None):
        super().__init__(depends_on=depends_on, ctx=ctx, name_alias=name_alias)
        self.bias = bias

    def run(self, *inputs):
        RUNS.append(str(self))
        return sum(inputs) + self.bias + 1


class Edited(Counted):
    """The same step after an edit of run() (a different result)."""

    def run(self, *inputs):
        RUNS.append(str(self))
        return sum(inputs) + self.bias + 100


@pytest.fixture(autouse=True)
def clear_runs():
    RUNS.clear()


def chain(ctx, classes=None, biases=None, ctxs=None):
    """a -> b -> c -> d with the given classes, biases and contexts (default: every step in ``ctx``)."""
    names = "abcd"
    classes = classes or {}
    biases = biases or {}
    ctxs = ctxs if ctxs is not None else dict.fromkeys(names, ctx)
    step = None
    for n in names:
        step = classes.get(n, Counted)(biases.get(n, 0), depends_on=step, ctx=ctxs.get(n), name_alias=n)
    return step


def markers(plan: ExecutionPlan) -> list[tuple[str, str, str, str | None]]:
    return [(r.name, r.availability.value, r.schedule.value, r.reason) for r in plan]


def test_a_plan_without_stale_rows_is_11s_text():
    ctx = Context()
    head = chain(ctx)
    head.materialize()
    plan = head.execution_plan(show=False)
    assert str(plan) == LEGEND_11 + "\n [*] ( ) a\n [*] ( ) b\n [*] ( ) c\n [*] (H) d\n"
    assert LEGEND == LEGEND_11


def test_edited_code_is_stale_and_reruns_with_its_dependents_only():
    ctx = Context()
    assert chain(ctx).materialize() == 4
    RUNS.clear()
    head = chain(ctx, classes={"b": Edited})
    plan = head.execution_plan(show=False)
    assert markers(plan) == [
        ("a", "[*]", "( )", None),
        ("b", "[~]", "(>)", "code: Edited.run (new)"),
        ("c", "[~]", "(>)", "upstream: b"),
        ("d", "[~]", "(H)", "upstream: b"),
    ]
    assert str(plan).splitlines()[0] == LEGEND_11.replace("[*] available", "[*] available - [~] stale")
    assert str(plan).splitlines()[2] == " [~] (>) b  - code: Edited.run (new)"  # the 1.1 row, then why
    assert plan.to_run == ["b", "c", "d"]
    assert head.materialize() == 103  # a=1, b=1+100, c=102, d=103
    assert RUNS == ["b", "c", "d"]
    RUNS.clear()
    assert head.materialize() == 103 and RUNS == []  # fresh again
    assert all(r.availability is Availability.AVAILABLE for r in head.execution_plan(show=False))


def test_changed_parameter_is_stale_for_parameters():
    ctx = Context()
    chain(ctx).materialize()
    head = chain(ctx, biases={"c": 5})
    plan = head.execution_plan(show=False)
    assert [r.reason for r in plan] == [None, None, "parameters: bias 0 → 5", "upstream: c"]
    RUNS.clear()
    assert head.materialize() == 9 and RUNS == ["c", "d"]


def test_an_edit_upstream_of_a_step_without_context_reaches_its_dependents():
    ctx = Context()
    ctxs = {"a": None, "b": None, "c": ctx, "d": ctx}
    chain(ctx, ctxs=ctxs).materialize()
    head = chain(ctx, classes={"a": Edited}, ctxs=ctxs)
    plan = head.execution_plan(show=False)
    assert markers(plan) == [
        ("a", "[x]", "(>)", None),
        ("b", "[x]", "(>)", None),
        ("c", "[~]", "(>)", "upstream: b"),  # b has no Context: the plan names the input it sees
        ("d", "[~]", "(H)", "upstream: b"),  # the root of the change, not every step on the way
    ]
    RUNS.clear()
    assert head.materialize() == 100 + 3 and RUNS == ["a", "b", "c", "d"]


def test_hand_set_values_count_as_available_and_their_replacement_reaches_dependents():
    ctx = Context()
    chain(ctx).materialize()
    ctx["b"] = 50  # put in by hand: no fingerprint, counts as available whatever b's code says
    assert ctx.fingerprint("b") is None
    head = chain(ctx, classes={"a": Edited, "b": Edited})
    plan = head.execution_plan(show=False)
    assert markers(plan) == [
        ("a", "[~]", "( )", "code: Edited.run (new)"),  # stale, but nothing needs it: b is given
        ("b", "[*]", "( )", None),
        ("c", "[~]", "(>)", "upstream: b"),  # computed from the old b
        ("d", "[~]", "(H)", "upstream: b"),
    ]
    RUNS.clear()
    assert head.materialize() == 52 and RUNS == ["c", "d"]
    RUNS.clear()
    ctx["b"] = 50  # the same value again (a cell run twice): nothing is stale
    assert head.materialize() == 52 and RUNS == []
    ctx["b"] = 60  # another value: what was computed from b is stale
    assert head.execution_plan(show=False).to_run == ["c", "d"]
    assert head.materialize() == 62 and RUNS == ["c", "d"]


def test_stale_use_keeps_11_behaviour():
    ctx = Context()
    chain(ctx).materialize()
    head = chain(ctx, classes={"b": Edited})
    plan = head.execution_plan(show=False, stale="use")
    assert str(plan) == LEGEND_11 + "\n [*] ( ) a\n [*] ( ) b\n [*] ( ) c\n [*] (H) d\n"
    RUNS.clear()
    assert head.materialize(stale="use") == 4 and RUNS == []
    assert head.materialize() == 103 and RUNS == ["b", "c", "d"]


def test_stale_use_records_what_was_really_used():
    """A step run under stale="use" hashes the stale input it received, so it is stale afterwards."""
    ctx = Context()
    chain(ctx).materialize()
    ctx.invalidate("c", "d")
    head = chain(ctx, classes={"b": Edited})
    RUNS.clear()
    assert head.materialize(stale="use") == 4 and RUNS == ["c", "d"]
    plan = head.execution_plan(show=False)
    assert [r.availability.value for r in plan] == ["[*]", "[~]", "[~]", "[~]"]
    RUNS.clear()
    assert head.materialize() == 103 and RUNS == ["b", "c", "d"]


def test_bad_stale_value_is_refused():
    with pytest.raises(ValueError, match=r"stale= takes 'rerun'.*'use'"):
        chain(Context()).materialize(stale="never")
    with pytest.raises(ValueError, match="got 'x'"):
        chain(Context()).execution_plan(show=False, stale="x")


def test_recorded_fingerprint_is_the_plans():
    ctx = Context()
    head = chain(ctx)
    plan = head.execution_plan(show=False)
    head.materialize()
    for name in "abcd":
        assert ctx.fingerprint(name) == plan.fingerprint(name) is not None


def test_the_graph_styles_stale_steps_apart():
    ctx = Context()
    chain(ctx).materialize()
    head = chain(ctx, classes={"b": Edited})
    plan = head.execution_plan(show=False)
    assert [status_of(r) for r in plan] == ["cached", "stale", "stale", "head"]
    source = DependencyGraph.of(head, plan).source
    assert "b: stale (code: Edited.run (new))" in source and "dashed" in source


def test_snapshot_keeps_fingerprints(tmp_path):
    ctx = Context()
    chain(ctx).materialize()
    ctx.store(tmp_path / "snap")
    loaded = Context.load(tmp_path / "snap")
    assert loaded.fingerprint("c") == ctx.fingerprint("c") is not None
    RUNS.clear()
    assert chain(loaded).materialize() == 4 and RUNS == []
    assert chain(loaded, classes={"c": Edited}).materialize() == 103 and RUNS == ["c", "d"]


STORE = """
import sys
from job_orchestra import Context, Step

LOG = []

def twice(x):
    return 2 * x

class Source(Step):
    def run(self):
        LOG.append("Source")
        return {"numbers": [1, 2, 3]}

class Double(Step):
    def __init__(self, factor=1, **kw):
        super().__init__(**kw)
        self.factor = factor
    def run(self, data):
        LOG.append("Double")
        return [twice(v) * self.factor for v in data.numbers]

class Total(Step):
    def run(self, values):
        LOG.append("Total")
        return sum(values)

ctx = Context()
head = Total(Double(3, depends_on=Source(ctx=ctx), ctx=ctx), ctx=ctx)
assert head.materialize() == 36
ctx.store(sys.argv[1], pipeline=head)
"""
LOAD = """
import sys
from job_orchestra import Context
loaded = Context.load(sys.argv[1])
plan = loaded.pipeline.execution_plan(show=False)
print(str(plan))
print(loaded.pipeline.materialize())
"""


def run_script(tmp_path: Path, name: str, source: str, *args: str) -> str:
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_pipeline_restored_in_a_new_process_is_not_stale(tmp_path):
    """Without its classes' source, a pipeline restored from a snapshot has the same fingerprints."""
    snap = str(tmp_path / "snap")
    run_script(tmp_path, "store.py", STORE, snap)
    out = run_script(tmp_path, "load.py", LOAD, snap)
    assert out.splitlines() == [LEGEND_11, " [*] ( ) Source", " [*] ( ) Double", " [*] (H) Total", "", "36"]


# -- differential check against job-orchestra 1.1.4, where it is installed -------------------------------------
JO11 = jo11_python()


def random_specs(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    specs = []
    for _ in range(count):
        n = rng.randint(1, 7)
        nodes = []
        for i in range(n):
            deps = sorted(rng.sample(range(i), rng.randint(0, min(i, 3))))
            ctx = rng.choice([None, 0, 1])
            nodes.append([f"N{i}", [f"N{d}" for d in deps], ctx])
        head = f"N{n - 1}"
        actions = ["plan"]
        for _ in range(rng.randint(1, 3)):
            actions += [f"N{rng.randrange(n)}", "plan"]
        actions += [head, "plan"]
        specs.append({"nodes": nodes, "head": head, "actions": actions})
    return specs


def plans_of(python: str, specs_file: Path, root: str | None) -> list[list[str]]:
    code = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from job_orchestra import Context, Step

        class Node(Step):
            def run(self, *inputs):
                return sum(inputs) + 1

        result = []
        for spec in json.load(open(sys.argv[1])):
            ctxs, steps = {}, {}
            for name, deps, ctx_id in spec["nodes"]:
                ctx = None if ctx_id is None else ctxs.setdefault(ctx_id, Context())
                if deps:
                    steps[name] = Node(depends_on=[steps[d] for d in deps], ctx=ctx, name_alias=name)
                else:  # 1.1's own default depends_on=[] (one shared list) changes its plan order
                    steps[name] = Node(ctx=ctx, name_alias=name)
            texts = []
            for action in spec["actions"]:
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    if action == "plan":
                        steps[spec["head"]].execution_plan()
                    else:
                        steps[action].materialize()
                if action == "plan":
                    texts.append(buffer.getvalue())
            result.append(texts)
        import job_orchestra
        print(json.dumps({"package": job_orchestra.__file__, "plans": result}))
        """
    )
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if root:
        env["PYTHONPATH"] = root
    # run from the specs' directory: from the repository, "python -c" would import this checkout's package
    done = subprocess.run(
        [python, "-c", code, str(specs_file)], capture_output=True, text=True, env=env, cwd=specs_file.parent
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    # compare paths, not strings: a 1.1.4 venv at "x/jo11" merely begins with a checkout's "x/jo"
    ours = Path(out["package"]).resolve().is_relative_to(Path(__file__).resolve().parents[1])
    assert ours == (root is not None), out["package"]  # each side imported the package it should
    return out["plans"]


def valid_order(text: str, spec: dict) -> bool:
    rows = [line.split()[-1] for line in text.splitlines()[1:] if line.strip()]
    position = {name: i for i, name in enumerate(rows)}
    return all(position[d] < position[name] for name, deps, _ in spec["nodes"] if name in position for d in deps)


@pytest.mark.skipif(
    not JO11.exists(), reason="job-orchestra 1.1.4 is not set up (scripts/run-tests.sh does it; or set $JO11_PYTHON)"
)
def test_plans_match_job_orchestra_11_without_code_edits(tmp_path):
    specs = random_specs(seed=11, count=60)
    # the shape where 1.1's order is not an execution order: H needs A and B, B needs A
    specs.append({"nodes": [["A", [], 0], ["B", ["A"], None], ["H", ["A", "B"], 0]], "head": "H", "actions": ["plan"]})
    specs_file = tmp_path / "specs.json"
    specs_file.write_text(json.dumps(specs))
    theirs = plans_of(str(JO11), specs_file, None)
    ours = plans_of(sys.executable, specs_file, os.getcwd())
    compared = reordered = 0
    for spec, their_texts, our_texts in zip(specs, theirs, ours):
        for their, our in zip(their_texts, our_texts, strict=True):
            if valid_order(their, spec):
                assert our == their, (spec, their, our)
                compared += 1
            else:  # same rows, ours in a valid execution order
                assert sorted(our.splitlines()) == sorted(their.splitlines())
                assert valid_order(our, spec)
                reordered += 1
    assert compared > 100 and reordered >= 1, (compared, reordered)
    print(f"{compared} plans identical to 1.1, {reordered} in a valid order where 1.1 was not")


class Logs(Step):
    """Keeps a log in a parameter and appends to it in run(): state, not a parameter."""

    def __init__(self, log, depends_on=None, ctx=None, name_alias=None):
        super().__init__(depends_on=depends_on, ctx=ctx, name_alias=name_alias)
        self.log = log
        self.scale = 2

    def run(self, *inputs):
        self.log.append(str(self))
        return sum(inputs) + self.scale


def test_parameters_a_run_changes_become_state_with_a_warning():
    ctx, log = Context(), []
    a = Logs(log, ctx=ctx, name_alias="a")
    b = Logs(log, depends_on=a, ctx=ctx, name_alias="b")  # the same list, changed by both runs
    head = Counted(depends_on=b, ctx=ctx, name_alias="c")
    with pytest.warns(RuntimeWarning, match=r"step 'a' changed its attribute\(s\) 'log' while it ran"):
        assert head.materialize() == 5
    plan = head.execution_plan(show=False)
    assert plan.to_run == [] and not plan.stale_rows  # nothing stale: the log is not a parameter any more
    assert log == ["a", "b"]
    b.scale = 3  # a real parameter still counts
    assert [r.reason for r in head.execution_plan(show=False)] == [None, "parameters: scale 2 → 3", "upstream: b"]
    assert head.materialize() == 6 and log == ["a", "b", "b"]


def test_a_global_counter_the_code_bumps_is_state_but_a_global_setting_it_reads_is_code():
    from tests.test_fingerprint import cell

    ns = cell(
        """
        from job_orchestra import Context, Step
        RUNS = 0
        THRESHOLD = 3

        def bump():
            global RUNS
            RUNS += 1

        class Count(Step):
            def run(self):
                global RUNS
                RUNS += 1
                return RUNS

        class Use(Step):
            def run(self, a):
                bump()
                return a + THRESHOLD
        """
    )
    ctx = ns["Context"]()
    head = ns["Use"](depends_on=ns["Count"](ctx=ctx), ctx=ctx)
    assert head.materialize() == 4
    assert [r.availability.value for r in head.execution_plan(show=False)] == ["[*]", "[*]"]
    ns["THRESHOLD"] = 5
    plan = head.execution_plan(show=False)
    assert [r.availability.value for r in plan] == ["[*]", "[~]"] and plan["Use"].reason == "constant THRESHOLD"
    assert head.materialize() == 6 and ns["RUNS"] == 3  # Count is not run again, Use is


def test_precise_reasons_reach_the_html_plan_and_the_graph_tooltips():
    from jupyter_ext import plan_html

    ctx = Context()
    chain(ctx).materialize()
    head = chain(ctx, biases={"b": 5})
    plan = head.execution_plan(show=False)
    page = plan_html.render_plan(plan)
    assert "parameters: bias 0 → 5" in page and "upstream: b" in page
    source = DependencyGraph.of(head, plan).source
    assert 'tooltip="b: stale (parameters: bias 0 → 5)"' in source
    assert 'tooltip="c: stale (upstream: b)"' in source
    assert " [~] (>) b  - parameters: bias 0 → 5" in str(plan).splitlines()
