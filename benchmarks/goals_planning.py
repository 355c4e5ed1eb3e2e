"""Issue 13 item 4: planning that does not redo the graph, hashing at memory speed, and linear growth.

- no-op ``materialize()`` on an all-cached chain (every step has a Context holding its result), per step;
- ``hash_value`` of a large array against one raw xxh3-128 pass over the same buffer;
- build + materialize (which plans) of a 100,000-step chain against a 10,000-step one, garbage collector on,
  each run in a fresh interpreter; against the same growth of plain Python objects (collector on and off).
"""

from __future__ import annotations

import gc
from typing import Any

import workloads as w
from harness import Figure, Row, Timer, absolute_row, figure, run_worker


def noop_materialize(n: int, runs: int) -> dict[str, Any]:
    """Seconds of ``head.materialize()`` when every step of an n-chain is cached, and of a plain loop doing
    one Context lookup per step (the floor of "check every step")."""
    from job_orchestra import Callback, Context

    ctx = Context()
    head = w.chain(n, ctx)
    assert head.materialize() == n - 1  # runs everything once, untimed
    started: list[str] = []  # check, untimed, that the timed call runs no step: it is a no-op
    assert head.materialize(callbacks=Callback(step_start=started.append)) == n - 1 and not started, started[:3]
    steps, node = [], head
    while node is not None:
        steps.append(node)
        node = node.dependencies[0] if node.dependencies else None
    ours, floor = [], []
    for _ in range(runs):
        gc.collect()
        with Timer() as t:
            out = head.materialize()
        assert out == n - 1
        ours.append(t.sample.__dict__)
        gc.collect()
        with Timer() as t:
            hits = sum(1 for s in steps if s.name in ctx)
        assert hits == n
        floor.append(t.sample.__dict__)
    return {"ours": ours, "floor": floor}


