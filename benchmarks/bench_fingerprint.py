"""Cost of fingerprints: build + plan + materialize per step on long chains, with and without a Context.

Prints microseconds per step (best of 3 runs per phase); the goal on a 2-core machine is under 10 µs per step
in total, with stale detection on. Also times hashing a large numpy array (fingerprints of Step.from_data).
Run it with PYTHONPATH pointing at another checkout to compare before and after a change.

    python benchmarks/bench_fingerprint.py [N ...]
"""

from __future__ import annotations

import gc
import sys
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


def timed(n: int, with_ctx: bool) -> dict[str, float]:
    gc.collect()
    ctx = Context() if with_ctx else None
    t0 = time.perf_counter()
    head = chain(n, ctx)
    t1 = time.perf_counter()
    plan = head.execution_plan(show=False)
    t2 = time.perf_counter()
    assert head.materialize() == n
    t3 = time.perf_counter()
    out = {"build": t1 - t0, "plan": t2 - t1, "materialize": t3 - t2}
    if with_ctx:
        t4 = time.perf_counter()
        again = head.execution_plan(show=False)  # everything cached and fresh: fingerprints checked
        out["replan (all cached)"] = time.perf_counter() - t4
        assert not again.to_run[:-1] and len(plan) == n
    return out


def best_of(repeats: int, n: int, with_ctx: bool) -> dict[str, float]:
    """The fastest of ``repeats`` runs, phase by phase: this machine is shared, the minimum is the signal."""
    runs = [timed(n, with_ctx) for _ in range(repeats)]
    return {phase: min(r[phase] for r in runs) for phase in runs[0]}


def main(sizes: list[int], repeats: int = 3) -> None:
    for with_ctx in (False, True):
        for n in sizes:
            t = best_of(repeats, n, with_ctx)
            total = t["build"] + t["plan"] + t["materialize"]
            parts = ", ".join(f"{k} {v / n * 1e6:.2f}" for k, v in t.items())
            label = "ctx on every step" if with_ctx else "no ctx"
            print(f"chain {n:>7,} {label:<18}: total {total / n * 1e6:6.2f} µs/step ({parts})")
    try:
        import numpy as np
    except ImportError:
        return
    try:
        from job_orchestra.fingerprint import hash_value
    except ImportError:
        return

    for mb in (100, 1000):
        arr = np.ones(mb * 2**20 // 8)
        t0 = time.perf_counter()
        hash_value(arr)
        dt = time.perf_counter() - t0
        print(f"hash of a {mb} MB float64 array: {dt:.3f} s ({mb / dt:,.0f} MB/s)")
        del arr


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
