"""Dask workers write results straight into a shared cache; the client gets only small references.

A two-worker ``LocalCluster(processes=True)``; the results are ``Heavy`` objects that fail the run if they are
ever unpickled in the client process, so a result travelling through the client cannot go unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time

import pytest

from job_orchestra import Context, Step
from job_orchestra.lazy import LazyEntry
from job_orchestra.store_fsspec import FsspecStore

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def wait_until_released(client):
    """Dask releases data asynchronously once no future refers to it; wait (bounded) for that."""
    deadline = time.monotonic() + 20
    count = lambda: client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))  # noqa: E731
    while count() and time.monotonic() < deadline:
        time.sleep(0.05)
    return count()


# -- a minimal store-backed Context: the two hooks the worker-write path needs -----------------------------
def _entry(name: str, fingerprint: str) -> str:
    return f"{name}/{hashlib.sha256(fingerprint.encode()).hexdigest()[:32]}"


class StoreWriter:
    """What a worker gets: the store (by URL) and where the entry goes; value first, then the index record."""

    def __init__(self, url: str, name: str, fingerprint: str) -> None:
        self.url, self.entry = url, _entry(name, fingerprint)

    def write(self, value, seconds):
        store = FsspecStore(self.url)
        data = pickle.dumps(value)
        store.write(f"values/{self.entry}", data)
        store.write(f"index/{self.entry}", json.dumps({"pid": os.getpid(), "size": len(data)}).encode())
        return len(data)


class StoreReader:
    """What a worker gets to read an entry from the store."""

    def __init__(self, url: str, name: str, fingerprint: str) -> None:
        self.url, self.entry = url, _entry(name, fingerprint)

    def __call__(self):
        return pickle.loads(FsspecStore(self.url).read(f"values/{self.entry}"))


class StoreContext(Context):
    __slots__ = ()
    urls: dict[int, str] = {}

    def _worker_writer(self, name, fingerprint):
        return StoreWriter(self.urls[id(self)], name, fingerprint)

    def _worker_reader(self, name):
        return StoreReader(self.urls[id(self)], name, self.fingerprint(name))

    def _adopt_written(self, name, fingerprint, seconds):
        store = FsspecStore(self.urls[id(self)])
        entry = _entry(name, fingerprint)
        assert store.exists(f"index/{entry}"), "the index record is written before the reference is sent"
        lazy = LazyEntry(lambda: pickle.loads(store.read(f"values/{entry}")), f"{name} in {store.url}")
        self._put_result(name, lazy, fingerprint, seconds)


def store_context(url: str) -> StoreContext:
    ctx = StoreContext()
    StoreContext.urls[id(ctx)] = url
    return ctx


# -- steps ----------------------------------------------------------------------------------------------
class Heavy:
    """A large result that refuses to be unpickled in the client process."""

    def __init__(self, value, client_pid, size=4_000_000):
        self.value = value
        self.client_pid = client_pid
        self.blob = os.urandom(size)

    def __setstate__(self, state):
        if os.getpid() == state["client_pid"]:
            raise AssertionError("a large result was sent to the client")
        self.__dict__.update(state)


class MakeHeavy(Step):
    def __init__(self, value, **kw):
        super().__init__(**kw)
        self.value = value
        self.client_pid = os.getpid()

    def run(self):
        return Heavy(self.value, self.client_pid)


class Combine(Step):
    def run(self, *heavies):
        return Heavy(sum(h.value for h in heavies), heavies[0].client_pid)


class Unwrap(Step):
    def run(self, heavy):
        return {"total": heavy.value, "pid": os.getpid()}


def heavy_pipeline(ctx):
    parts = [MakeHeavy(i, name_alias=f"part{i}", ctx=ctx) for i in range(4)]
    pairs = [Combine(depends_on=parts[i : i + 2], name_alias=f"pair{i}", ctx=ctx) for i in (0, 2)]
    return Unwrap(depends_on=Combine(depends_on=pairs, name_alias="all", ctx=ctx), ctx=ctx)


def test_workers_write_into_the_cache_and_the_client_holds_only_lazy_references(client, s3_url):
    ctx = store_context(s3_url)
    head = heavy_pipeline(ctx)
    out = head.materialize(client)
    assert out.total == 6 and out.pid != os.getpid()  # the head's value, computed on a worker
    intermediate = ["part0", "part1", "part2", "part3", "pair0", "pair2", "all"]
    assert [k for k in intermediate if ctx.is_loaded(k)] == []  # nothing of them came to the client
    assert ctx.is_loaded("Unwrap") and ctx["Unwrap"] is out  # the head was read once, from the cache
    store = FsspecStore(s3_url)
    records = [json.loads(store.read(rel)) for rel in store.list("index")]
    assert len(records) == 8 and {r["pid"] for r in records}.isdisjoint({os.getpid()})
    assert sum(r["size"] for r in records) > 7 * 4_000_000  # the large values went to the store directly
    with pytest.raises(AssertionError, match="sent to the client"):
        ctx["part0"]  # reading one asks for it: it comes from the cache (and Heavy refuses the client)
    assert wait_until_released(client) == 0


def test_a_second_run_takes_everything_from_the_cache(client, s3_url):
    ctx = store_context(s3_url)
    heavy_pipeline(ctx).materialize(client)
    assert heavy_pipeline(ctx).execution_plan(show=False).to_run == []
    assert heavy_pipeline(ctx).materialize(client).total == 6


class Total(Step):
    def run(self, heavy):
        return heavy.value * 10


def test_results_taken_from_the_cache_are_read_by_the_workers_not_by_the_client(client, s3_url):
    ctx = store_context(s3_url)
    heavy_pipeline(ctx).materialize(client)
    everything = heavy_pipeline(ctx).dependencies[0]  # "all", cached now, not read by the client
    head = Total(depends_on=everything, ctx=ctx)
    assert head.execution_plan(show=False).to_run == ["Total"]
    assert head.materialize(client) == 60  # Heavy refuses the client: "all" was read on a worker
    assert not ctx.is_loaded("all") and ctx.is_loaded("Total")
    assert wait_until_released(client) == 0


class Fails(Step):
    def run(self, heavy):
        raise ZeroDivisionError("fails on purpose")


def test_a_failing_step_is_named_and_the_results_written_before_stay(client, s3_url):
    ctx = store_context(s3_url)
    part = MakeHeavy(1, name_alias="part", ctx=ctx)
    with pytest.raises(ZeroDivisionError, match="fails on purpose") as info:
        Fails(depends_on=part, ctx=ctx).materialize(client)
    assert "step 'Fails' (Fails) failed" in "\n".join(info.value.__notes__)
    assert not ctx.is_loaded("part") and "Fails" not in ctx
    assert [rel.split("/")[1] for rel in FsspecStore(s3_url).list("index")] == ["part"]


def test_a_context_without_a_shared_store_gets_the_results_as_before(client):
    ctx = Context()
    parts = [MakeHeavy(i, name_alias=f"p{i}") for i in range(2)]
    head = Unwrap(depends_on=Combine(depends_on=parts, name_alias="c"), ctx=ctx)
    assert head.materialize(client).total == 1
    assert ctx.is_loaded("Unwrap") and dict(ctx)["Unwrap"].total == 1
