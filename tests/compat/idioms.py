"""1.1 code as people wrote it, run with whichever job-orchestra is importable (1.1.4 or this one).

Used by tests/test_compat_idioms.py. Only 1.1's API and cleverdict are used here. Prints one JSON object:
scenario name -> what the scenario observed (or {"error": ...} when it raised).
"""

import contextlib
import io
import json
import sys
import tempfile
import traceback
from pathlib import Path

from cleverdict import CleverDict

from job_orchestra import Context, Step


def plain(x):
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def plan_rows(head):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        head.execution_plan()
    return buf.getvalue().strip("\n").splitlines()[1:]


# Steps nested in namespace classes, parameters first, depends_on/ctx/name_alias passed on through *args.
class Input:
    class ReadMeta(Step):
        def __init__(self, value, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.value = value

        def run(self):
            return CleverDict({"output": self.value, "rows": len(self.value)})


class Process:
    class Scale(Step):
        def __init__(self, factor, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.factor = factor

        def run(self, meta):
            return {"output": [x * self.factor for x in meta.output], "got": type(meta).__name__}

    class Describe(Step):
        def run(self, meta, scaled):
            return {
                "items": sorted((k, v) for k, v in scaled.items() if k != "got"),
                "as_dict": scaled.to_dict(ignore="got"),
                "meta_dict": meta.to_dict(),
                "rows": meta.rows,
            }


def nested_classes_and_positional_depends_on(tmp):
    ctx = Context()
    meta = Input.ReadMeta([1, 2, 3], [], ctx)  # depends_on, ctx given positionally through *args
    scaled = Process.Scale(10, meta, ctx, "Scaled")  # depends_on, ctx, name_alias positionally
    head = Process.Describe([meta, scaled])
    before = plan_rows(head)
    out = head.materialize()
    return {
        "names": [str(meta), str(scaled), str(head)],
        "before": before,
        "after": plan_rows(head),
        "out": plain(out),
        "scaled_type_is_dict": isinstance(ctx["Scaled"], dict),
        "meta_type": type(ctx["ReadMeta"]).__name__,
        "keys": sorted(k for k in ctx if k != "context_meta"),
    }


class Sort(Step):
    def run(self, raw):
        return sorted(raw)


class Filter(Step):
    def run(self, ordered, params):
        return [x for x in ordered if x >= params["threshold"]]


def stepify_store_load_and_continue(tmp, params=None):
    """Values put in with stepify(...).materialize(), a step, store; then load and continue the pipeline
    from bare Step(name_alias=...) steps named after the stored results."""
    ctx = Context()
    Step.stepify([3, 1, 2, 5], name_alias="Raw", ctx=ctx).materialize()
    Step.stepify(params if params is not None else {"threshold": 2}, name_alias="Params", ctx=ctx).materialize()
    Sort(depends_on=Step(name_alias="Raw", ctx=ctx), ctx=ctx, name_alias="Sorted").materialize()
    path = str(Path(tmp) / "snapshot")
    ctx.store(path)
    loaded = Context.load(path)
    head = Filter(depends_on=[Step(name_alias="Sorted", ctx=loaded), Step(name_alias="Params", ctx=loaded)])
    return {
        "plan": plan_rows(head),
        "result": head.materialize(),
        "keys": sorted(k for k in loaded if k != "context_meta"),
        "params_type": type(loaded["Params"]).__name__,
        "params_threshold_attr": loaded["Params"].threshold,
        "sorted": loaded.Sorted,
    }


def stepify_store_load_cleverdict(tmp):
    return stepify_store_load_and_continue(tmp, CleverDict({"threshold": 3}))


def cleverdict_methods_on_a_context(tmp):
    ctx = Context()
    ctx.alpha = 1
    ctx["beta gamma"] = [2]
    ctx[7] = "seven"
    out = {
        "attr": [ctx.alpha, ctx["alpha"], ctx.beta_gamma, ctx._7],
        "to_dict_ignore": plain(ctx.to_dict(ignore=["context_meta"])),
        "to_dict_exclude_alias": plain(ctx.to_dict(exclude=["context_meta", "beta_gamma"])),
        "to_dict_only": plain(ctx.to_dict(only=["alpha", 7])),
        "to_list_only": plain(ctx.to_list(only="alpha")),
        "get_key": [ctx.get_key("beta_gamma"), ctx.get_key("_7")],
        "get_aliases": [ctx.get_aliases("beta gamma"), ctx.get_aliases(7)],
        "info": ctx.info(as_str=True, ignore="context_meta"),
        "items": sorted(str(k) for k, _ in ctx.items()),
        "meta_keys": sorted(k for k in ctx.context_meta if k in ("created_on", "python")),
        "is_dict": isinstance(ctx, dict),
    }
    for call in ("to_json", "from_json"):
        try:
            getattr(ctx, call)()
            out[call] = "no error"
        except NotImplementedError:
            out[call] = "NotImplementedError"
    try:
        ctx.to_dict(ignore="alpha", only="alpha")
        out["both_filters"] = "no error"
    except TypeError:
        out["both_filters"] = "TypeError"
    return out


def cleverdict_results_flow_downstream(tmp):
    class Make(Step):
        def run(self):
            return CleverDict({"output": [1, 2], "note": "made"})

    class Use(Step):
        def run(self, made):
            return {
                "type": type(made).__name__,
                "items": sorted((k, str(v)) for k, v in made.items()),
                "to_dict": plain(made.to_dict(only="output")),
                "attr": made.note,
            }

    ctx = Context()
    out = Use(depends_on=Make(ctx=ctx)).materialize()
    return {"out": plain(out), "stored_type": type(ctx["Make"]).__name__}


class LoadTable(Step):
    """Keeps a parameter called ``name``: 1.1 names the step str(step) all the same."""

    def __init__(self, name, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = name

    def run(self):
        return "rows of " + self.name


class Fold(Step):
    """Named by its own __str__: one class, several steps, no name_alias."""

    def __init__(self, k, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.k = k

    def __str__(self):
        return f"Fold{self.k}"

    def run(self):
        return self.k * 1.0


class Mean(Step):
    def run(self, *scores):
        return sum(scores) / len(scores)


def names_from_attributes_and_str(tmp):
    import warnings

    table = LoadTable("customers", name_alias="Customers")
    ctx = Context()
    folds = [Fold(k, ctx=ctx) for k in (1, 2)]
    head = Mean(depends_on=folds, ctx=ctx)
    out = {"table": [str(table), table.name, table.materialize()], "mean": head.materialize()}
    out["keys"] = sorted(k for k in ctx if k != "context_meta")
    out["plan"] = plan_rows(head)
    folds[1].k = 3  # __str__ reads it: the step is called Fold3 now (the rows' names; 2.0 also marks it stale)
    out["renamed"] = [row[9:].split("  - ")[0] for row in plan_rows(head)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        joined = Step.noop_step([Fold(9)])
    out["noop"] = [str(joined), type(joined).__name__, Step.join([Fold(8)]).depending_steps_breadth_first()]

    class Load(Step):
        def run(self):
            return 1

    try:
        Mean(depends_on=[Load(), Load()]).materialize()
        out["duplicate"] = "not refused"
    except AssertionError:
        out["duplicate"] = "AssertionError"
    return out


class Logged(Step):
    """Logs its run in the module's RAN list (side effects in depends_on order: a 1.1 idiom)."""

    def run(self, *inputs):
        RAN.append(str(self))
        if str(self).startswith("Fail"):
            raise ValueError("failed on purpose")
        return [str(self), *inputs]


RAN = []


def run_order_is_1_1s(tmp):
    out = {}

    def log(make):
        RAN.clear()
        try:
            make().materialize()
        except ValueError:
            RAN.append("ValueError")
        return list(RAN)

    def leaf(name, deps=(), ctx=None):
        return Logged(depends_on=list(deps), name_alias=name, ctx=ctx)

    out["siblings"] = log(lambda: leaf("Report", [leaf("A"), leaf("B"), leaf("C")]))
    out["chain_and_branch"] = log(lambda: leaf("H", [leaf("X", [leaf("Z")]), leaf("Y")]))
    out["fails_first"] = log(lambda: leaf("H", [leaf("Fail"), leaf("Expensive")]))
    shared = leaf("Shared")
    diamond = log(lambda: leaf("H", [leaf("L", [shared]), leaf("R", [shared])]))
    out["diamond"] = list(dict.fromkeys(diamond))  # 1.1 runs Shared again for R; 2.0 runs each step once
    ctx = Context()
    ctx["A"] = ["cached"]
    x = leaf("X")
    cached_a = leaf("A", [x], ctx=ctx)
    head = leaf("H", [cached_a, leaf("B", [leaf("Y"), x])])
    out["below_a_cached_step"] = log(lambda: head)
    out["plan"] = plan_rows(head)
    return out


SCENARIOS = [
    run_order_is_1_1s,
    names_from_attributes_and_str,
    nested_classes_and_positional_depends_on,
    stepify_store_load_and_continue,
    stepify_store_load_cleverdict,
    cleverdict_methods_on_a_context,
    cleverdict_results_flow_downstream,
]


def main():
    observed = {}
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                observed[scenario.__name__] = plain(scenario(tmp))
            except Exception as exc:
                observed[scenario.__name__] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    json.dump(observed, sys.stdout)


if __name__ == "__main__":
    main()
