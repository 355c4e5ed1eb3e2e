"""Dask workers write results straight into a shared cache; the client gets only small references.

A two-worker ``LocalCluster(processes=True)``; the results are ``Heavy`` objects that fail the run if they are
ever unpickled in the client process, so a result travelling through the client cannot go unnoticed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from job_orchestra import Context, Step, cache_workers
from job_orchestra.cache_workers import CacheWriter
from job_orchestra.errors import CacheWriteWarning, SnapshotError, UntrustedCacheError
from job_orchestra.stores import LocalStore, open_store

distributed = pytest.importorskip("distributed")
# A worker that could not write a result (or wrote it where the client does not see it) is a failure here.
pytestmark = pytest.mark.filterwarnings("error::job_orchestra.errors.CacheWriteWarning")


@pytest.fixture(scope="module")
def client(request):
    if importlib.util.find_spec("s3fs") is not None:
        request.getfixturevalue("s3_endpoint")  # the workers inherit its credentials and endpoint
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


@pytest.fixture(params=["s3", "directory"])
def cache_url(request):
    """Where the cache lives: a prefix on the moto S3 server, or a local directory (both shared by the
    workers of a LocalCluster)."""
    if request.param == "s3":
        return request.getfixturevalue("s3_url")
    return str(request.getfixturevalue("tmp_path") / "cache")


def open_cache(url):
    return Context.open(url, trust=url.startswith("s3://"))  # who wrote a bucket cannot be told: opt in


def index_records(url):
    store = open_store(url)
    return [json.loads(store.read(rel).partition(b"\n")[0]) for rel in store.list("index")]  # an inline value follows


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
    def __init__(self, value, size=4_000_000, **kw):
        super().__init__(**kw)
        self.value = value
        self.size = size
        self.client_pid = os.getpid()

    def run(self):
        return Heavy(self.value, self.client_pid, self.size)


class Combine(Step):
    def run(self, *heavies):
        return Heavy(sum(h.value for h in heavies), heavies[0].client_pid)


class Number(Step):
    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.n = n

    def run(self):
        return Heavy(self.n, None, size=10)


class Unwrap(Step):
    def run(self, heavy):
        return {"total": heavy.value, "pid": os.getpid()}


def heavy_pipeline(ctx):
    parts = [MakeHeavy(i, name_alias=f"part{i}", ctx=ctx) for i in range(4)]
    pairs = [Combine(depends_on=parts[i : i + 2], name_alias=f"pair{i}", ctx=ctx) for i in (0, 2)]
    return Unwrap(depends_on=Combine(depends_on=pairs, name_alias="all", ctx=ctx), ctx=ctx)


def test_workers_write_into_the_cache_and_the_client_holds_only_lazy_references(client, cache_url):
    ctx = open_cache(cache_url)
    out = heavy_pipeline(ctx).materialize(client)
    assert out.total == 6 and out.pid != os.getpid()  # the head's value, computed on a worker
    intermediate = ["part0", "part1", "part2", "part3", "pair0", "pair2", "all"]
    assert [k for k in intermediate if ctx.is_loaded(k)] == []  # nothing of them came to the client
    assert ctx.is_loaded("Unwrap") and ctx["Unwrap"] is out  # the head was read once, from the cache
    assert all(ctx.location(k) == ctx.store_url for k in [*intermediate, "Unwrap"])
    records = index_records(cache_url)
    assert (
        sorted(r["type"] for r in records) == ["job_orchestra.attrdict.AttrDict"] + ["tests.test_dask_cache.Heavy"] * 7
    )
    assert sum(r["size"] for r in records) > 7 * 4_000_000  # the large values went to the cache directly
    with pytest.raises(SnapshotError, match="sent to the client"):
        ctx["part0"]  # reading one asks for it: it comes from the cache (and Heavy refuses the client)
    assert wait_until_released(client) == 0


REOPEN = textwrap.dedent(
    """
    import json, sys
    from job_orchestra import Context
    ctx = Context.open(sys.argv[1], trust=True)
    print(json.dumps({"keys": sorted(k for k in ctx if k != "context_meta"), "total": ctx["Unwrap"]["total"],
                      "lazy": sorted(k for k in ctx if not ctx.is_loaded(k))}))
    """
)


def test_a_fresh_process_opens_what_the_workers_wrote(client, cache_url):
    heavy_pipeline(open_cache(cache_url)).materialize(client)
    done = subprocess.run([sys.executable, "-c", REOPEN, cache_url], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    names = ["Unwrap", "all", "pair0", "pair2", "part0", "part1", "part2", "part3"]
    assert seen == {"keys": names, "total": 6, "lazy": [n for n in names if n != "Unwrap"]}
    again = open_cache(cache_url)
    assert heavy_pipeline(again).execution_plan(show=False).to_run == []
    assert heavy_pipeline(again).materialize(client).total == 6


class Total(Step):
    def run(self, heavy):
        return heavy.value * 10


def test_results_taken_from_the_cache_are_read_by_the_workers_not_by_the_client(client, cache_url):
    heavy_pipeline(open_cache(cache_url)).materialize(client)
    ctx = open_cache(cache_url)  # a fresh Context: every entry lazy
    everything = heavy_pipeline(ctx).dependencies[0]  # "all", cached, not read by the client
    head = Total(depends_on=everything, ctx=ctx)
    assert head.execution_plan(show=False).to_run == ["Total"]
    assert head.materialize(client) == 60  # Heavy refuses the client: "all" was read on a worker
    assert not ctx.is_loaded("all") and ctx.is_loaded("Total")
    assert wait_until_released(client) == 0


class Fails(Step):
    def run(self, heavy):
        raise ZeroDivisionError("fails on purpose")


def test_a_failing_step_is_named_and_the_results_written_before_stay(client, cache_url):
    ctx = open_cache(cache_url)
    part = MakeHeavy(1, name_alias="part", ctx=ctx)
    with pytest.raises(ZeroDivisionError, match="fails on purpose") as info:
        Fails(depends_on=part, ctx=ctx).materialize(client)
    assert "step 'Fails' (Fails) failed" in "\n".join(info.value.__notes__)
    assert not ctx.is_loaded("part") and "Fails" not in ctx
    assert [r["type"] for r in index_records(cache_url)] == ["tests.test_dask_cache.Heavy"]


def test_memory_caches_are_not_shared_so_results_come_back_and_are_written_here(client):
    ctx = Context.open(f"memory://jo-dask-{os.getpid()}-{time.monotonic_ns()}")
    parts = [MakeHeavy(i, name_alias=f"p{i}", size=10) for i in range(2)]
    head = Unwrap(depends_on=Combine(depends_on=parts, name_alias="c", ctx=ctx), ctx=ctx)
    with pytest.raises(AssertionError, match="sent to the client"):
        head.materialize(client)  # "c" must come to the client to be written: Heavy refuses
    small = Unwrap(depends_on=Number(3, ctx=ctx), ctx=ctx, name_alias="small")
    assert small.materialize(client).total == 3
    assert ctx.is_loaded("Number") and ctx.location("Number") == ctx.location("small") == ctx.store_url
    assert sorted(r["type"] for r in index_records(ctx.store_url)) == [
        "job_orchestra.attrdict.AttrDict",
        "tests.test_dask_cache.Heavy",
    ]


def test_a_context_without_a_cache_gets_the_results_as_before(client):
    ctx = Context()
    parts = [MakeHeavy(i, name_alias=f"p{i}") for i in range(2)]
    head = Unwrap(depends_on=Combine(depends_on=parts, name_alias="c"), ctx=ctx)
    assert head.materialize(client).total == 1
    assert ctx.is_loaded("Unwrap") and dict(ctx)["Unwrap"].total == 1


def test_a_worker_that_cannot_write_falls_back_to_the_client_with_a_warning(client, tmp_path, monkeypatch):
    """The workers write to a disk of their own (a cache directory they do not share with the client)."""
    ctx = Context.open(tmp_path / "cache")
    workers_disk = LocalStore(tmp_path / "workers-own-disk")
    real = cache_workers.writer_for

    def elsewhere(context, key, fingerprint):
        writer = real(context, key, fingerprint)
        return CacheWriter(workers_disk, writer.secret, writer.key, writer.fingerprint)

    monkeypatch.setattr(cache_workers, "writer_for", elsewhere)
    with pytest.warns(CacheWriteWarning, match="was not written .* wrote it, but not where this process") as caught:
        out = Unwrap(depends_on=Number(3, ctx=ctx), ctx=ctx).materialize(client)
    assert out.total == 3
    assert sorted(str(w.message).split("'")[1] for w in caught) == ["Number", "Unwrap"]
    assert len(workers_disk.list("index")) == 2  # what the workers wrote, where the client does not look
    reopened = Context.open(tmp_path / "cache")  # the client wrote both results itself: nothing is lost
    assert sorted(k for k in reopened if k != "context_meta") == ["Number", "Unwrap"]
    assert reopened["Number"].value == 3


def test_what_workers_write_into_a_signed_cache_is_signed(client, cache_url):
    ctx = Context.open(cache_url, key="team-secret")
    assert Unwrap(depends_on=Number(4, ctx=ctx), ctx=ctx).materialize(client).total == 4
    assert all("hmac" in record for record in index_records(cache_url)) and len(index_records(cache_url)) == 2
    assert Context.open(cache_url, key="team-secret")["Number"].value == 4
    with pytest.raises(UntrustedCacheError):
        Context.open(cache_url, key="another-key")["Number"]
