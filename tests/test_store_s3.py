"""FsspecStore on a real S3-protocol server (moto's, started by tests/s3_server.py) and on memory://.

What is stored is checked with a plain boto3 client, not through our own code; a concurrent reader runs
in another process (S3) or thread (memory://) while large objects are written and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra.errors import StorePathError, StoreUnavailableError
from job_orchestra.store_fsspec import FsspecStore
from job_orchestra.stores import LocalStore, Store, open_store
from tests.s3_server import BUCKET, boto3_client

pytest.importorskip("fsspec")


@pytest.fixture(params=["s3", "memory", "file"])
def store_url(request):
    """An empty place for a store: a prefix on the S3 server, in fsspec's memory, or a local directory
    through fsspec's file system (the path for file systems that are not object stores)."""
    if request.param == "s3":
        yield request.getfixturevalue("s3_url")
        return
    if request.param == "file":
        yield request.getfixturevalue("tmp_path").as_uri() + "/cache"
        return
    url = f"memory://jo-test-{uuid.uuid4().hex[:12]}"
    yield url
    import fsspec

    fs = fsspec.filesystem("memory")
    root = url.removeprefix("memory:/")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def stored_keys(endpoint: str, url: str) -> list[str]:
    """The objects really in the bucket under ``url``, as boto3 lists them."""
    prefix = url.removeprefix(f"s3://{BUCKET}/") + "/"
    pages = boto3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"][len(prefix) :] for page in pages for item in page.get("Contents", []))


segment = st.text("abcxyz019_-.", min_size=1, max_size=6).filter(lambda s: s not in {".", ".."})
relative = st.lists(segment, min_size=1, max_size=3).map("/".join)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(relative, st.binary(max_size=2000), min_size=1, max_size=8), data=st.data())
def test_write_read_list_size_delete_match_what_is_stored(request, store_url, files, data):
    # A path that is also a "directory" of another one is fine on object stores, not on file systems.
    files = {rel: value for rel, value in files.items() if not any(o.startswith(rel + "/") for o in files)}
    url = f"{store_url}/{uuid.uuid4().hex[:8]}"
    store = FsspecStore(url)
    for rel, value in files.items():
        store.write(rel, value)
    assert store.list("") == sorted(files)
    for rel, value in files.items():
        assert store.exists(rel) and store.read(rel) == value and store.size(rel) == len(value)
    if url.startswith("s3://"):
        assert stored_keys(request.getfixturevalue("s3_endpoint"), url) == sorted(
            files
        )  # one object per entry, where it says
    folder = data.draw(st.sampled_from(sorted(files))).rpartition("/")[0]
    assert store.list(folder) == sorted(rel for rel in files if rel.startswith(folder + "/") or not folder)
    assert store.list(folder + "-not-there" if folder else "not-there") == []
    gone = data.draw(st.lists(st.sampled_from(sorted(files)), unique=True))
    for rel in gone:
        store.delete(rel)
    store.delete(gone[0] if gone else "never-written")  # deleting what is not there is not an error
    assert store.list("") == sorted(set(files) - set(gone))
    for rel in gone:
        assert not store.exists(rel)
        with pytest.raises(FileNotFoundError):
            store.read(rel)


@pytest.mark.parametrize(
    "rel", ["..", "../x", "a/../../b", "a/..", "/etc/passwd", "a//b", "", "./a", "a\\..\\b", "a\nb"]
)
def test_paths_that_could_escape_the_root_are_refused_and_nothing_is_written(request, store_url, rel):
    store = FsspecStore(store_url + "/inner")
    for call in (lambda: store.write(rel, b"x"), lambda: store.read(rel), lambda: store.delete(rel)):
        with pytest.raises(StorePathError, match=re.escape(repr(rel))) as info:
            call()
        assert isinstance(info.value, ValueError) and info.value.path == rel
    if store_url.startswith("s3://"):
        assert stored_keys(request.getfixturevalue("s3_endpoint"), store_url) == []


def test_open_store_picks_fsspec_for_urls_and_the_local_store_for_paths(tmp_path):
    assert type(open_store("memory://somewhere")) is FsspecStore
    assert isinstance(open_store("memory://somewhere"), Store)
    assert type(open_store(tmp_path)) is LocalStore and type(open_store(tmp_path.as_uri())) is LocalStore


