"""The Store interface's local implementation: atomic writes, paths that cannot escape, links never followed."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job_orchestra.errors import CacheError, StorePathError
from job_orchestra.stores import TEMP_SUFFIX, LocalStore, Store, check_rel, open_store

names = st.text(alphabet="abcxyz0_-.", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
rels = st.lists(names, min_size=1, max_size=3).map("/".join).filter(lambda r: not r.endswith(TEMP_SUFFIX))


@settings(max_examples=60, deadline=None)
@given(contents=st.dictionaries(rels, st.binary(max_size=300), max_size=8))
def test_round_trip_list_size_delete(tmp_path_factory, contents):
    store = LocalStore(tmp_path_factory.mktemp("s"))
    written = {}
    for rel, data in contents.items():
        try:
            store.write(rel, data)
        except (StorePathError, NotADirectoryError, IsADirectoryError, FileExistsError):
            continue  # "a" as a file and "a/b" cannot both exist, as on any file system
        written = {r: d for r, d in written.items() if not r.startswith(rel + "/") and not rel.startswith(r + "/")}
        written[rel] = data
    for rel, data in written.items():
        assert store.read(rel) == data
        assert store.size(rel) == len(data)
        assert store.exists(rel)
    assert store.list("") == sorted(written)
    for rel in written:
        store.delete(rel)
        assert not store.exists(rel)
    assert store.list("") == []


@pytest.mark.parametrize("rel", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "c:/x", "a/.", "a\0b"])
def test_escaping_paths_are_refused(tmp_path, rel):
    store = LocalStore(tmp_path / "c")
    with pytest.raises(StorePathError):
        check_rel(rel)
    for call in (store.read, store.exists, store.delete, store.size, lambda r: store.write(r, b"x")):
        try:
            result = call(rel)
        except StorePathError:
            continue
        assert result is False  # exists() answers False instead
    assert not (tmp_path / "x").exists()


def test_links_inside_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"keep me")
    store = LocalStore(tmp_path / "c")
    os.symlink(outside, store.root / "d")
    os.symlink(outside / "secret", store.root / "f")
    with pytest.raises(StorePathError):
        store.write("d/secret", b"overwritten")
    with pytest.raises(StorePathError):
        store.read("d/secret")
    with pytest.raises(StorePathError):
        store.read("f")
    store.delete("f")  # the link goes, its target stays
    assert (outside / "secret").read_bytes() == b"keep me"
    assert not os.path.lexists(store.root / "f")
    assert store.list("") == []


def test_a_reader_never_sees_a_partial_write(tmp_path):
    store = LocalStore(tmp_path)
    values = [bytes([i]) * 200_000 for i in range(20)]
    store.write("v", values[0])
    stop = threading.Event()
    seen: list[bytes] = []

    def reader():
        while not stop.is_set():
            seen.append(store.read("v"))

    thread = threading.Thread(target=reader)
    thread.start()
    for value in values[1:]:
        store.write("v", value)
    stop.set()
    thread.join()
    assert seen and all(data in values for data in seen)
    assert [p for p in os.listdir(tmp_path) if p.endswith(TEMP_SUFFIX)] == []


def test_owner_and_open_store(tmp_path, monkeypatch):
    store = open_store(tmp_path / "c")
    assert isinstance(store, LocalStore) and isinstance(store, Store)
    assert store.owner_trusted()
    assert open_store(store) is store
    assert open_store(store.url).root == store.root
    monkeypatch.setattr(os, "getuid", lambda: store.owner_uid() + 1)
    assert not store.owner_trusted()
    with pytest.raises(StorePathError):
        open_store("file://otherhost/x")


def test_url_without_backend_is_a_clear_error(monkeypatch):
    import importlib

    real = importlib.import_module

    def missing(name, *args):
        if name == "job_orchestra.store_fsspec":
            raise ModuleNotFoundError("no", name="fsspec")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(CacheError, match="fsspec"):
        open_store("s3://bucket/cache")


def test_read_all_reads_regular_files_only(tmp_path):
    store = LocalStore(tmp_path / "c")
    for name in ("a", "b", "big"):
        store.write(f"index/{name}", name.encode() * (100 if name == "big" else 1))
    (tmp_path / "outside").write_bytes(b"secret")
    os.symlink(tmp_path / "outside", store.root / "index" / "link")
    (store.root / "index" / f".x{TEMP_SUFFIX}").write_bytes(b"half")
    os.mkdir(store.root / "index" / "sub")
    fast = list(store.read_all("index", 50))
    assert fast == [("index/a", b"a"), ("index/b", b"b")]
    assert list(Store.read_all(store, "index", 50)) == fast  # the generic version agrees
    assert list(store.read_all("nothing", 50)) == []
    os.symlink(tmp_path, store.root / "linked")
    assert list(store.read_all("linked", 50)) == []