def hashing(nbytes: int, runs: int) -> dict[str, Any]:
    """Seconds of job-orchestra's ``hash_value`` of a float64 array and of ``xxh3_128`` over its buffer."""
    import numpy as np
    import xxhash

    from job_orchestra.fingerprint import hash_value

    arr = np.arange(nbytes // 8, dtype=np.float64)
    hash_value(arr), xxhash.xxh3_128_hexdigest(arr.data)  # warm (pages touched, code loaded)
    ours, raw, seen = [], [], set()
    for r in range(runs):
        arr[r % arr.size] += 1  # new content each run (untimed): a digest remembered by identity would show
        with Timer() as t:
            digest = hash_value(arr)
        ours.append(t.sample.__dict__)
        with Timer() as t:
            xxhash.xxh3_128_hexdigest(arr.data)
        raw.append(t.sample.__dict__)
        assert digest not in seen, "hash_value returned a digest of old content: it did not hash the buffer"
        seen.add(digest)
    return {"ours": ours, "raw": raw}


def replan_from_data(nbytes: int, runs: int) -> dict[str, Any]:
    """Seconds of ``execution_plan()`` of Step.from_data(array) -> First, the head cached in a Context."""
    import numpy as np

    from job_orchestra import Context, Step

    ctx = Context()
    head = w.First(depends_on=Step.from_data(np.arange(nbytes // 8, dtype=np.float64)), ctx=ctx)
    assert head.materialize() == 0.0  # untimed: the head's result is now cached
    out = []
    for _ in range(runs):
        gc.collect()
        with Timer() as t:
            plan = head.execution_plan(show=False)
        assert not plan.to_run, plan
        out.append(t.sample.__dict__)
    return {"ours": out}


def scaling_run(kind: str, n: int) -> dict[str, float]:
    """One run in this fresh process: ``ours`` builds an n-chain and materializes it (planning included, as
    users call it); ``plain`` builds n plain objects and walks them into a dict; ``plain-nogc`` the same with
    the garbage collector off. The collector is on otherwise, as users run."""
    if kind == "ours":
        gc.collect()
        with Timer() as build:
            head = w.chain(n)
        with Timer() as run:
            assert head.materialize() == n - 1
        return {
            "wall": build.sample.wall + run.sample.wall,
            "cpu": build.sample.cpu + run.sample.cpu,
            "build": build.sample.wall,
            "materialize": run.sample.wall,
        }
    if kind == "plain-nogc":
        gc.disable()
    gc.collect()
    with Timer() as t:
        _plain_walk(n)
    return {"wall": t.sample.wall, "cpu": t.sample.cpu}


class _Plain:
    __slots__ = ("dependencies", "name_alias")

    def __init__(self, dep: _Plain | None, name: str) -> None:
        self.dependencies = [dep] if dep is not None else []
        self.name_alias = name


def _plain_walk(n: int) -> None:
    """Build a chain of n plain objects and walk it once into a name -> dependencies dict (no job-orchestra)."""
    node = None
    for i in range(n):
        node = _Plain(node, f"s{i}")
    seen: set[int] = set()
    deps: dict[str, tuple[str, ...]] = {}
    stack = [node]
    while stack:
        step = stack.pop()
        for d in step.dependencies:
            if id(d) not in seen:
                seen.add(id(d))
                stack.append(d)
        deps[step.name_alias] = tuple(d.name_alias for d in step.dependencies)
    assert len(deps) == n


def scaling(small: int, large: int, runs: int) -> dict[str, dict[str, list[dict]]]:
    """Fresh-process runs of every kind at both sizes, interleaved."""
    out: dict[str, dict[str, list[dict]]] = {k: {"small": [], "large": []} for k in ("ours", "plain", "plain-nogc")}
    for _ in range(runs):
        for kind in out:
            out[kind]["small"].append(run_worker("goals_planning", "scaling_run", kind, small))
            out[kind]["large"].append(run_worker("goals_planning", "scaling_run", kind, large))
    return out


def info_row(item: str, what: str, fig: Figure, ref: Figure | None, timed: str, notes: str = "") -> Row:
    row = absolute_row(item, what, fig, ref, 0, timed, notes=notes)
    row.goal, row.met = "(for scale)", None
    return row


def rows(quick: bool) -> list[dict]:
    runs = 3 if quick else 5
    out: list[dict] = []

    n = 20_000 if quick else 100_000
    got = run_worker("goals_planning", "noop_materialize", n, runs)
    per_step = 1e6 / n
    ours = figure([_s(d) for d in got["ours"]], "us/step", per_step)
    floor = figure([_s(d) for d in got["floor"]], "us/step", per_step)
    out.append(
        absolute_row(
            "4",
            f"no-op materialize() of an all-cached {n:,}-step chain, per step",
            ours,
            floor,
            2.0,
            "ours: head.materialize() when every step's Context holds its result (graph, plan, checks); reference: "
            "a Python loop doing one `step.name in ctx` per step",
        ).as_dict()
    )

    try:
        import numpy  # noqa: F401
    except ImportError:
        out.append({"skipped": "item 4 (hashing): numpy is not installed"})
    else:
        for nbytes, goal in ((2**28 if quick else 2**30, True), (100 * 2**20, False)):
            got = run_worker("goals_planning", "hashing", nbytes, runs)
            size = f"{nbytes // 2**30} GiB" if nbytes >= 2**30 else f"{nbytes // 2**20} MiB"
            fig, ref = figure([_s(d) for d in got["ours"]]), figure([_s(d) for d in got["raw"]])
            what = f"hash a {size} float64 array: fingerprint.hash_value / raw xxh3_128"
            timed = "ours: job_orchestra.fingerprint.hash_value(arr); reference: xxhash.xxh3_128_hexdigest(arr.data)"
            if goal:
                from harness import ratio_row

                out.append(ratio_row("4", what, fig, ref, 1.1, timed).as_dict())
            else:
                out.append(info_row("4", what, fig, ref, timed).as_dict())
        got = run_worker("goals_planning", "replan_from_data", 100 * 2**20, runs)
        out.append(
            info_row(
                "4",
                "execution_plan() of an all-cached Step.from_data(100 MiB array) pipeline (2 steps)",
                figure([_s(d) for d in got["ours"]]),
                None,
                "head.execution_plan(show=False); compare with the 100 MiB hash above: a plan that re-hashes the "
                "parameters costs at least that",
            ).as_dict()
        )

    small, large = (2_000, 20_000) if quick else (10_000, 100_000)
    got = scaling(small, large, runs)

    def growth(kind: str, clock: str = "wall") -> Figure:
        pairs = zip(got[kind]["large"], got[kind]["small"])
        return Figure("x", [a[clock] / b[clock] for a, b in pairs])

    ours, plain, nogc = growth("ours"), growth("plain"), growth("plain-nogc")
    label = f"{large // 1000}k/{small // 1000}k"
    row = absolute_row(
        "4",
        f"build + materialize of a {label} chain: time ratio, garbage collector on",
        ours,
        plain,
        11.0,
        "each run a fresh interpreter: build the chain of trivial steps, then head.materialize() (which plans); "
        "reference: the same growth for building and walking plain Python objects, collector on",
        notes=f"plain objects with the collector off: {nogc.median:.1f}x [{min(nogc.runs):.1f}-{max(nogc.runs):.1f}]; "
        f"on CPU time: ours {growth('ours', 'cpu').median:.1f}x, plain objects {growth('plain', 'cpu').median:.1f}x "
        f"(collector on), {growth('plain-nogc', 'cpu').median:.1f}x (off)",
    )
    out.append(row.as_dict())
    # What the build alone (the caller's loop creating the steps, before job-orchestra is called) leaves of the
    # goal: the ratio ours would have if everything after the build cost exactly 10x its small figure.
    pairs = list(zip(got["ours"]["large"], got["ours"]["small"]))
    build_growth = Figure("x", [a["build"] / b["build"] for a, b in pairs])
    linear = Figure("x", [(a["build"] + (large / small) * b["materialize"]) / b["wall"] for a, b in pairs])
    out.append(
        info_row(
            "4",
            f"the same, if materialize() grew exactly linearly: {label} ratio left by the build alone",
            linear,
            None,
            "from the runs above: (build of the large chain + 10 x materialize of the small one) / (build + "
            "materialize of the small one); below the goal only if the build leaves room for it",
            notes=f"the build alone (Start() and Inc(depends_on=...) in a loop, collector on) grows "
            f"{build_growth.median:.1f}x [{min(build_growth.runs):.1f}-{max(build_growth.runs):.1f}]",
        ).as_dict()
    )
    for size_name, size in (("small", small), ("large", large)):
        build = Figure("us/step", [d["build"] * 1e6 / size for d in got["ours"][size_name]])
        mat = Figure("us/step", [d["materialize"] * 1e6 / size for d in got["ours"][size_name]])
        tot = figure([_s(d) for d in got["ours"][size_name]], "us/step", 1e6 / size)
        out.append(
            info_row(
                "4",
                f"build + materialize of a {size:,}-step chain, per step",
                tot,
                None,
                "build the chain, then head.materialize(); fresh interpreter, collector on",
                notes=f"of which build {build.median:.2f}, materialize {mat.median:.2f} us/step (medians)",
            ).as_dict()
        )
    return out


def _s(d: dict) -> Any:
    from harness import Sample

    return Sample(d["wall"], d["cpu"], d.get("children_cpu", 0.0))