def test_a_store_pickles_by_url_and_options(store_url):
    store = FsspecStore(store_url)
    store.write("a/b.bin", b"payload")
    again = pickle.loads(pickle.dumps(store))
    assert type(again) is type(store) and again.url == store.url
    assert again.read("a/b.bin") == b"payload"


def self_checking(version: int, size: int) -> bytes:
    """``size`` bytes whose first 32 are the SHA-256 of the rest: a torn or mixed object fails the check."""
    body = version.to_bytes(4, "big") + os.urandom(size - 36)
    return hashlib.sha256(body).digest() + body


READER = textwrap.dedent(
    """
    import hashlib, json, sys
    from job_orchestra.store_fsspec import FsspecStore
    store = FsspecStore(sys.argv[1])
    seen, reads, missing, torn = set(), 0, 0, 0
    store.write("ready", b"")
    while True:
        done = store.exists("done")
        try:
            data = store.read("big.bin")
        except FileNotFoundError:
            missing += 1
        else:
            reads += 1
            if hashlib.sha256(data[32:]).digest() != data[:32]:
                torn += 1
            else:
                version = int.from_bytes(data[32:36], "big")
                if version not in seen:
                    seen.add(version)
                    store.write(f"ack-{version}", b"")  # the writer goes on once this version was read
        if done:
            break
    print(json.dumps({"seen": sorted(seen), "reads": reads, "missing": missing, "torn": torn}))
    """
)


def wait_for(store, rel: str, process: subprocess.Popen) -> None:
    while not store.exists(rel):
        assert process.poll() is None, "the reader process ended early"


def test_a_reader_process_sees_whole_objects_or_nothing_while_large_ones_are_rewritten(s3_url):
    store = FsspecStore(s3_url)
    reader = subprocess.Popen([sys.executable, "-c", READER, s3_url], stdout=subprocess.PIPE, text=True)
    try:
        wait_for(store, "ready", reader)
        for version in range(5):
            store.write("big.bin", self_checking(version, 6 * 2**20 + version))  # 6 MB, read while written
            wait_for(store, f"ack-{version}", reader)
        store.write("done", b"")
        out, _ = reader.communicate(timeout=120)
    finally:
        reader.kill()
    report = json.loads(out)
    print("reader:", report)  # shown with -s: how many reads overlapped the writes
    assert reader.returncode == 0
    assert report["torn"] == 0
    assert report["seen"] == [0, 1, 2, 3, 4]  # every version, each whole


def test_a_reader_thread_sees_whole_objects_or_nothing(store_url):
    store = FsspecStore(store_url)
    stop = threading.Event()
    torn: list[int] = []
    reads = [0]

    def read_forever():
        while not stop.is_set():
            try:
                data = store.read("big.bin")
            except FileNotFoundError:
                continue
            reads[0] += 1
            if hashlib.sha256(data[32:]).digest() != data[:32]:
                torn.append(len(data))

    thread = threading.Thread(target=read_forever)
    thread.start()
    try:
        for v in range(20):
            store.write("big.bin", self_checking(v, 2**20))
    finally:
        stop.set()
        thread.join()
    assert torn == []
    assert [p.rpartition("/")[2] for p in store.fs.find(store.root)] == ["big.bin"]  # no temporary file left
    assert hashlib.sha256(store.read("big.bin")[32:]).digest() == store.read("big.bin")[:32]


