"""The work every benchmark runs, once as job-orchestra steps and once as plain functions for the references.

Both live in this importable module, so worker processes (a process pool, Dask workers) import them by name
for job-orchestra and for the bare references alike: neither side ships its code by value.
"""

from __future__ import annotations

from job_orchestra import Step


# -- plain functions (the references) -----------------------------------------------------------------------
def start() -> int:
    return 0


def inc(x: int) -> int:
    return x + 1


def trivial(i: int) -> int:
    return i


def total(*parts: int) -> int:
    return sum(parts)


def burn(loops: int) -> int:
    """Pure-Python CPU work that holds the GIL."""
    acc = 0
    for i in range(loops):
        acc += i * i % 7
    return acc


# -- the same work as steps ---------------------------------------------------------------------------------
class Start(Step):
    def run(self) -> int:
        return 0


class Inc(Step):
    def run(self, x: int) -> int:
        return x + 1


class Trivial(Step):
    def __init__(self, i: int) -> None:
        super().__init__(name_alias=f"t{i}")
        self.i = i

    def run(self) -> int:
        return self.i


class Total(Step):
    def run(self, *parts: int) -> int:
        return sum(parts)


class Burner(Step):
    def __init__(self, i: int, loops: int) -> None:
        super().__init__(name_alias=f"burn{i}")
        self.loops = loops

    def run(self) -> int:
        return burn(self.loops)


class First(Step):
    """The first element of a Step.from_data output (whose value is ``{"output": data}``)."""

    def run(self, data: dict) -> float:
        return float(data["output"][0])


def chain(n: int, ctx: object = None) -> Step:
    """n steps, each feeding the next: Start, then n - 1 Inc. The head's output is n - 1."""
    step: Step = Start(ctx=ctx)  # type: ignore[arg-type]
    for i in range(n - 1):
        step = Inc(depends_on=step, name_alias=f"s{i}", ctx=ctx)  # type: ignore[arg-type]
    return step


def wide(n: int) -> Step:
    """n independent steps and a Total of them all (n + 1 steps). The head's output is sum(range(n))."""
    return Total(depends_on=[Trivial(i) for i in range(n)])


def burners(n: int, loops: int) -> Step:
    return Total(depends_on=[Burner(i, loops) for i in range(n)])


# -- the same graphs submitted by hand ------------------------------------------------------------------------
def pool_chain(pool: object, n: int) -> int:
    """A chain on a bare concurrent.futures pool: each call waits for the previous result."""
    x = pool.submit(start).result()  # type: ignore[attr-defined]
    for _ in range(n - 1):
        x = pool.submit(inc, x).result()  # type: ignore[attr-defined]
    return x


def pool_wide(pool: object, n: int) -> int:
    """A wide graph on a bare pool: n submits, then the total once all have finished."""
    futures = [pool.submit(trivial, i) for i in range(n)]  # type: ignore[attr-defined]
    return pool.submit(total, *[f.result() for f in futures]).result()  # type: ignore[attr-defined]


def dask_chain(client: object, n: int) -> int:
    """A chain submitted ahead with raw client.submit, futures as arguments (pure=False: no result reuse)."""
    f = client.submit(start, pure=False)  # type: ignore[attr-defined]
    for _ in range(n - 1):
        f = client.submit(inc, f, pure=False)  # type: ignore[attr-defined]
    return f.result()


def dask_wide(client: object, n: int) -> int:
    futures = [client.submit(trivial, i, pure=False) for i in range(n)]  # type: ignore[attr-defined]
    return client.submit(total, *futures, pure=False).result()  # type: ignore[attr-defined]
