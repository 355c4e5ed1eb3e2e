"""Safety of persistent caches: another user's cache is refused unless trusted or signed; records are signed."""

from __future__ import annotations

import json
import os

import pytest

import job_orchestra.cache as cache_module
from job_orchestra import Context
from job_orchestra.errors import CacheError, UntrustedCacheError
from job_orchestra.stores import LocalStore
from tests.test_cache import RUNS, pipeline


def _written(path) -> None:
    pipeline(Context.open(path), 2).materialize()


def test_a_cache_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    _written(tmp_path / "c")
    monkeypatch.setattr(LocalStore, "owner_trusted", lambda self: False)
    with pytest.raises(UntrustedCacheError, match=r"another user.*trust=True.*key="):
        Context.open(tmp_path / "c")
    assert Context.open(tmp_path / "c", trust=True)["Double"] == 4


def test_the_owner_check_reads_the_directory_owner(tmp_path, monkeypatch):
    _written(tmp_path / "c")
    owner = os.stat(tmp_path / "c").st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)  # as if we were someone else
    with pytest.raises(UntrustedCacheError, match=f"uid {owner}"):
        Context.open(tmp_path / "c")
    monkeypatch.setattr(os, "getuid", lambda: owner)
    assert Context.open(tmp_path / "c")["Double"] == 4


def test_a_signed_cache_is_opened_with_its_key_whoever_owns_it(tmp_path, monkeypatch):
    pipeline(Context.open(tmp_path / "c", key=b"secret"), 2).materialize()
    monkeypatch.setattr(LocalStore, "owner_trusted", lambda self: False)
    ctx = Context.open(tmp_path / "c", key=b"secret")
    RUNS.clear()
    assert pipeline(ctx, 2).materialize() == 4 and RUNS == []
    with pytest.raises(UntrustedCacheError, match="signed with another key or altered"):
        Context.open(tmp_path / "c", key=b"other")


@pytest.mark.parametrize("edit", ["unsigned", "altered"])
def test_unsigned_or_altered_records_are_refused_with_a_key(tmp_path, edit, layout):
    pipeline(Context.open(tmp_path / "c", key=b"k"), 2).materialize()
    record_file = sorted((tmp_path / "c" / "index").iterdir())[0]
    header, newline, value = record_file.read_bytes().partition(b"\n")  # an inline value follows its record
    assert bool(value) == (layout == "inline")
    record = json.loads(header)
    if edit == "unsigned":
        del record["hmac"]
    else:
        record["blake3"] = "0" * 64
    record_file.write_bytes(json.dumps(record).encode() + newline + value)
    with pytest.raises(UntrustedCacheError, match="not signed" if edit == "unsigned" else "altered"):
        Context.open(tmp_path / "c", key=b"k")


def test_damaged_record_is_named(tmp_path):
    _written(tmp_path / "c")
    record_file = sorted((tmp_path / "c" / "index").iterdir())[0]
    record_file.write_text("{not json")
    with pytest.raises(CacheError, match=f"{record_file.name}.*damaged.*Delete that file"):
        Context.open(tmp_path / "c")


def test_a_symlinked_value_is_never_followed(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "INLINE_MAX", 0)  # value files (a link in index/ is never read: not listed)
    _written(tmp_path / "c")
    secret = tmp_path / "secret.dill"
    value = next((tmp_path / "c" / "values").iterdir())
    secret.write_bytes(value.read_bytes())
    value.unlink()
    os.symlink(secret, value)
    ctx = Context.open(tmp_path / "c")
    with pytest.raises(CacheError, match="symbolic link"):
        [ctx[k] for k in ("Param", "Double")]


def test_prune_never_deletes_through_a_linked_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "INLINE_MAX", 0)  # value files: a linked values/ folder
    _written(tmp_path / "c")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / f"{'a' * 32}.{'b' * 32}.{'c' * 16}.dill"  # named like an orphan value file
    victim.write_bytes(b"precious")
    os.utime(victim, (0, 0))
    values = tmp_path / "c" / "values"
    for file in values.iterdir():
        file.rename(outside / file.name)
    values.rmdir()
    os.symlink(outside, values)
    ctx = Context.open(tmp_path / "c")
    with pytest.raises(CacheError, match="symbolic link"):  # refused, not followed
        ctx.prune(max_bytes=0)
    assert victim.read_bytes() == b"precious"
    assert len(list(outside.iterdir())) == 3  # the two values moved there and the victim: all kept
