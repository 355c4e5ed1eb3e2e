"""Parallel execution benchmarks: figures and ratios measured in one run on this machine.

    python benchmarks/parallel.py            # everything, peers included when their environment exists
    python benchmarks/parallel.py --quick    # smaller sizes, for a smoke run

1. 16 independent steps sleeping 0.3 s, serial and on 16 threads (goal: <= 0.5 s on threads).
2. 4 CPU-bound pure-Python steps, serial, on 2 processes and on a 2-worker Dask LocalCluster (goal: >= 1.7x).
3. Scheduling overhead per step on threads for a 10,000-step wide pipeline of trivial steps (plus serial).
4. The same pipelines on Apache Hamilton and pipefunc, side by side. They are never dependencies of
   job-orchestra: ``benchmarks/setup_peers.sh`` installs them in their own environment (default
   /tmp/benchvenv, or $JO_BENCH_PEERS_PYTHON), and this script runs them there in a subprocess.

The same work is inside every library's timed region: building the pipeline (job-orchestra's Step objects,
Hamilton's driver, pipefunc's PipeFunc and Pipeline objects) and running it. Outside it, for all: defining the
functions or classes (the peers' generated modules are compiled beforehand, as ours are at import).
Figures are the median of the runs, with min-max. The goal table of issue 13 is ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SLEEP = 0.3
N_SLEEPERS = 16
N_CPU = 4
CPU_LOOPS = 10_000_000  # about 0.5 s of pure Python per step on this machine
N_WIDE = 10_000
PEER_BUDGET = 60  # seconds a peer gets for one run of the wide pipeline
PEERS_PYTHON = os.environ.get("JO_BENCH_PEERS_PYTHON", "/tmp/benchvenv/bin/python")


# -- the work, shared by every library --------------------------------------------------------------------
def sleep_a_bit(i: int) -> int:
    time.sleep(SLEEP)
    return i


def burn(loops: int) -> int:
    """Pure-Python CPU work that holds the GIL."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[dict[str, float], Any]:
    """Wall seconds of ``repeat`` runs of ``fn``: median, min, max, and the median CPU time of this process."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        gc.collect()
        cpu, started = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    stats = {"median": statistics.median(walls), "min": min(walls), "max": max(walls)}
    stats["cpu"] = statistics.median(cpus)
    return stats, out


# -- job-orchestra ------------------------------------------------------------------------------------------
if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the job_orchestra of this checkout

try:  # the peers' environment runs this file without job-orchestra
    from job_orchestra import Step
except ImportError:
    Step = object  # type: ignore[assignment,misc]


class Sleeper(Step):
    def __init__(self, i: int) -> None:
        super().__init__(name_alias=f"sleep{i}")
        self.i = i

    def run(self) -> int:
        return sleep_a_bit(self.i)


class Burner(Step):
    def __init__(self, i: int, loops: int) -> None:
        super().__init__(name_alias=f"burn{i}")
        self.loops = loops

    def run(self) -> int:
        return burn(self.loops)


class Trivial(Step):
    def __init__(self, i: int) -> None:
        super().__init__(name_alias=f"t{i}")
        self.i = i

    def run(self) -> int:
        return self.i


class Total(Step):
    def run(self, *parts: int) -> int:
        return sum(parts)


def jo_sleepers(executor: Any, max_workers: int | None = None) -> int:
    head = Total(depends_on=[Sleeper(i) for i in range(N_SLEEPERS)])
    return head.materialize(executor, max_workers=max_workers)


def jo_burners(executor: Any, loops: int, max_workers: int | None = None) -> int:
    head = Total(depends_on=[Burner(i, loops) for i in range(N_CPU)])
    return head.materialize(executor, max_workers=max_workers)


def jo_wide(executor: Any, n: int, max_workers: int | None = None) -> int:
    head = Total(depends_on=[Trivial(i) for i in range(n)])
    return head.materialize(executor, max_workers=max_workers)


def measure_job_orchestra(quick: bool) -> dict[str, float]:
    loops = CPU_LOOPS // 4 if quick else CPU_LOOPS
    wide = N_WIDE // 10 if quick else N_WIDE
    r: dict[str, float] = {}
    r["sleep serial"], out = timed(lambda: jo_sleepers(None))
    assert out == sum(range(N_SLEEPERS))
    r["sleep threads"], out = timed(lambda: jo_sleepers("threads", N_SLEEPERS), repeat=3)
    assert out == sum(range(N_SLEEPERS))

    expected = N_CPU * burn(loops)
    r["cpu serial"], out = timed(lambda: jo_burners(None, loops), repeat=3)
    assert out == expected
    r["cpu processes"], out = timed(lambda: jo_burners("processes", loops, 2), repeat=3)
    assert out == expected
    from concurrent.futures import ProcessPoolExecutor

    from job_orchestra.executors import process_context

    with ProcessPoolExecutor(2, mp_context=process_context()) as pool:
        jo_burners(pool, 1000)  # workers up and warm, as for the Dask cluster
        r["cpu process pool"], out = timed(lambda: jo_burners(pool, loops), repeat=3)
        assert out == expected
        # The ceiling of this machine right now: the same work through the bare pool, no orchestration.
        r["cpu bare pool.map"], outs = timed(lambda: list(pool.map(burn, [loops] * N_CPU)), repeat=3)
        assert sum(outs) == expected
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("  (dask.distributed not installed: Dask figures skipped)")
    else:
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            client.run(burn, 1000)  # workers up and warm; the cluster's start-up is not counted
            r["cpu dask"], out = timed(lambda: jo_burners(client, loops), repeat=3)
            assert out == expected

    for n in sorted({min(1000, wide), wide}):
        r[f"wide {n} serial"], out = timed(lambda n=n: jo_wide(None, n), repeat=2)
        assert out == sum(range(n))
        r[f"wide {n} threads"], out = timed(lambda n=n: jo_wide("threads", n, 2), repeat=2)
        assert out == sum(range(n))
    return r


# -- peers (run in their own environment) -----------------------------------------------------------------
def _make_module(name: str, source: str) -> Any:
    import types

    module = types.ModuleType(name)
    module.__dict__.update(sleep_a_bit=sleep_a_bit, burn=burn)
    exec(source, module.__dict__)
    sys.modules[name] = module
    return module


def _fan_in_source(n: int, body: str, prefix: str) -> str:
    """Source of n independent functions and a ``total`` that takes them all (how both peers declare a DAG)."""
    lines = [f"def {prefix}{i}() -> int:\n    return {body.format(i=i)}\n" for i in range(n)]
    params = ", ".join(f"{prefix}{i}: int" for i in range(n))
    names = ", ".join(f"{prefix}{i}" for i in range(n))
    lines.append(f"def total({params}) -> int:\n    return sum([{names}])\n")
    return "\n".join(lines)


def measure_hamilton(quick: bool) -> dict[str, Any]:
    from hamilton import driver
    from hamilton.plugins.h_threadpool import FutureAdapter

    loops = CPU_LOOPS // 4 if quick else CPU_LOOPS
    wide = N_WIDE // 10 if quick else N_WIDE
    r: dict[str, Any] = {}

    sleepers = _make_module("hamilton_sleepers", _fan_in_source(N_SLEEPERS, "sleep_a_bit({i})", "s"))

    def run_sleepers(threads: bool) -> int:
        builder = driver.Builder().with_modules(sleepers)
        if threads:
            builder = builder.with_adapters(FutureAdapter(max_workers=N_SLEEPERS))
        return builder.build().execute(["total"])["total"]

    r["sleep serial"], out = timed(lambda: run_sleepers(False))
    assert out == sum(range(N_SLEEPERS))
    r["sleep threads"], out = timed(lambda: run_sleepers(True), repeat=3)
    assert out == sum(range(N_SLEEPERS))

    # The same graph as ours: N_CPU independent functions and their total, serial.
    burners = _make_module("hamilton_burners", _fan_in_source(N_CPU, f"burn({loops})", "b"))
    expected = N_CPU * burn(loops)
    r["cpu serial"], out = timed(lambda: driver.Builder().with_modules(burners).build().execute(["total"])["total"], 3)
    assert out == expected
    # Not measured on processes: Hamilton sends work to processes only inside the Parallelizable/Collect blocks
    # of its dynamic execution (a generator node fanning out at run time), a different graph from these
    # independent steps, and its thread adapter takes no other executor. Comparing across graphs would not say
    # what the label says, so the row is left out.
    r["cpu processes"] = "not comparable: Hamilton runs processes only for Parallelizable/Collect graphs"

    def run_wide(module: Any, threads: bool) -> int:
        builder = driver.Builder().with_modules(module)
        if threads:
            builder = builder.with_adapters(FutureAdapter(max_workers=2))
        return builder.build().execute(["total"])["total"]

    _measure_wide(r, wide, lambda n: _make_module("hamilton_wide", _fan_in_source(n, "{i}", "t")), run_wide)
    return r


def _measure_wide(
    r: dict[str, Any], wide: int, prepare: Callable[[int], Any], run_wide: Callable[[Any, bool], int]
) -> None:
    """A peer's wide pipeline at 1,000 steps then at full size, serial then on 2 threads, each run given
    PEER_BUDGET seconds: a peer that is slow or cannot build it gets a note instead of a figure.
    ``prepare(n)`` (compiling the generated functions) runs outside the timed region, ``run_wide`` inside."""
    import signal

    def out_of_time(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took more than {PEER_BUDGET} s")

    previous = signal.signal(signal.SIGALRM, out_of_time)
    try:
        sizes = sorted({min(1000, wide), wide})
        for n in sizes:
            prepared = prepare(n)
            for threads in (False, True):
                key = f"wide {n} {'threads' if threads else 'serial'}"
                smaller = r.get(f"wide {sizes[0]} {'threads' if threads else 'serial'}") if n > sizes[0] else None
                if isinstance(smaller, str) or (smaller and smaller["median"] * n / sizes[0] > PEER_BUDGET):
                    r[key] = f"not run: {sizes[0]:,} steps would take more than {PEER_BUDGET} s at this size"
                    continue
                signal.alarm(PEER_BUDGET)
                try:
                    r[key], out = timed(lambda p=prepared, threads=threads: run_wide(p, threads))
                    assert out == sum(range(n))
                except Exception as exc:
                    r[key] = f"{type(exc).__name__}: {exc}"[:120]
                finally:
                    signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def measure_pipefunc(quick: bool) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from pipefunc import PipeFunc, Pipeline

    loops = CPU_LOOPS // 4 if quick else CPU_LOOPS
    wide = N_WIDE // 10 if quick else N_WIDE
    r: dict[str, Any] = {}

    def compiled(prefix: str, n: int, body: str) -> tuple[Any, str, int]:
        """The generated functions, compiled outside the timed regions (as our classes are at import)."""
        return _make_module(f"pipefunc_{prefix}", _fan_in_source(n, body, prefix)), prefix, n

    def fan_in(module: Any, prefix: str, n: int) -> Pipeline:
        """The pipeline built from them: inside the timed regions, as our Step objects are."""
        funcs = [PipeFunc(getattr(module, f"{prefix}{i}"), output_name=f"{prefix}{i}") for i in range(n)]
        funcs.append(PipeFunc(module.total, output_name="total"))
        return Pipeline(funcs)

    def run(source: tuple[Any, str, int], executor: Any) -> int:
        pipeline = fan_in(*source)
        if executor is None:
            return pipeline.run("total", kwargs={})
        with executor:
            out = pipeline.map({}, parallel=True, executor=executor, storage="dict", show_progress=False)
        return out["total"].output

    sleepers = compiled("s", N_SLEEPERS, "sleep_a_bit({i})")
    r["sleep serial"], out = timed(lambda: run(sleepers, None))
    assert out == sum(range(N_SLEEPERS))
    r["sleep threads"], out = timed(lambda: run(sleepers, ThreadPoolExecutor(N_SLEEPERS)), repeat=3)
    assert out == sum(range(N_SLEEPERS))

    burners = compiled("b", N_CPU, f"burn({loops})")
    expected = N_CPU * burn(loops)
    r["cpu serial"], out = timed(lambda: run(burners, None), repeat=3)
    assert out == expected
    r["cpu processes"], out = timed(lambda: run(burners, ProcessPoolExecutor(2)), repeat=3)
    assert out == expected

    _measure_wide(
        r,
        wide,
        lambda n: compiled("t", n, "{i}"),
        lambda source, threads: run(source, ThreadPoolExecutor(2) if threads else None),
    )
    return r


def _peers_here(quick: bool) -> dict[str, Any]:
    """Measure whichever peers import in this interpreter; a failing peer is reported, not fatal."""
    from importlib import metadata

    results: dict[str, Any] = {}
    for name, dist, measure in (
        ("Hamilton", "sf-hamilton", measure_hamilton),
        ("pipefunc", "pipefunc", measure_pipefunc),
    ):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            results[name] = {"skipped": f"{dist} is not installed"}
            continue
        try:
            results[f"{name} {version}"] = measure(quick)
        except Exception as exc:  # a peer that cannot run this pipeline: say why
            results[f"{name} {version}"] = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
    return results


def measure_peers(quick: bool) -> dict[str, Any]:
    """Run the peers in their own environment (a subprocess), or here if they happen to be installed."""
    try:
        import hamilton  # noqa: F401
        import pipefunc  # noqa: F401
    except ImportError:
        pass
    else:
        return _peers_here(quick)
    if not Path(PEERS_PYTHON).exists():
        return {"skipped": f"no peer environment at {PEERS_PYTHON}: run benchmarks/setup_peers.sh"}
    args = [PEERS_PYTHON, str(Path(__file__).resolve()), "--peers-json"] + (["--quick"] if quick else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"skipped": f"the peer run failed: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report ---------------------------------------------------------------------------------------------------
def _row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<62} {value:>22}  {note}")


def _secs(stats: dict[str, float], per: int = 1) -> str:
    """``median [min-max]`` of a timed figure, in seconds, or in microseconds per step when ``per`` > 1."""
    if per > 1:
        m, lo, hi = (stats[k] / per * 1e6 for k in ("median", "min", "max"))
        return f"{m:.1f} us [{lo:.1f}-{hi:.1f}]"
    return f"{stats['median']:.2f} s [{stats['min']:.2f}-{stats['max']:.2f}]"


def report(name: str, r: dict[str, Any]) -> None:
    print(f"\n{name}")
    if "skipped" in r:
        print(f"  skipped: {r['skipped']}")
        return
    serial, threads = r["sleep serial"], r["sleep threads"]
    _row(f"{N_SLEEPERS} x sleep({SLEEP}) serial", _secs(serial))
    ok = "goal <= 0.5 s: " + ("met" if threads["median"] <= 0.5 else "MISSED")
    speed = serial["median"] / threads["median"]
    _row(f"{N_SLEEPERS} x sleep({SLEEP}) on {N_SLEEPERS} threads", _secs(threads), f"{speed:.1f}x  {ok}")
    cpu = r["cpu serial"]
    _row(f"{N_CPU} CPU-bound steps serial", _secs(cpu))
    where = {
        "processes": '"processes" (2 new workers per run)',
        "process pool": "a running 2-process pool",
        "dask": "a running 2-worker Dask LocalCluster",
        "bare pool.map": "the same pool, bare pool.map (reference)",
    }
    for kind in where:
        t = r.get(f"cpu {kind}")
        if isinstance(t, str):
            _row(f"{N_CPU} CPU-bound steps on {where[kind]}", "n/a", t)
        elif t is not None:
            up = cpu["median"] / t["median"]
            ok = "goal >= 1.7x: " + ("met" if up >= 1.7 else "MISSED")
            _row(f"{N_CPU} CPU-bound steps on {where[kind]}", _secs(t), f"{up:.2f}x  {ok}")
    for key in sorted((k for k in r if k.startswith("wide ")), key=lambda k: (int(k.split()[1]), k)):
        _, n, how = key.split()
        label = f"{int(n):,}-step wide pipeline, {'2 threads' if how == 'threads' else 'serial'}, build + run per step"
        value = r[key]
        if isinstance(value, str):
            _row(label, "n/a", value)
        else:
            _row(label, _secs(value, int(n)))


def main(quick: bool = False, peers: bool = True) -> dict[str, Any]:
    """Measure and print everything; return the figures (seconds) by library."""
    print(f"Parallel benchmarks ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}{', quick' if quick else ''})")
    print("Times are wall-clock seconds of building and running each pipeline, median [min-max] of the runs; each")
    print('speed-up is against the serial run of the same library in this run. "processes" (and pipefunc\'s own')
    print("ProcessPoolExecutor) start their pool inside each run; the running pool and the Dask cluster are started")
    print("beforehand. The peers' generated functions are compiled outside the timed regions, as ours are at import.")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Load average before: {load} (other work on the machine skews the CPU-bound figures)")
    results = {"job-orchestra": measure_job_orchestra(quick)}
    report("job-orchestra", results["job-orchestra"])
    if peers:
        found = measure_peers(quick)
        if "skipped" in found:
            print(f"\nPeers skipped: {found['skipped']}")
        for name, r in found.items():
            if name != "skipped":
                report(name, r)
                results[name] = r
        print("\n  (peers: Hamilton runs threads through its FutureAdapter, not processes (see above); pipefunc")
        print("   through Pipeline.map with an executor. The peers are not measured on Dask. They run after")
        print("   job-orchestra, in their own environment: on a loaded machine compare each library's speed-ups,")
        print("   not seconds across libraries. pipefunc's wide figures are almost all Pipeline construction,")
        print("   which grows with the square of the steps: 200 steps took 1.2 s to build and 4 ms to run.)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--no-peers", action="store_true", help="skip Hamilton and pipefunc")
    parser.add_argument("--peers-json", action="store_true", help=argparse.SUPPRESS)  # inside the peer env
    args = parser.parse_args()
    if args.peers_json:
        print(json.dumps(_peers_here(args.quick)))
    else:
        main(quick=args.quick, peers=not args.no_peers)
