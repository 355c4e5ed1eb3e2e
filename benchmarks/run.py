"""Every speed goal of issue 13 (items 1-5) as one table: figure, reference, ratio, goal, met?

    python benchmarks/run.py                  # everything (about 15 minutes on 2 cores)
    python benchmarks/run.py --quick          # smaller sizes, fewer runs, no peers: a smoke run of about 2 minutes
    python benchmarks/run.py --only dask,startup --json out.json --no-peers

Each figure is compared with a reference measured in the same run, on the same machine, runs interleaved.
Figures are medians of several runs, with min-max; CPU time (this process, and child processes: pool and
Dask workers) is printed beside wall time. benchmarks/README.md says what each timed region contains.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's job_orchestra, and the benchmark modules

GROUPS = ("startup", "dask", "pools", "snapshots", "planning", "map", "cache")
"""In the order they run by default. ``startup`` goes first: after the Dask and pool groups have started and
stopped their processes, a fresh interpreter's import cost more CPU for a while (job_orchestra 59 ms instead
of 22-25 ms, dask 159 ms instead of 101-114 ms, in one full run), so the import row measured that, not the
import."""


def _measure(group: str, quick: bool) -> list[dict]:
    from harness import run_worker

    if group == "dask":
        return run_worker("goals_parallel", "dask_rows", quick, timeout=1800)
    if group == "pools":
        return run_worker("goals_parallel", "pool_rows", quick, timeout=1800)
    if group == "snapshots":
        import goals_snapshots

        return goals_snapshots.rows(quick)
    if group == "planning":
        import goals_planning

        return goals_planning.rows(quick)
    if group == "startup":
        import goals_startup

        return goals_startup.rows(quick)
    if group == "map":
        import goals_map

        return goals_map.rows(quick)
    if group == "cache":
        import goals_cache

        return goals_cache.rows(quick)
    raise ValueError(group)


# -- printing ----------------------------------------------------------------------------------------------
def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s" and value == 0:
        return "0 s"
    if unit == "s":
        if value >= 1:
            return f"{value:.2f} s"
        if value >= 1e-3:
            return f"{value * 1e3:.1f} ms"
        return f"{value * 1e6:.1f} us"
    if unit.startswith("us"):
        return f"{value:.2f} {unit}"
    if unit.startswith("x"):
        return f"{value:.2f}x" + unit[1:]
    return f"{value:.3g} {unit}"


def _spread(f: dict) -> str:
    unit = f["unit"]
    short = "s" if unit == "s" else ""
    lo, hi = fmt(f["min"], unit), fmt(f["max"], unit)
    if short:
        return f"{fmt(f['median'], unit)} [{lo.split()[0]}-{hi}]"
    return f"{fmt(f['median'], unit)} [{lo.split()[0].rstrip('x')}-{hi.split()[0]}]"


def _cpu(f: dict | None) -> str:
    """Median CPU time of the runs, in the figure's unit (seconds for speed-ups, whose runs are ratios)."""
    if not f or "cpu_median" not in f:
        return ""
    unit = "s" if f["unit"].startswith("x") else f["unit"]
    text = f"cpu {fmt(f['cpu_median'], unit)}"
    if "children_cpu_median" in f:
        text += f" + children {fmt(f['children_cpu_median'], unit)}"
    return text


def print_table(rows: list[dict]) -> None:
    head = f"{'item':<4} {'figure: median [min-max]':<30} {'reference':<30} {'ratio [pairs]':<20} {'goal':<15} met?"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "skipped" in r:
            print(f"{'':<4} skipped: {r['skipped']}")
            continue
        ratio = "-"
        if r["ratio"] is not None:
            ratio = f"{r['ratio']:.2f}"
            if r.get("ratio_range"):
                lo, hi = r["ratio_range"]
                ratio += f" [{lo:.2f}-{hi:.2f}]"
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        ref = _spread(r["reference"]) if r["reference"] else "-"
        print(f"{r['item']:<4} {_spread(r['figure']):<30} {ref:<30} {ratio:<20} {r['goal']:<15} {met}")
        print(f"{'':<4} {r['what']}")
        cpu = (_cpu(r["figure"]), _cpu(r["reference"]))
        if any(cpu):
            on_cpu = f"ratio on CPU time {r['cpu_ratio']:.2f}" if r.get("cpu_ratio") else ""
            print(f"{'':<4} {cpu[0]:<30} {cpu[1]:<30} {on_cpu}")
        if r.get("notes"):
            print(f"{'':<4} ({r['notes']})")


def machine() -> dict[str, Any]:
    import job_orchestra

    info: dict[str, Any] = {
        "job_orchestra": str(Path(job_orchestra.__file__).resolve().parent),
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_at_start": list(os.getloadavg()),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["memory_available_gib_at_start"] = round(psutil.virtual_memory().available / 2**30, 1)
    except ImportError:
        pass
    return info


def _git_commit() -> str | None:
    import subprocess

    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE, timeout=10)
    except OSError:
        return None
    return done.stdout.strip() or None


def peers(quick: bool) -> dict[str, Any]:
    """Hamilton and pipefunc side by side (benchmarks/parallel.py), when their environment exists."""
    import parallel

    if not Path(parallel.PEERS_PYTHON).exists():
        print(f"peers: skipped, no environment at {parallel.PEERS_PYTHON} (bash benchmarks/setup_peers.sh)")
        return {"skipped": f"no peer environment at {parallel.PEERS_PYTHON}"}
    return parallel.main(quick=quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs (a smoke run)")
    parser.add_argument("--json", default=str(HERE / "results.json"), help="where to write the results as JSON")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups among {', '.join(GROUPS)}")
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run Hamilton and pipefunc side by side (parallel.py) at the end; default: yes, except with --quick",
    )
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}: choose among {', '.join(GROUPS)}")

    info = machine()
    started = time.perf_counter()
    load = ", ".join(f"{x:.2f}" for x in info["load_at_start"])
    quick = " - QUICK run: smaller sizes and fewer runs than the goals'" if args.quick else ""
    print(f"job-orchestra speed goals (issue 13){quick}")
    memory = info.get("memory_gib", "?")
    print(f"Python {info['python']}, {info['cpus']} CPUs, {memory} GiB; load average at start (1, 5, 15 min): {load}")
    print(f"job_orchestra measured: {info['job_orchestra']} (commit {info['git_commit']})")
    print("figure and reference: median [min-max] of the runs; ratio = figure / reference (medians) [min-max of the")
    print("ratios of paired runs]; CPU: this process + child processes (pool / Dask workers), medians.")
    print()
    rows: list[dict] = []
    for group in groups:
        t0 = time.perf_counter()
        try:
            got = _measure(group, args.quick)
        except Exception as exc:  # one group failing does not hide the others; say what broke
            got = [{"skipped": f"{group}: failed: {type(exc).__name__}: {str(exc)[-600:]}"}]
        for row in got:
            row["group"] = group
        rows.extend(got)
        print(f"  ({group}: {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    print_table(rows)
    measured = [r for r in rows if "skipped" not in r and r["met"] is not None]
    print()
    print(f"goals met: {sum(r['met'] for r in measured)} of {len(measured)}")
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": info,
        "rows": rows,
    }
    if args.peers or (args.peers is None and not args.quick):
        print()
        result["peers"] = peers(args.quick)
    info["load_at_end"] = list(os.getloadavg())
    info["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten to {args.json} ({info['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
