"""Cost of fingerprints: a long chain with a Context on every step against the same chain without one.

The goal (issue "fingerprints that are exactly right"): fingerprinting a 100k-step chain with a Context on
every step costs at most 2x the same chain without Contexts. Both chains are timed in the same run,
alternately, several times; printed are the median and the spread (min-max) of each phase in µs per step,
wall time and CPU time side by side, and the ratio with/without Context. The load average at the start is
printed too: this machine is shared.

Then: a big array put into a Context by hand is hashed once per assignment, not at every plan (first plan
against the next ones), and the hashing speed of large arrays.

    python benchmarks/bench_fingerprint.py [N] [--runs R]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

from job_orchestra import Context, Step


class Inc(Step):
    def run(self, x=0):
        return x + 1


def chain(n: int, ctx: Context | None) -> Step:
    step = Inc(name_alias="s0", ctx=ctx)
    for i in range(1, n):
        step = Inc(depends_on=step, name_alias=f"s{i}", ctx=ctx)
    return step


class Clock:
    """Wall and CPU time of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def timed(n: int, with_ctx: bool) -> dict[str, tuple[float, float]]:
    gc.collect()
    ctx = Context() if with_ctx else None
    out = {}
    with Clock() as c:
        head = chain(n, ctx)
    out["build"] = (c.wall, c.cpu)
    with Clock() as c:
        plan = head.execution_plan(show=False)
    out["plan"] = (c.wall, c.cpu)
    with Clock() as c:
        assert head.materialize() == n
    out["materialize"] = (c.wall, c.cpu)
    with Clock() as c:
        again = head.execution_plan(show=False)  # with a Context: everything cached, fingerprints checked
    out["replan"] = (c.wall, c.cpu)
    assert len(plan) == n and len(again) == n
    out["total"] = tuple(sum(v[i] for k, v in out.items() if k != "replan") for i in (0, 1))  # type: ignore[assignment]
    return out


def spread(values: list[float], n: int) -> str:
    us = sorted(v / n * 1e6 for v in values)
    return f"{statistics.median(us):6.2f} ({us[0]:.2f}-{us[-1]:.2f})"


def chain_ratio(n: int, runs: int) -> None:
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    results: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(runs):  # alternate, so that a burst of load hits both sides alike
        for with_ctx in (False, True):
            results[with_ctx].append(timed(n, with_ctx))
    print(f"chain of {n:,} steps, {runs} runs each; µs per step, median (min-max)")
    print(f"{'phase':<12} {'clock':<5} {'no ctx':>22} {'ctx on every step':>22} {'ratio (median)':>15}")
    for phase in ("build", "plan", "materialize", "replan", "total"):
        for i, clock in enumerate(("wall", "cpu")):
            without = [r[phase][i] for r in results[False]]
            with_ = [r[phase][i] for r in results[True]]
            ratio = statistics.median(with_) / statistics.median(without)
            print(f"{phase:<12} {clock:<5} {spread(without, n):>22} {spread(with_, n):>22} {ratio:>14.2f}x")


def hand_set_array_is_hashed_once() -> None:
    try:
        import numpy as np
    except ImportError:
        return
    ctx = Context()
    ctx["raw"] = np.ones(2**30 // 8)  # 1 GiB, put in by hand

    class Use(Step):
        def run(self, raw):
            return float(raw[0])

    raw = Step.from_data(None, name_alias="raw")
    raw.ctx = ctx  # its result is the hand-set array
    head = Use(depends_on=raw, ctx=ctx)
    times = []
    for _ in range(3):
        with Clock() as c:
            head.execution_plan(show=False)
        times.append(c.wall)
    print(
        "plan with a 1 GiB array put into the Context by hand: first "
        f"{times[0] * 1e3:.1f} ms (hashes it), then {times[1] * 1e3:.1f} and {times[2] * 1e3:.1f} ms (not again)"
    )
    del ctx


def array_hashing_speed() -> None:
    try:
        import numpy as np

        from job_orchestra.fingerprint import hash_value
    except ImportError:
        return
    for mib in (100, 1000):
        arr = np.ones(mib * 2**20 // 8)
        with Clock() as c:
            hash_value(arr)
        print(f"hash of a {mib:,} MiB float64 array: {c.wall:.3f} s ({mib / c.wall:,.0f} MiB/s)")
        del arr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    chain_ratio(args.n, args.runs)
    hand_set_array_is_hashed_once()
    array_hashing_speed()


if __name__ == "__main__":
    main()
