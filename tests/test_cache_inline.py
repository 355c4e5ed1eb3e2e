"""Small values inline in their index records, results pruned under a reader, and tampered inline records.

- values of random sizes on both sides of ``INLINE_MAX`` come back exactly in a fresh process;
- a flipped byte anywhere in an inline record's value, or in its signature, is refused before unpickling;
- a result pruned by another process after this one listed it is run again (with a warning), while a
  damaged value is still refused loudly.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import job_orchestra.cache as cache_module
from job_orchestra import Context, Step, value_codec
from job_orchestra.cache_index import INLINE_MAX, read_index
from job_orchestra.errors import CachedResultGoneError, CachedResultGoneWarning, CacheError, UntrustedCacheError
from job_orchestra.stores import LocalStore
from tests.faultkit import payload_bytes
from tests.test_cache import RUNS, Param, pipeline

ROOT = Path(__file__).resolve().parent.parent
FP = "{:032x}:test".format

READER = """
import json, pickle, sys
from job_orchestra import Context, Step
ctx = Context.open(sys.argv[1])
keys = sorted(k for k in ctx if k != "context_meta")
lazy = all(not ctx.is_loaded(k) for k in keys)
sys.stdout.buffer.write(pickle.dumps({"lazy": lazy, "values": {k: ctx[k] for k in keys}}))
"""


def _fresh_process_read(cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", READER, str(cache)], capture_output=True, cwd=ROOT, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    return pickle.loads(done.stdout)


def _pickled_size(value: object) -> int:
    return value_codec.encode(value).nbytes


# sizes around the threshold on both sides: the pickle of b"x" * n is n plus a few bytes of framing
sizes = st.one_of(
    st.integers(INLINE_MAX - 64, INLINE_MAX + 64),
    st.integers(0, 4096),
    st.integers(INLINE_MAX + 1, 3 * INLINE_MAX),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), sizes), min_size=1, max_size=12))
def test_writes_around_the_threshold_come_back_exactly_in_a_fresh_process(tmp_path_factory, writes):
    cache = tmp_path_factory.mktemp("inline") / "cache"
    ctx = Context.open(cache)
    newest: dict[str, bytes] = {}
    every: dict[tuple[str, str], bytes] = {}  # (key, fingerprint) -> the value written last for it
    for key, version, size in writes:  # a key written again (same or other version): the newest shows
        value = bytes([version]) * size
        ctx._put_result(f"k{key}", value, FP(version))
        newest[f"k{key}"] = every[(f"k{key}", FP(version))] = value
    records = read_index(LocalStore(cache), None)
    for (key, fingerprint), value in every.items():
        record = next(r for r in records[key].values() if r["fingerprint"] == fingerprint)
        assert record.get("inline", False) == (_pickled_size(value) <= INLINE_MAX), (key, record)
    seen = _fresh_process_read(cache)
    assert seen["lazy"] and seen["values"] == newest
    again = Context.open(cache)
    for (key, fingerprint), value in every.items():  # every version, not only the newest, reads back exactly
        assert again._cache.reuse(key, fingerprint)
        assert again[key] == value


def _inline_record(cache: Path) -> Path:
    files = sorted((cache / "index").iterdir())
    inline = [f for f in files if json.loads(f.read_bytes().partition(b"\n")[0]).get("inline")]
    assert inline
    return inline[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["value", "hmac", "blake3", "separator"]), at=st.floats(0, 1, exclude_max=True))
def test_a_flipped_byte_of_an_inline_record_is_refused_before_unpickling(tmp_path_factory, where, at):
    root = tmp_path_factory.mktemp("tamper")
    marker = root / "ran"
    signed = where == "hmac"
    key = b"secret" if signed else None
    ctx = Context.open(root / "c", key=key)
    ctx._put_result("x", {"small": list(range(300))}, FP(1))
    record = _inline_record(root / "c")
    data = bytearray(record.read_bytes())
    header_end = data.index(b"\n")
    if where == "value":  # the pickled value: a byte of it, or the whole of it replaced by a payload
        position = header_end + 1 + int(at * (len(data) - header_end - 1))
        data[position] ^= 1 << int(at * 8)
        evil = payload_bytes(marker, len(data) - header_end - 1)
        variants = [bytes(data), bytes(data[: header_end + 1]) + evil]
    else:
        field = {"hmac": b'"hmac": "', "blake3": b'"blake3": "', "separator": b""}[where]
        position = header_end if where == "separator" else data.index(field) + len(field) + int(at * 64)
        data[position] = ord("0") if data[position] != ord("0") else ord("1")
        variants = [bytes(data)]
    for variant in variants:
        record.write_bytes(variant)
        try:
            reopened = Context.open(root / "c", key=key)
        except (CacheError, UntrustedCacheError):
            continue  # refused when opened: the record itself does not check
        with pytest.raises(CacheError, match=r"damaged|altered|not signed"):
            reopened["x"]
    assert not marker.exists()


def test_a_truncated_inline_record_is_refused_when_opened(tmp_path):
    ctx = Context.open(tmp_path / "c")
    ctx._put_result("x", list(range(100)), FP(1))
    record = _inline_record(tmp_path / "c")
    record.write_bytes(record.read_bytes()[:-3])
    with pytest.raises(CacheError, match=r"its value is \d+ bytes, not \d+"):
        Context.open(tmp_path / "c")


@pytest.mark.parametrize("executor", [None, "threads"])
def test_a_result_pruned_by_another_process_runs_again_with_a_warning(tmp_path, layout, executor):
    pipeline(Context.open(tmp_path / "c"), 3).materialize()
    reader = Context.open(tmp_path / "c")  # lists both results, reads neither yet
    assert not reader.is_loaded("Double") and not reader.is_loaded("Param")
    assert len(Context.open(tmp_path / "c").prune(max_bytes=0)) == 2  # "another process" prunes everything
    with pytest.raises(CachedResultGoneError, match=r"'Param'.* is gone .*lost, not damaged") as caught:
        reader["Param"]
    assert caught.value.key == "Param" and caught.value.url == reader.store_url
    back = pickle.loads(pickle.dumps(caught.value))  # as it comes back from a worker that read the cache
    assert (type(back), back.key, back.url, str(back)) == (
        type(caught.value),
        "Param",
        reader.store_url,
        str(caught.value),
    )
    RUNS.clear()
    with pytest.warns(CachedResultGoneWarning) as seen:
        assert pipeline(reader, 3).materialize(executor=executor) == 6
    messages = [str(w.message) for w in seen]
    assert any("'Double'" in m and reader.store_url in m and "runs again" in m for m in messages)
    assert sorted(name for name, _ in RUNS) == ["Double", "Param"]
    RUNS.clear()
    assert pipeline(Context.open(tmp_path / "c"), 3).materialize() == 6 and RUNS == []  # written again


def test_a_record_naming_a_deleted_value_file_is_removed_and_its_step_runs_again(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "INLINE_MAX", 0)
    pipeline(Context.open(tmp_path / "c"), 2).materialize()
    for value in (tmp_path / "c" / "values").iterdir():  # deleted by hand, records left behind
        value.unlink()
    RUNS.clear()
    with pytest.warns(CachedResultGoneWarning) as seen:
        assert pipeline(Context.open(tmp_path / "c"), 2).materialize() == 4
    assert sorted(str(w.message).split("'")[1] for w in seen) == ["Double", "Param"]
    assert sorted(name for name, _ in RUNS) == ["Double", "Param"]
    assert len(list((tmp_path / "c" / "index").iterdir())) == 2  # the dangling records were replaced


def test_a_damaged_value_is_still_refused_loudly_by_materialize(tmp_path, layout):
    pipeline(Context.open(tmp_path / "c"), 2).materialize()
    folder = "index" if layout == "inline" else "values"
    for file in (tmp_path / "c" / folder).iterdir():
        data = bytearray(file.read_bytes())
        data[-2] ^= 0xFF  # a byte of the value itself (inline: the end of the record's file)
        file.write_bytes(bytes(data))
    RUNS.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CachedResultGoneWarning)
        with pytest.raises(CacheError, match=r"damaged.*Nothing of it was unpickled") as caught:
            pipeline(Context.open(tmp_path / "c"), 2).materialize()
    assert not isinstance(caught.value, CachedResultGoneError) and RUNS == []


def test_load_gives_the_newest_written_version_and_open_the_one_matching_the_fingerprint(tmp_path, layout):
    ctx = Context.open(tmp_path / "c")
    for value in (1, 2, 1):  # the third run reuses version 1: nothing is written, version 2 stays the newest
        pipeline(ctx, value).materialize()
    loaded = Context.load(tmp_path / "c")
    assert loaded["Double"] == 4 and loaded["Param"]["value"] == 2 and loaded.store_url is None
    RUNS.clear()
    assert pipeline(loaded, 1).materialize() == 2 and sorted(n for n, _ in RUNS) == ["Double", "Param"]
    opened = Context.open(tmp_path / "c")  # shows the newest too, and the plan swaps in the matching version
    assert opened["Double"] == 4
    RUNS.clear()
    assert pipeline(opened, 1).materialize() == 2 and RUNS == []
    assert opened["Param"]["value"] == 1 and opened.fingerprint("Double") == ctx.fingerprint("Double")


class Triple(Step):
    def run(self, p):
        RUNS.append(("Triple", p["value"]))
        return p["value"] * 3


def test_a_result_pruned_under_a_dask_worker_reading_it_runs_again(tmp_path):
    distributed = pytest.importorskip("distributed")
    cache = tmp_path / "c"
    head = pipeline(Context.open(cache), 4)
    head.materialize()
    reader = Context.open(cache)  # lists Param, reads it not
    param = Param(ctx=reader)
    param.value = 4
    fingerprint = reader.fingerprint("Param")
    other = Context.open(cache)
    other._cache.current["Param"] = fingerprint.partition(":")[0]
    other._cache.forget("Param")  # its record (and value file) deleted, as prune() elsewhere would
    with distributed.Client(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as client:
        RUNS.clear()
        with pytest.warns(CachedResultGoneWarning, match="'Param'"):
            assert Triple(depends_on=param, ctx=reader).materialize(client) == 12
    assert reader["Param"]["value"] == 4 and reader.location("Param") == reader.store_url
    assert Context.open(cache)._cache.find("Param", fingerprint.partition(":")[0]) is not None  # written again
