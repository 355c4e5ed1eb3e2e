"""Issue 13 items 1 and 2: job-orchestra on a Dask cluster, a process pool and a thread pool, each against the
same graph submitted by hand to the same running cluster or pool, in the same process, runs interleaved.

Inside every timed region: building the graph (job-orchestra's Step objects, or the submit calls) and running
it to the head's result. Outside: starting the pool or cluster and warming its workers (one untimed run of
each side), checking the result.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import workloads as w
from harness import Figure, Sample, Timer, figure, ratio_row

REGION = "build the graph + run it to the head's result, on a pool/cluster started and warmed beforehand"


def _interleaved(runs: int, sides: dict[str, Callable[[], Any]], expected: Any) -> dict[str, list[Sample]]:
    """Run each side once untimed (warm-up), then ``runs`` timed rounds, the sides alternating each round."""
    for fn in sides.values():
        assert fn() == expected
    out: dict[str, list[Sample]] = {k: [] for k in sides}
    for r in range(runs):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            gc.collect()
            with Timer(children=True) as t:
                value = sides[name]()
            assert value == expected, (name, value, expected)
            out[name].append(t.sample)
    return out


def dask_rows(quick: bool) -> list[dict]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return [{"skipped": "item 1: dask.distributed is not installed (pip install 'job-orchestra[dask]')"}]
    n, runs = (300, 3) if quick else (1000, 5)
    rows = []
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        for shape, ours, raw, expected in (
            ("wide", lambda: w.wide(n).materialize(client), lambda: w.dask_wide(client, n), sum(range(n))),
            ("chain", lambda: w.chain(n).materialize(client), lambda: w.dask_chain(client, n), n - 1),
        ):
            s = _interleaved(runs, {"ours": ours, "raw": raw}, expected)
            rows.append(
                ratio_row(
                    "1",
                    f"Dask 2-worker LocalCluster, {n:,}-step {shape}: materialize(client) / raw client.submit",
                    figure(s["ours"]),
                    figure(s["raw"]),
                    1.2,
                    REGION + "; raw: client.submit(f, *futures, pure=False) for every step, then the head's .result()",
                ).as_dict()
            )
    return rows


def pool_rows(quick: bool) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from job_orchestra.executors import process_context

    runs = 3 if quick else 5
    rows = []
    n = 200 if quick else 1000
    with ProcessPoolExecutor(2, mp_context=process_context()) as pool:
        for shape, ours, bare, expected in (
            ("wide", lambda: w.wide(n).materialize(pool), lambda: w.pool_wide(pool, n), sum(range(n))),
            ("chain", lambda: w.chain(n).materialize(pool), lambda: w.pool_chain(pool, n), n - 1),
        ):
            s = _interleaved(runs, {"ours": ours, "bare": bare}, expected)
            rows.append(
                ratio_row(
                    "2",
                    f"2-process pool, {n:,}-step {shape}: materialize(pool) / bare pool.submit",
                    figure(s["ours"]),
                    figure(s["bare"]),
                    2.0,
                    REGION + "; bare: pool.submit + .result() of the same graph (a chain waits for each result)",
                ).as_dict()
            )
        loops = 2_500_000 if quick else 10_000_000
        cpu_n = 4
        expected = cpu_n * w.burn(loops)
        s = _interleaved(
            runs,
            {
                "serial": lambda: sum(w.burn(loops) for _ in range(cpu_n)),
                "ours": lambda: w.burners(cpu_n, loops).materialize(pool),
                "map": lambda: sum(pool.map(w.burn, [loops] * cpu_n)),
            },
            expected,
        )
        serial = figure(s["serial"])
        # speed-up over the plain serial loop, job-orchestra's against the bare pool.map ceiling, run by run
        ours_up = [a.wall / b.wall for a, b in zip(s["serial"], s["ours"])]
        map_up = [a.wall / b.wall for a, b in zip(s["serial"], s["map"])]
        row = ratio_row(
            "2",
            f"{cpu_n} CPU-bound steps on the 2-process pool: speed-up of materialize(pool) / of bare pool.map",
            Figure("x", ours_up, [x.cpu for x in s["ours"]], [x.children_cpu for x in s["ours"]]),
            Figure("x", map_up, [x.cpu for x in s["map"]], [x.children_cpu for x in s["map"]]),
            0.9,
            f"speed-up = serial loop in this process ({serial.median:.2f} s median) / time on the pool; "
            "ours builds the steps and materializes, the bare side runs pool.map(burn, ...)",
            at_least=True,
            notes="CPU columns: seconds of the parallel runs; the speed-ups depend on the load of the 2 cores",
        )
        rows.append(row.as_dict())

    n = 2000 if quick else 10_000
    with ThreadPoolExecutor(2) as pool:
        for shape, ours, bare, expected in (
            ("wide", lambda: w.wide(n).materialize(pool), lambda: w.pool_wide(pool, n), sum(range(n))),
            ("chain", lambda: w.chain(n).materialize(pool), lambda: w.pool_chain(pool, n), n - 1),
        ):
            s = _interleaved(runs, {"ours": ours, "bare": bare}, expected)
            rows.append(
                ratio_row(
                    "2",
                    f"2-thread pool, {n:,}-step {shape}: materialize(pool) / bare pool.submit",
                    figure(s["ours"]),
                    figure(s["bare"]),
                    1.5,
                    REGION + "; bare: pool.submit + .result() of the same graph (a chain waits for each result)",
                ).as_dict()
            )
    return rows
