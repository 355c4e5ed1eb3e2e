"""Issue 13 item 3: snapshots at the cost of raw pickle, for a large numpy array and a large DataFrame.

Every operation runs in a fresh interpreter that first builds the value (untimed), so memory peaks are the
operation's own: the process's peak resident memory is reset just before the timed region (Linux's
``/proc/self/clear_refs``) and read after it. Peaks are given as multiples of the value's size, counted from
the process's memory before the value existed (store) or before the load (first access).

The files are read back right after they were written, so they come from the page cache, for ``pickle.load``
and for job-orchestra alike (cold-cache reads are not measured: dropping the caches would disturb the machine).
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness import Figure, Timer, absolute_row, ratio_row, run_worker

KEY = "value"


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def make_value(kind: str, nbytes: int) -> Any:
    import numpy as np

    if kind == "array":
        return np.arange(nbytes // 8, dtype=np.float64)
    import pandas as pd

    rows = nbytes // 64  # 8 columns of 8 bytes: 4 float64, 4 int64
    base = np.arange(rows, dtype=np.int64)
    cols = {f"f{i}": base * (i + 0.5) for i in range(4)} | {f"i{i}": base + i for i in range(4)}
    frame = pd.DataFrame(cols)
    del cols, base
    return frame


def value_nbytes(value: Any) -> int:
    if hasattr(value, "memory_usage"):
        return int(value.memory_usage(index=True, deep=True).sum())
    return int(value.nbytes)


def operation(op: str, kind: str, nbytes: int, where: str) -> dict[str, Any]:
    """One timed operation in this (fresh) process: store or load, ours or pickle's."""
    import pickle

    import numpy  # noqa: F401  (imports are not part of the memory counted)
    import pandas  # noqa: F401

    from job_orchestra import Context

    baseline = _rss_bytes("VmRSS")
    target = Path(where)
    if op.startswith("store"):
        value = make_value(kind, nbytes)
        size = value_nbytes(value)
        gc.collect()
        os.sync()  # untimed: no earlier write (the other side's file) is flushed inside the timed region
        can_peak = _reset_peak()
        if op == "store-ours":
            ctx = Context()
            ctx[KEY] = value
            with Timer() as t:
                ctx.store(target / "snapshot")
        else:
            with Timer() as t, open(target / "value.pkl", "wb") as f:
                pickle.dump(value, f, protocol=5)
                f.flush()
                os.fsync(f.fileno())
    else:
        gc.collect()
        can_peak = _reset_peak()
        if op == "load-ours":
            with Timer() as t:
                value = Context.load(target / "snapshot")[KEY]
        else:
            with Timer() as t, open(target / "value.pkl", "rb") as f:
                value = pickle.load(f)
        size = value_nbytes(value)
    peak = (_rss_bytes("VmHWM") - baseline) / size if can_peak else None
    if op.startswith("load"):  # what came back is the value that was stored (checked untimed)
        expected = make_value(kind, nbytes)
        same = expected.equals(value) if kind == "frame" else bool((expected == value).all())
        assert same, f"{op}: the value read back differs from the one stored"
    return {"wall": t.sample.wall, "cpu": t.sample.cpu, "peak": peak, "nbytes": size}


def rows(quick: bool) -> list[dict]:
    try:
        import numpy  # noqa: F401
        import pandas  # noqa: F401
    except ImportError:
        return [{"skipped": "item 3: numpy and pandas are needed (pip install 'job-orchestra[test]')"}]
    runs = 2 if quick else 4  # even: each side goes first as often
    sizes = {"array": 2**28 if quick else 2**30, "frame": 125_000_000 if quick else 500_000_000}
    labels = {"array": "numpy float64 array of {}", "frame": "DataFrame (8 numeric columns) of {}"}
    out: list[dict] = []
    where = tempfile.mkdtemp(prefix="jo-bench-snapshots-")
    try:
        for kind, nbytes in sizes.items():
            got: dict[str, list[dict]] = {op: [] for op in ("store-pickle", "store-ours", "load-pickle", "load-ours")}
            for r in range(runs):
                for path in (Path(where) / "snapshot", Path(where) / "value.pkl"):
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                stores = ["store-pickle", "store-ours"] if r % 2 == 0 else ["store-ours", "store-pickle"]
                loads = ["load-pickle", "load-ours"] if r % 2 == 0 else ["load-ours", "load-pickle"]
                for op in stores + loads:
                    got[op].append(run_worker("goals_snapshots", "operation", op, kind, nbytes, where))
            size = got["store-ours"][0]["nbytes"]
            what = labels[kind].format(_size(size))

            def fig(op: str, got: dict = got) -> Figure:
                return Figure("s", [g["wall"] for g in got[op]], [g["cpu"] for g in got[op]])

            def peak(op: str, got: dict = got) -> Figure | None:
                values = [g["peak"] for g in got[op]]
                return None if None in values else Figure("x value", values)

            out.append(
                ratio_row(
                    "3",
                    f"store a {what}: ctx.store / pickle.dump(protocol=5)+fsync",
                    fig("store-ours"),
                    fig("store-pickle"),
                    1.2,
                    "ours: ctx.store(new path) of a Context holding the value (write, checksum, fsync, rename); "
                    "reference: open + pickle.dump(protocol=5) + flush + fsync of one file",
                ).as_dict()
            )
            out.append(
                ratio_row(
                    "3",
                    f"first access of a {what}: Context.load + ctx[key] / pickle.load",
                    fig("load-ours"),
                    fig("load-pickle"),
                    1.2,
                    "ours: Context.load(path) and the first ctx[key] (read, verify, unpickle); "
                    "reference: open + pickle.load of the file pickle.dump wrote; both from the page cache",
                ).as_dict()
            )
            for op, ref, label in (("store-ours", "store-pickle", "store"), ("load-ours", "load-pickle", "load")):
                p = peak(op)
                if p is None:
                    out.append({"skipped": f"item 3: memory peaks need Linux's /proc/self/clear_refs ({label})"})
                    continue
                out.append(
                    absolute_row(
                        "3",
                        f"memory peak of {label} ({what}), in value sizes; reference: pickle's",
                        p,
                        peak(ref),
                        1.1,
                        "peak resident memory during the timed region above minus the process's memory before the "
                        "value existed, divided by the value's size (1.0 = the value alone, no copies)",
                    ).as_dict()
                )
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return out


def _size(nbytes: int) -> str:
    if nbytes % 2**20 == 0:
        return f"{nbytes // 2**30} GiB" if nbytes % 2**30 == 0 else f"{nbytes // 2**20} MiB"
    return f"{nbytes / 1e6:,.0f} MB"
