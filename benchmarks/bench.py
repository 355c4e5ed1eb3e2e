"""job-orchestra benchmarks: the phases of long chains, run by run, and the diamond ladder.

    python benchmarks/bench.py            # 10,000- and 100,000-step chains (+ parallel.py if available)
    python benchmarks/bench.py --quick    # smaller sizes, for a smoke run

Each run is a fresh interpreter with the garbage collector on, as users run. Timed regions, as users call them:
``build`` (creating the Step objects), ``materialize`` (``head.materialize()``, which plans and runs), and
``total`` = build + materialize of the same run. ``plan alone`` is ``head.execution_plan(show=False)`` on a
chain built afresh in the same process: materialize plans again by itself, so it is not part of ``total``.
Every run is printed, then the median and min-max of the totals. The goal table is ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from goals_planning import scaling_run  # noqa: E402
from harness import Timer, run_worker  # noqa: E402
from workloads import chain  # noqa: E402

from job_orchestra import Step  # noqa: E402


def phases(n: int) -> dict[str, float]:
    """One run in this fresh process: build + materialize timed separately, then a plan of a fresh chain."""
    gc.collect()
    with Timer() as build:
        head = chain(n)
    with Timer() as run:
        assert head.materialize() == n - 1
    del head
    fresh = chain(n)
    gc.collect()
    with Timer() as plan:
        fresh.execution_plan(show=False)
    return {
        "build": build.sample.wall,
        "materialize": run.sample.wall,
        "total": build.sample.wall + run.sample.wall,
        "total_cpu": build.sample.cpu + run.sample.cpu,
        "plan alone": plan.sample.wall,
    }


def diamond_ladder_runs(levels: int) -> int:
    calls = 0

    class Rung(Step):
        def run(self, *xs):
            nonlocal calls
            calls += 1
            return 1

    below = [Rung(name_alias="base")]
    for i in range(levels):
        below = [Rung(depends_on=below, name_alias=f"L{i}a"), Rung(depends_on=below, name_alias=f"L{i}b")]
    Rung(depends_on=below, name_alias="top").materialize()
    return calls


def _spread(values: list[float], scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return f"{statistics.median(v):.2f} [{min(v):.2f}-{max(v):.2f}]"


def core(quick: bool = False, runs: int = 5) -> None:
    sizes = (1_000, 10_000) if quick else (10_000, 100_000)
    cols = ("build", "materialize", "total", "plan alone")
    print(f"== chain of N trivial steps: microseconds per step, {runs} runs, each a fresh interpreter, GC on ==")
    print(f"{'N':>8} {'run':>4} " + " ".join(f"{c:>12}" for c in cols) + f" {'total cpu':>10}")
    totals: dict[int, list[float]] = {}
    for n in sizes:
        got = [run_worker("bench", "phases", n) for _ in range(runs)]
        for i, g in enumerate(got, 1):
            print(
                f"{n:>8} {i:>4} "
                + " ".join(f"{g[c] / n * 1e6:>12.2f}" for c in cols)
                + f" {g['total_cpu'] / n * 1e6:>10.2f}"
            )
        totals[n] = [g["total"] for g in got]
        print(f"{n:>8}  total per step: median [min-max] {_spread(totals[n], 1e6 / n)} us")
    small, large = sizes
    ratios = [a / b for a, b in zip(totals[large], totals[small])]
    print(
        f"total time ratio {large // 1000}k/{small // 1000}k, run by run: median [min-max] {_spread(ratios)} "
        "(linear growth: 10; goal of issue 13: <= 11)"
    )
    print()
    print(
        "== for scale: building and walking a chain of plain Python objects (no job-orchestra), fresh interpreters =="
    )
    for kind, label in (("plain", "garbage collector on "), ("plain-nogc", "garbage collector off")):
        got = {n: [run_worker("goals_planning", "scaling_run", kind, n)["wall"] for _ in range(runs)] for n in sizes}
        growth = [a / b for a, b in zip(got[large], got[small])]
        print(
            f"  {label}: {small:,} {_spread(got[small], 1e6 / small)} us/object, {large:,} "
            f"{_spread(got[large], 1e6 / large)} us/object; ratio {_spread(growth)}"
        )
    print()
    print("== diamond ladder of 30 steps (14 rungs of 2, a base and a top) ==")
    print(f"run() calls: {diamond_ladder_runs(14)} (1.1.4: 49,151)")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--core-only", action="store_true", help="skip the parallel benchmarks")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]} on {sys.platform}")
    core(quick=args.quick, runs=3 if args.quick else 5)
    if not args.core_only:
        import parallel  # benchmarks/parallel.py

        parallel.main(quick=args.quick)


__all__ = ["phases", "scaling_run"]

if __name__ == "__main__":
    main()
