"""A pipeline for the persistent-cache tests, run in subprocesses: ``python -m tests.cache_pipeline CACHE ...``.

Options: ``--kill-at N`` SIGKILLs the process at its N-th file-system event of the cache (a chunk of a value
written, a chunk of a record written, an fsync, a rename: before and after each), ``--param V`` sets the
parameter of the first step. It prints ``stored NAME`` once a result is written through, ``ran NAME`` when
a step runs, and at the end ``inline-events I,J,...`` (the events of inline records' writes) and ``events N``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import numpy as np

from job_orchestra import Context, Step, value_codec
from job_orchestra import stores as _stores

STEPS = 12


class Source(Step):
    """The first step: an array whose size depends on its parameter."""

    def run(self):
        print(f"ran {self}", flush=True)
        return np.arange(self.param * 1000 + 5, dtype="int64")


class Stage(Step):
    """Every later step: a value derived from its input, of varied kinds and sizes."""

    def run(self, x):
        print(f"ran {self}", flush=True)
        if self.index % 3 == 0:
            return x * 2
        if self.index % 3 == 1:
            return {
                "sum": int(np.asarray(x if not isinstance(x, dict) else x["items"]).sum()),
                "items": list(range(50)),
            }
        return np.full(20_000, self.index, dtype="float64")


def expected(param: int) -> dict[str, object]:
    """What each step's result must be, computed without the library."""
    out: dict[str, object] = {}
    x: object = np.arange(param * 1000 + 5, dtype="int64")
    out["Source"] = x
    for index in range(1, STEPS):
        if index % 3 == 0:
            x = x * 2  # type: ignore[operator]
        elif index % 3 == 1:
            items = x["items"] if isinstance(x, dict) else x
            x = {"sum": int(np.asarray(items).sum()), "items": list(range(50))}
        else:
            x = np.full(20_000, index, dtype="float64")
        out[f"Stage{index}"] = x
    return out


def build(ctx: Context, param: int) -> Step:
    head: Step = Source(ctx=ctx)
    head.param = param
    for index in range(1, STEPS):
        head = Stage(depends_on=head, ctx=ctx, name_alias=f"Stage{index}")
        head.index = index
    return head


def _install_kill(at: int) -> tuple[list[int], list[int]]:
    """Count the cache's file-system events, SIGKILL at the ``at``-th; also note which events belong to the
    write of an inline record (a small value inside its index record), so kill points can be drawn there."""
    count = [0]
    inline_events: list[int] = []
    writing_inline = [False]

    def tick() -> None:
        count[0] += 1
        if writing_inline[0]:
            inline_events.append(count[0])
        if count[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)

    original_write = value_codec._write_all
    original_replace = os.replace
    original_os_write = os.write
    original_fsync = os.fsync
    original_store_write = _stores.LocalStore.write

    def write(out, chunk):  # type: ignore[no-untyped-def]
        half = chunk.nbytes // 2
        tick()
        original_write(out, chunk[:half])  # a kill may land in the middle of a value's bytes
        tick()
        original_write(out, chunk[half:])

    def replace(*args, **kwargs):  # type: ignore[no-untyped-def]
        tick()
        original_replace(*args, **kwargs)
        tick()

    def os_write(fd, data):  # type: ignore[no-untyped-def]
        view = memoryview(data).cast("B")
        if fd <= 2 or len(view) < 2:
            return original_os_write(fd, view)
        tick()
        written = original_os_write(fd, view[: len(view) // 2])  # a partial write: the store writes the rest
        tick()
        return written

    def fsync(fd):  # type: ignore[no-untyped-def]
        tick()
        original_fsync(fd)
        tick()

    def store_write(self, rel, data):  # type: ignore[no-untyped-def]
        writing_inline[0] = b'"inline": true' in bytes(data).partition(b"\n")[0]
        try:
            original_store_write(self, rel, data)
        finally:
            writing_inline[0] = False

    value_codec._write_all = write  # type: ignore[assignment]
    _stores.os.replace = replace  # type: ignore[attr-defined]
    _stores.os.write = os_write  # type: ignore[attr-defined]
    _stores.os.fsync = fsync  # type: ignore[attr-defined]
    _stores.LocalStore.write = store_write  # type: ignore[method-assign]
    return count, inline_events


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cache")
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--param", type=int, default=3)
    args = parser.parse_args(argv)
    count, inline_events = _install_kill(args.kill_at)
    ctx = Context.open(args.cache)
    binding = ctx._cache
    original = binding.put

    def put(key, value, fingerprint, seconds):  # type: ignore[no-untyped-def]
        original(key, value, fingerprint, seconds)
        print(f"stored {key}", flush=True)

    binding.put = put
    build(ctx, args.param).materialize()
    print(f"inline-events {','.join(map(str, inline_events))}", flush=True)
    print(f"events {count[0]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
