"""``Context.open`` on object stores: s3:// (moto's real S3-protocol server, tests/s3_server.py) and memory://.

The same behaviour as on a directory: write-through as each step finishes, lazy values, a fresh process
sees every result, every version kept by fingerprint, prune and disk usage; and a reader process polling
the cache while large results are written never sees an entry it cannot read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

from job_orchestra import Context, Step
from job_orchestra.errors import UntrustedCacheError
from tests.s3_server import BUCKET, boto3_client

pytest.importorskip("fsspec")


@pytest.fixture(params=["s3", "memory"])
def url(request):
    if request.param == "s3":
        return request.getfixturevalue("s3_url")
    return f"memory://jo-cache-{uuid.uuid4().hex[:12]}"


def open_it(url: str, **kw) -> Context:
    return (
        Context.open(url, trust=True, **kw) if url.startswith("s3://") and "key" not in kw else Context.open(url, **kw)
    )


class Load(Step):
    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.n = n

    def run(self):
        return np.arange(self.n)


class Double(Step):
    def run(self, x):
        return x * 2


def pipeline(ctx, n=10):
    return Double(depends_on=Load(n, ctx=ctx), ctx=ctx)


def objects(endpoint: str, url: str) -> list[str]:
    prefix = url.removeprefix(f"s3://{BUCKET}/") + "/"
    pages = boto3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"][len(prefix) :] for page in pages for item in page.get("Contents", []))


def test_results_are_written_through_read_lazily_and_every_version_is_kept(request, url, layout):
    files = 0 if layout == "inline" else 1  # value objects per entry: none when the value is in its record
    ctx = open_it(url)
    assert ctx.store_url == url
    assert list(pipeline(ctx).materialize()) == [i * 2 for i in range(10)]
    assert ctx.location("Load") == ctx.location("Double") == url
    again = open_it(url)
    assert not again.is_loaded("Load") and list(again["Load"]) == list(range(10))
    assert pipeline(again, n=5).execution_plan(show=False).to_run == ["Load", "Double"]
    pipeline(again, n=5).materialize()
    back = open_it(url)
    plan = pipeline(back, n=10).execution_plan(show=False)
    assert plan.to_run == []  # switching back to n=10 reuses the earlier version, nothing runs
    assert "cached from an earlier version" in str(plan)
    assert list(pipeline(back, n=10).materialize()) == [i * 2 for i in range(10)]
    usage = back.disk_usage()
    assert usage.entries == 4 and set(usage.per_step) == {"Load", "Double"} and usage.total_bytes > 0
    if url.startswith("s3://"):
        stored = objects(request.getfixturevalue("s3_endpoint"), url)
        assert sum(k.startswith("index/") for k in stored) == 4
        assert sum(k.startswith("values/") for k in stored) == 4 * files
    removed = back.prune(keep=1)
    assert len(removed) == 2 and open_it(url).disk_usage().entries == 2
    if url.startswith("s3://"):
        stored = objects(request.getfixturevalue("s3_endpoint"), url)
        assert sum(k.startswith("index/") for k in stored) == 2
        assert sum(k.startswith("values/") for k in stored) == 2 * files


REOPEN = textwrap.dedent(
    """
    import json, sys
    from job_orchestra import Context
    ctx = Context.open(sys.argv[1], trust=True)
    keys = sorted(k for k in ctx if k != "context_meta")
    lazy = [k for k in keys if not ctx.is_loaded(k)]
    print(json.dumps({"keys": keys, "lazy": lazy, "double": list(map(int, ctx["Double"]))}))
    """
)


def test_a_fresh_process_sees_every_result(s3_url):
    pipeline(open_it(s3_url)).materialize()
    done = subprocess.run([sys.executable, "-c", REOPEN, s3_url], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {
        "keys": ["Double", "Load"],
        "lazy": ["Double", "Load"],
        "double": [i * 2 for i in range(10)],
    }


def test_a_bucket_is_not_trusted_without_trust_or_a_key(s3_url):
    with pytest.raises(UntrustedCacheError, match="trust=True"):
        Context.open(s3_url)
    signed = Context.open(s3_url, key="team-secret")  # a signed cache is opened with its key, whoever wrote it
    pipeline(signed).materialize()
    assert list(Context.open(s3_url, key="team-secret")["Double"]) == [i * 2 for i in range(10)]
    with pytest.raises(UntrustedCacheError):
        Context.open(s3_url, key="another-key")["Double"]


READER = textwrap.dedent(
    """
    import hashlib, json, sys
    from job_orchestra import Context
    from job_orchestra.stores import open_store
    url, steps = sys.argv[1], int(sys.argv[2])
    open_store(url).write("reader-ready", b"")
    polls, seen = 0, set()
    while len(seen) < steps:
        polls += 1
        ctx = Context.open(url, trust=True)  # a fresh view each time: what a new notebook would see
        for key in ctx:
            if key != "context_meta" and key not in seen:
                value = ctx[key]  # must be complete: its record names a value written before it
                assert int(value[0]) == int(key[4:]) and len(value) == 1_000_000, key
                seen.add(key)
    print(json.dumps({"polls": polls, "seen": sorted(seen)}))
    """
)


class Big(Step):
    def __init__(self, i, **kw):
        super().__init__(**kw)
        self.i = i

    def run(self):
        return np.full(1_000_000, self.i, dtype="int64")  # 8 MB


def test_a_reader_process_never_sees_a_half_written_entry(s3_url):
    from job_orchestra.stores import open_store

    ctx = open_it(s3_url)
    steps = 6
    reader = subprocess.Popen([sys.executable, "-c", READER, s3_url, str(steps)], stdout=subprocess.PIPE, text=True)
    try:
        store = open_store(s3_url)
        while not store.exists("reader-ready"):
            assert reader.poll() is None, "the reader ended early"
        head = Step.join([Big(i, name_alias=f"big-{i}", ctx=ctx) for i in range(steps)])
        head.materialize()
        out, _ = reader.communicate(timeout=300)
    finally:
        reader.kill()
    assert reader.returncode == 0
    report = json.loads(out)
    print("reader:", report)  # shown with -s: how many reads overlapped the writes
    assert report["seen"] == [f"big-{i}" for i in range(steps)] and report["polls"] >= 1


def test_a_small_result_is_one_put_and_a_large_one_two(url):
    ctx = open_it(url)
    store = ctx._cache.store
    puts: list[str] = []
    original = store.fs.pipe_file

    def counting(path, data, **kw):
        puts.append(path.rpartition("/")[2])
        return original(path, data, **kw)

    store.fs.pipe_file = counting
    try:
        ctx._put_result("small", list(range(10)), "a" * 32 + ":t")
        assert [p.split(".")[-1] for p in puts] == ["json"]  # the record holds the value: one request
        puts.clear()
        ctx._put_result("large", np.zeros(100_000), "b" * 32 + ":t")  # 800 kB: a value object, then its record
        assert [p.split(".")[-1] for p in puts] == ["dill", "json"]
    finally:
        store.fs.pipe_file = original
    again = open_it(url)
    assert again["small"] == list(range(10)) and not again["large"].any()


def test_prune_on_an_object_store_removes_old_orphan_values_and_nothing_else(url, monkeypatch):
    import job_orchestra.cache as cache_module

    ctx = open_it(url)
    pipeline(ctx).materialize()
    store = ctx._cache.store
    orphan = f"values/{'a' * 32}.{'b' * 32}.{'c' * 16}.dill"  # a writer killed between its value and record
    store.write(orphan, b"x")
    store.write("values/notes.dill", b"not ours")
    before = sorted(store.list(""))
    assert ctx.prune() == [] and sorted(store.list("")) == before  # too young to be an orphan: kept
    monkeypatch.setattr(cache_module, "ORPHAN_GRACE", -1.0)  # as if an hour had passed
    assert ctx.prune() == []
    after = sorted(store.list(""))
    assert orphan not in after and sorted([*after, orphan]) == before  # only the orphan went
    assert store.leftovers("values") == store.leftovers("index") == []  # single requests leave no temporary
    assert list(open_it(url)["Double"]) == [i * 2 for i in range(10)]
    assert len(ctx.prune(max_bytes=0)) == 2 and [k for k in store.list("") if k.startswith("index/")] == []


def test_prune_on_a_file_system_through_fsspec_removes_old_temporary_files(tmp_path, monkeypatch):
    import job_orchestra.cache as cache_module

    ctx = Context.open(f"local://{tmp_path}/c", trust=True)  # not an object store: a temporary name, then a move
    assert not ctx._cache.store.object_store
    pipeline(ctx).materialize()
    left = tmp_path / "c" / "index" / f".tmp-{'d' * 32}-{'e' * 32}.{'f' * 32}.json"  # a killed write's
    left.write_bytes(b"{")
    foreign = tmp_path / "c" / "index" / ".tmp-mine"
    foreign.write_bytes(b"keep")
    assert ctx.prune() == [] and left.exists()  # young: may be a write under way
    monkeypatch.setattr(cache_module, "ORPHAN_GRACE", -1.0)
    assert ctx.prune() == [] and not left.exists() and foreign.exists()
    assert list(Context.open(f"local://{tmp_path}/c", trust=True)["Double"]) == [i * 2 for i in range(10)]