def test_import_job_orchestra_does_not_import_fsspec_and_opening_a_url_does():
    code = textwrap.dedent(
        """
        import sys
        import job_orchestra
        from job_orchestra.store_fsspec import FsspecStore
        assert "fsspec" not in sys.modules, "fsspec imported before a URL is opened"
        FsspecStore("memory://somewhere")
        assert "fsspec" in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_protocol_and_a_missing_package_say_what_to_do():
    with pytest.raises(StoreUnavailableError, match=r"nosuchfs://.*knows no nosuchfs:// file system"):
        FsspecStore("nosuchfs://bucket/cache")
    code = textwrap.dedent(
        """
        import sys
        sys.modules["s3fs"] = None  # as if the s3 extra were not installed
        from job_orchestra.errors import StorePathError, StoreUnavailableError
        from job_orchestra.store_fsspec import FsspecStore
        try:
            FsspecStore("s3://bucket/cache")
        except StoreUnavailableError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "s3://bucket/cache" in out and 'pip install "job-orchestra[s3]"' in out


def test_what_another_process_writes_after_a_listing_is_read_listed_and_sized(store_url):
    """fsspec keeps folder listings (s3fs even answers reads from them): nothing may hide a new object."""
    store = FsspecStore(store_url)
    store.write("index/old.json", b"old")
    with pytest.raises(FileNotFoundError):
        store.read("index/new.json")
    assert not store.exists("index/new.json")
    assert store.list("index") == ["index/old.json"]  # the last call before the other writer: a listing
    code = "import sys; from job_orchestra.stores import open_store; open_store(sys.argv[1]).write(sys.argv[2], b'x'*9)"
    if store_url.startswith("memory://"):  # one process's memory: another thread stands for the other writer
        thread = threading.Thread(target=lambda: FsspecStore(store_url).write("index/new.json", b"x" * 9))
        thread.start()
        thread.join()
    else:
        subprocess.run([sys.executable, "-c", code, store_url, "index/new.json"], check=True)
    assert store.read("index/new.json") == b"x" * 9
    assert store.exists("index/new.json") and store.size("index/new.json") == 9
    assert store.list("index") == ["index/new.json", "index/old.json"]


@pytest.mark.parametrize("count", [0, 1, 7])
def test_read_all_gives_every_small_object_below_a_folder_in_one_batch(store_url, count):
    store = FsspecStore(store_url)
    small = {f"index/r{i}.json": os.urandom(i + 1) for i in range(count)}
    for rel, data in small.items():
        store.write(rel, data)
    store.write("index/large.json", b"x" * 5000)  # over the limit: not ours, skipped
    store.write("values/v.bin", b"v")  # another folder
    assert dict(store.read_all("index", 4096)) == small
    assert list(store.read_all("nothing-here", 4096)) == []


def test_modified_is_when_an_object_was_written(store_url):
    store = FsspecStore(store_url)
    before = time.time()
    store.write("values/a.bin", b"a")
    assert before - 5 <= store.modified("values/a.bin") <= time.time() + 5  # the server's clock, to a second
    with pytest.raises(FileNotFoundError):
        store.modified("values/missing.bin")


class _Opens:
    """A value whose unpickling creates a file: proof that an entry was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("signed_with", [None, b"other key", "tampered", b"the key"])
def test_open_with_key_checks_the_manifest_signature_on_every_store(store_url, tmp_path, signed_with):
    """key= promises that nothing unsigned is unpickled: on an object store as in a local directory."""
    from job_orchestra import Context
    from job_orchestra.errors import SnapshotError

    proof = tmp_path / "unpickled"
    ctx = Context()
    ctx["Load"] = _Opens(str(proof))
    snap = tmp_path / "snap"
    ctx.store(snap, key="tampered" if signed_with == "tampered" else signed_with)
    if signed_with == "tampered":  # altered after it was signed with the right key
        manifest = json.loads((snap / "manifest.json").read_text())
        manifest["entries"][0]["key"] = "Load"
        (snap / "manifest.json").write_text(json.dumps(manifest) + " ")
    url = f"{store_url}/{uuid.uuid4().hex[:8]}"
    store = FsspecStore(url)
    for root, _, files in os.walk(snap):
        for name in files:
            full = os.path.join(root, name)
            store.write(os.path.relpath(full, snap).replace(os.sep, "/"), open(full, "rb").read())
    key = b"the key" if signed_with != "tampered" else "tampered"
    if signed_with in (b"the key",):
        opened = Context.open(url, key=key)
        opened["Load"]
        assert proof.exists()  # a signed entry loads (and here, runs what it holds)
        return
    with pytest.raises(SnapshotError, match="not signed" if signed_with is None else "does not match"):
        Context.open(url, key=key)
    assert not proof.exists()
