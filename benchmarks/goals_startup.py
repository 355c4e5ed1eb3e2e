"""Issue 13 item 5: start-up. ``import job_orchestra`` against ``import dask``, and the cost of ``Context()``.

Imports are timed inside fresh interpreters (the interpreter's own start-up is outside the timed region),
job-orchestra and dask alternating. ``Context()`` is timed with pyperf when it is installed (the ``bench``
extra: calibrated loops in several worker processes), else with ``timeit`` repeats here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

from harness import ROOT, Figure, absolute_row, python_env, ratio_row

IMPORT_CODE = (
    "import json, time\n"
    "w, c = time.perf_counter(), time.process_time()\n"
    "import {module}\n"
    "wall, cpu = time.perf_counter() - w, time.process_time() - c\n"
    "print(json.dumps({{'wall': wall, 'cpu': cpu, 'file': {module}.__file__}}))\n"
)


def _import_once(module: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CODE.format(module=module)],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=str(ROOT),
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pyperf_timeit(setup: str, stmt: str, fast: bool) -> Figure | None:
    """Microseconds per call of ``stmt`` measured by pyperf (None when pyperf is not installed)."""
    try:
        import pyperf
    except ImportError:
        return None
    fd, out = tempfile.mkstemp(suffix=".json", prefix="jo-bench-pyperf-")
    os.close(fd)
    os.unlink(out)
    try:
        args = [sys.executable, "-m", "pyperf", "timeit", "--quiet", "-o", out, "-s", setup, stmt]
        if fast:
            args.insert(4, "--fast")
        subprocess.run(args, check=True, env=python_env(), cwd=str(ROOT), capture_output=True)
        values = pyperf.Benchmark.load(out).get_values()
    finally:
        Path(out).unlink(missing_ok=True)
    return Figure("us", [v * 1e6 for v in values])


def _timeit(setup: str, stmt: str, repeats: int) -> Figure:
    timer = timeit.Timer(stmt, setup)
    loops, _ = timer.autorange()
    return Figure("us", [t / loops * 1e6 for t in timer.repeat(repeats, loops)])


def rows(quick: bool) -> list[dict]:
    out: list[dict] = []
    runs = 5 if quick else 15
    got: dict[str, list[dict[str, float]]] = {"job_orchestra": [], "dask": []}
    try:
        _import_once("dask")
    except subprocess.CalledProcessError:
        got.pop("dask")
        out.append({"skipped": "item 5 (import): dask is not installed"})
    where = Path(_import_once("job_orchestra")["file"]).resolve()  # also warms the file system caches, untimed
    assert where.is_relative_to(ROOT), f"measured job_orchestra from {where}, not from this checkout {ROOT}"
    for r in range(runs):
        for module in got if r % 2 == 0 else reversed(list(got)):
            got[module].append(_import_once(module))
    ours = Figure("s", [g["wall"] for g in got["job_orchestra"]], [g["cpu"] for g in got["job_orchestra"]])
    if "dask" in got:
        ref = Figure("s", [g["wall"] for g in got["dask"]], [g["cpu"] for g in got["dask"]])
        out.append(
            ratio_row(
                "5",
                "import job_orchestra / import dask (fresh interpreters)",
                ours,
                ref,
                0.3,
                "the import statement alone, in a new interpreter each run (interpreter start-up outside); "
                "the two alternate",
            ).as_dict()
        )

    setup = "from job_orchestra import Context"
    harness = "pyperf timeit"
    ctx = _pyperf_timeit(setup, "Context()", quick)
    ref = _pyperf_timeit("pass", "dict()", quick)
    if ctx is None or ref is None:
        harness = "timeit (pyperf not installed)"
        ctx, ref = _timeit(setup, "Context()", 7), _timeit("pass", "dict()", 7)
    out.append(
        absolute_row(
            "5",
            "Context() (an empty Context)",
            ctx,
            ref,
            20.0,
            f"{harness}: the call Context(), module imported in the setup; reference: dict()",
            notes="CPU time not measured separately: pyperf times wall clock over calibrated loops",
        ).as_dict()
    )
    return out
