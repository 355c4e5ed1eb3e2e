"""Timing helpers shared by the benchmarks: wall, CPU and children's CPU time of one timed region, medians
and spreads of several runs, rows of the goal table, and fresh worker processes.

A timed region is exactly the code inside ``with Timer() as t:``; everything else (building inputs, checking
results, starting pools) stays outside it, for job-orchestra and for every reference alike.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _children_cpu() -> float:
    """CPU seconds of this process's children: the live ones (pool workers, a Dask cluster) and the reaped."""
    t = os.times()
    total = t.children_user + t.children_system
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return total
    for child in psutil.Process().children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system
    return total


@dataclass
class Sample:
    """One run of a timed region."""

    wall: float
    cpu: float  # this process (time.process_time)
    children_cpu: float  # child processes (pool workers, Dask workers)


class Timer:
    """``with Timer() as t: ...`` then ``t.sample``: wall, process and children's CPU seconds of the block."""

    def __init__(self, children: bool = False) -> None:
        self.children = children
        self.sample = Sample(0.0, 0.0, 0.0)

    def __enter__(self) -> Timer:
        self._kids = _children_cpu() if self.children else 0.0
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        kids = _children_cpu() - self._kids if self.children else 0.0
        self.sample = Sample(wall, cpu, max(kids, 0.0))


@dataclass
class Figure:
    """Several runs of one measurement: median and min-max of the wall time, median CPU times."""

    unit: str  # "s", "us", "ratio", "x"
    runs: list[float]
    cpu: list[float] = field(default_factory=list)
    children_cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def cpu_total(self) -> float | None:
        """Median CPU time of this process plus children, when measured."""
        if not self.cpu:
            return None
        kids = self.children_cpu or [0.0] * len(self.cpu)
        return statistics.median(a + b for a, b in zip(self.cpu, kids))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": self.unit, "median": self.median, "min": min(self.runs), "max": max(self.runs)}
        out["runs"] = self.runs
        if self.cpu:
            out["cpu_median"] = statistics.median(self.cpu)
        if self.children_cpu:
            out["children_cpu_median"] = statistics.median(self.children_cpu)
        return out


def figure(samples: list[Sample], unit: str = "s", scale: float = 1.0) -> Figure:
    """A Figure from timed samples; ``scale`` converts seconds (e.g. 1e6 / n for microseconds per step)."""
    return Figure(
        unit,
        [s.wall * scale for s in samples],
        [s.cpu * scale for s in samples],
        [s.children_cpu * scale for s in samples] if any(s.children_cpu for s in samples) else [],
    )


@dataclass
class Row:
    """One goal of issue 13: a figure, the reference measured in the same run, their ratio and the goal."""

    item: str  # the item of issue 13, e.g. "1"
    what: str
    figure: Figure
    reference: Figure | None
    ratio: float | None  # figure / reference (or as stated in ``goal``)
    goal: str  # e.g. "<= 1.2"
    met: bool | None
    timed: str  # what is inside the timed regions of the figure and of the reference
    ratio_range: tuple[float, float] | None = None  # min-max of the ratios of paired runs
    notes: str = ""
    cpu_ratio: float | None = None  # the same ratio on CPU time (this process + children): steadier under load

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        ref = self.reference
        fc, rc = self.figure.cpu_total(), ref.cpu_total() if ref else None
        if out["cpu_ratio"] is None and fc and rc and ref is not None and self.figure.unit == ref.unit != "x":
            out["cpu_ratio"] = fc / rc
        out["figure"] = self.figure.as_dict()
        out["reference"] = self.reference.as_dict() if self.reference else None
        return out


def ratio_row(
    item: str,
    what: str,
    fig: Figure,
    ref: Figure,
    limit: float,
    timed: str,
    *,
    at_least: bool = False,
    notes: str = "",
) -> Row:
    """A row whose figure is the ratio of medians fig/ref, goal ``<= limit`` (or ``>= limit``)."""
    ratio = fig.median / ref.median
    pairs = [f / r for f, r in zip(fig.runs, ref.runs) if r]
    met = ratio >= limit if at_least else ratio <= limit
    goal = f"{'>=' if at_least else '<='} {limit:g}"
    spread = (min(pairs), max(pairs)) if pairs else None
    return Row(item, what, fig, ref, ratio, goal, met, timed, spread, notes)


def absolute_row(
    item: str, what: str, fig: Figure, ref: Figure | None, limit: float, timed: str, *, notes: str = ""
) -> Row:
    """A row whose goal is on the figure itself (``median <= limit`` in the figure's unit); the reference
    and the ratio show this machine's speed in the same run, for scale."""
    ratio = fig.median / ref.median if ref else None
    pairs = [f / r for f, r in zip(fig.runs, ref.runs) if r] if ref else []
    spread = (min(pairs), max(pairs)) if pairs else None
    goal = f"<= {limit:g} {fig.unit}"
    return Row(item, what, fig, ref, ratio, goal, fig.median <= limit, timed, spread, notes)


# -- fresh processes -------------------------------------------------------------------------------------------
def python_env() -> dict[str, str]:
    """The environment of a worker process: this checkout first on the path (and whatever was there)."""
    env = dict(os.environ)
    parts = [str(ROOT), str(HERE)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


def run_worker(module: str, function: str, *args: Any, timeout: float = 900) -> Any:
    """Call ``module.function(*args)`` in a fresh interpreter and return its JSON result."""
    code = (
        "import json, sys\n"
        f"from {module} import {function} as f\n"
        "out = f(*json.loads(sys.argv[1]))\n"
        "print('\\n@@result ' + json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(args))],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=timeout,
        cwd=str(ROOT),
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module}.{function}{args} failed:\n{done.stderr.strip()[-2000:]}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("@@result "):
            return json.loads(line[len("@@result ") :])
    raise RuntimeError(f"{module}.{function}{args} printed no result:\n{done.stdout[-2000:]}")


def samples_from(dicts: list[dict[str, float]]) -> list[Sample]:
    return [Sample(d["wall"], d["cpu"], d.get("children_cpu", 0.0)) for d in dicts]
