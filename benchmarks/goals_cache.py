"""Issue 15: the cost of a persistent cache (``Context.open``) against memory and against raw pickle.

- large values: writing a step's result through (pickle, BLAKE3, fsync, rename, index record) against
  ``pickle.dump`` + ``fsync`` of the same value to a file in the same directory (goal: within 1.5x);
- small values: the extra time per step of a 200-step chain on an opened cache against an in-memory Context
  (goal: under 1 ms per step), with raw ``pickle.dump`` + ``fsync`` of one small value for scale;
- opening a cache of 10,000 entries (values are read lazily, so only the index is read; goal: under 0.5 s),
  with reading the same 10,000 index files raw for scale.

Figure and reference run alternately in one process, on the same file system (a temporary directory under
the system's temporary directory unless ``$JO_BENCH_DIR`` names another); files are removed between runs.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness import Timer, absolute_row, figure, ratio_row


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="jo-bench-cache-", dir=os.environ.get("JO_BENCH_DIR")))


def _raw_dump(value: Any, file: Path) -> None:
    with open(file, "wb") as f:
        pickle.dump(value, f, protocol=5)
        f.flush()
        os.fsync(f.fileno())


def _fp(i: int) -> str:
    return hashlib.md5(str(i).encode()).hexdigest() + ":bench"


def large_row(quick: bool) -> dict:
    import numpy as np

    from job_orchestra import Context

    mib = 16 if quick else 256
    runs = 4 if quick else 6  # even: each side goes first as often
    value = np.arange(mib * 2**20 // 8, dtype=np.float64)
    ours, raw = [], []
    for i in range(runs):
        where = _scratch()
        try:
            ctx = Context.open(where / "cache")
            for side in ("ours", "raw") if i % 2 == 0 else ("raw", "ours"):
                os.sync()  # untimed: no earlier write is flushed inside the timed region
                with Timer() as t:
                    if side == "ours":
                        ctx._put_result("big", value, _fp(i))
                    else:
                        _raw_dump(value, where / "raw.pkl")
                (ours if side == "ours" else raw).append(t.sample)
        finally:
            shutil.rmtree(where)
    return ratio_row(
        "15.1",
        f"write-through of a {mib} MiB numpy array / raw pickle.dump + fsync",
        figure(ours),
        figure(raw),
        1.5,
        "ours: ctx._put_result on an opened cache (pickle, BLAKE3, fsync, rename, record); raw: pickle.dump "
        "to an open file + fsync, same directory",
    ).as_dict()


class _Small:
    pass


def small_row(quick: bool) -> dict:
    from job_orchestra import Context, Step

    steps = 50 if quick else 200
    runs = 3 if quick else 5

    class Inc(Step):
        def run(self, x=0):
            return {"n": (x["n"] if isinstance(x, dict) else x) + 1, "tag": "small"}

    def chain(ctx: Context) -> Step:
        head = Inc(ctx=ctx, name_alias="s0")
        for i in range(1, steps):
            head = Inc(depends_on=head, ctx=ctx, name_alias=f"s{i}")
        return head

    disk, memory, raw = [], [], []
    for _ in range(runs):
        where = _scratch()
        try:
            head = chain(Context.open(where / "cache"))
            with Timer() as t:
                head.materialize()
            disk.append(t.sample)
            head = chain(Context())
            with Timer() as t:
                head.materialize()
            memory.append(t.sample)
            with Timer() as t:
                for i in range(steps):
                    _raw_dump({"n": i, "tag": "small"}, where / f"raw{i}.pkl")
            raw.append(t.sample)
        finally:
            shutil.rmtree(where)
    extra = [type(d)(d.wall - m.wall, d.cpu - m.cpu, 0.0) for d, m in zip(disk, memory)]
    return absolute_row(
        "15.2",
        f"write-through overhead per small step ({steps}-step chain): opened cache - in-memory Context",
        figure(extra, "us", 1e6 / steps),
        figure(raw, "us", 1e6 / steps),
        1000,
        "materialize() of the chain on Context.open(dir) minus the same on Context(), per step; reference: "
        "raw pickle.dump + fsync of one small dict per step",
    ).as_dict()


def open_row(quick: bool) -> dict:
    from job_orchestra import Context

    entries = 1000 if quick else 10_000
    runs = 3 if quick else 5
    where = _scratch()
    try:
        ctx = Context.open(where / "cache")
        binding = ctx._cache
        for i in range(entries):  # untimed: fill the cache (one small value each)
            binding.put(f"step{i}", {"i": i}, _fp(i), 0.01)
        ours, raw = [], []
        index = where / "cache" / "index"
        for _ in range(runs):
            with Timer() as t:
                opened = Context.open(where / "cache")
            ours.append(t.sample)
            assert len(opened) == entries and not opened.is_loaded("step0")
            with Timer() as t:
                for name in os.listdir(index):
                    with open(index / name, "rb") as f:
                        f.read()
            raw.append(t.sample)
    finally:
        shutil.rmtree(where)
    return absolute_row(
        "15.3",
        f"Context.open() of a cache with {entries:,} entries (values lazy)",
        figure(ours),
        figure(raw),
        0.5,
        "ours: Context.open(dir), every index record read and checked, no value read; reference: listdir + "
        "read of the same index files",
    ).as_dict()


def rows(quick: bool) -> list[dict]:
    return [large_row(quick), small_row(quick), open_row(quick)]
