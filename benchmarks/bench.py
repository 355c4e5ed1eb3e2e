"""job-orchestra benchmarks: figures and ratios measured in one run on this machine.

    python benchmarks/bench.py            # core: chains, diamond ladder (+ parallel if available)
    python benchmarks/bench.py --quick    # smaller sizes, for a smoke run

Per-step cost of build + plan + materialize for 10,000- and 100,000-step chains of trivial steps, against
a chain of bare Python calls measured in the same run; the 100k/10k ratio shows whether growth is linear.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from job_orchestra import Step
from job_orchestra.plan import ExecutionPlan


class Start(Step):
    def run(self):
        return 0


class Inc(Step):
    def run(self, x):
        return x + 1


def build_chain(n: int) -> Step:
    step: Step = Start()
    for i in range(n - 1):
        step = Inc(depends_on=step, name_alias=f"s{i}")
    return step


def bare_chain(n: int) -> float:
    """n plain Python calls, each feeding the next: the floor any orchestrator pays on top of."""

    def inc(x):
        return x + 1

    started = time.perf_counter()
    value = 0
    for _ in range(n - 1):
        value = inc(value)
    assert value == n - 1
    return time.perf_counter() - started


class _Plain:
    __slots__ = ("dependencies", "name_alias")

    def __init__(self, dep: _Plain | None, name: str) -> None:
        self.dependencies = [dep] if dep is not None else []
        self.name_alias = name


def plain_walk(n: int) -> float:
    """Build a chain of n plain objects and walk it once into a name -> dependencies dict.

    No job-orchestra code: this shows how this machine's memory hierarchy alone scales from 10k to 100k.
    """
    gc.collect()
    started = time.perf_counter()
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
    return time.perf_counter() - started


def measure_chain(n: int, repeat: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        head = build_chain(n)
        t1 = time.perf_counter()
        ExecutionPlan.of(head)
        t2 = time.perf_counter()
        assert head.materialize() == n - 1
        t3 = time.perf_counter()
        figures = {"build": t1 - t0, "plan": t2 - t1, "materialize": t3 - t2, "bare": bare_chain(n)}
        figures["total"] = figures["build"] + figures["plan"] + figures["materialize"]
        for k, v in figures.items():
            best[k] = min(best.get(k, float("inf")), v)
        del head
    return best


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


def core(quick: bool = False) -> None:
    sizes = (1_000, 10_000) if quick else (10_000, 100_000)
    repeat = 3
    print(f"== chain of N trivial steps: seconds, and microseconds per step (best of {repeat}) ==")
    print(f"{'N':>8} {'build':>9} {'plan':>9} {'materialize':>12} {'total':>9} {'us/step':>8} {'bare us/call':>13}")
    per_step = {}
    for n in sizes:
        f = measure_chain(n, repeat)
        per_step[n] = f["total"] / n * 1e6
        print(
            f"{n:>8} {f['build']:>9.3f} {f['plan']:>9.3f} {f['materialize']:>12.3f} {f['total']:>9.3f} "
            f"{per_step[n]:>8.2f} {f['bare'] / n * 1e6:>13.3f}"
        )
        print(
            f"{'':>8} per step: build {f['build'] / n * 1e6:.2f} us, plan {f['plan'] / n * 1e6:.2f} us, "
            f"materialize {f['materialize'] / n * 1e6:.2f} us; total / bare call = {f['total'] / f['bare']:.0f}x"
        )
    small, large = sizes
    ratio = per_step[large] * large / (per_step[small] * small)
    print(f"time ratio {large // 1000}k/{small // 1000}k = {ratio:.1f} (linear growth: 10; goal <= 12)")
    floor = min(plain_walk(large) for _ in range(repeat)) / min(plain_walk(small) for _ in range(repeat))
    print(
        f"for scale: building and walking {large // 1000}k/{small // 1000}k plain Python objects (no job-orchestra) "
        f"takes {floor:.1f}x as long on this machine"
    )
    print(f"goal: <= 10 us per step -> {'met' if max(per_step.values()) <= 10 else 'NOT met'}")
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
    core(quick=args.quick)
    if not args.core_only:
        try:
            import parallel  # benchmarks/parallel.py
        except ImportError:
            print("(parallel benchmarks not available)")
        else:
            parallel.main(quick=args.quick)


if __name__ == "__main__":
    main()
