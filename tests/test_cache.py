"""Context.open: write-through, every version kept by fingerprint, plan reuse, prune, disk usage, interop."""

from __future__ import annotations

import datetime
import os
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import job_orchestra.cache as cache_module
from job_orchestra import Context, Step
from job_orchestra.cache_index import MARKER
from job_orchestra.errors import CacheError, CacheWriteWarning
from job_orchestra.plan import Availability
from tests.faultkit import payload_bytes

RUNS: list[tuple[str, object]] = []


class Param(Step):
    def run(self):
        RUNS.append(("Param", self.value))
        return {"value": self.value, "array": np.arange(self.value % 7 + 1)}


class Double(Step):
    def run(self, p):
        RUNS.append(("Double", p["value"]))
        return p["value"] * 2


def pipeline(ctx: Context, value: int) -> Step:
    p = Param(ctx=ctx)
    p.value = value
    return Double(depends_on=p, ctx=ctx)


def test_results_are_written_through_and_read_lazily(tmp_path):
    ctx = Context.open(tmp_path / "c")
    assert ctx.store_url == (tmp_path / "c").as_uri()
    RUNS.clear()
    assert pipeline(ctx, 5).materialize() == 10
    assert ctx.location("Double") == ctx.store_url and ctx.location("missing") is None
    ctx["by_hand"] = 1
    assert ctx.location("by_hand") == "memory"
    again = Context.open(tmp_path / "c")
    assert not again.is_loaded("Param") and not again.is_loaded("Double")
    assert "by_hand" not in again  # values put in by hand are not step results: memory only
    RUNS.clear()
    assert pipeline(again, 5).materialize() == 10
    assert RUNS == []
    assert again.is_loaded("Double") and not again.is_loaded("Param")  # the input of a cached head is never read
    assert Context().location("x") is None and Context().store_url is None


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_a_version_seen_before_never_runs_again(tmp_path_factory, values):
    ctx = Context.open(tmp_path_factory.mktemp("v") / "c")
    seen: set[int] = set()
    current = None
    for value in values:
        head = pipeline(ctx, value)
        row = head.execution_plan()["Param"]
        if value in seen and value != current:
            assert row.availability is Availability.AVAILABLE
            assert row.reason == "cached from an earlier version"
        elif value not in seen:
            assert row.runs or row.availability is not Availability.AVAILABLE
        RUNS.clear()
        assert head.materialize() == value * 2
        ran = [name for name, _ in RUNS]
        assert ran == ([] if value in seen else ["Param", "Double"])
        seen.add(value)
        current = value
    fresh = Context.open(ctx._cache.store.url)  # a new process sees every version too
    for value in seen:
        RUNS.clear()
        assert pipeline(fresh, value).materialize() == value * 2
        assert RUNS == []
    assert fresh.disk_usage().entries == 2 * len(seen)


def test_version_for(tmp_path):
    ctx = Context.open(tmp_path / "c")
    pipeline(ctx, 1).materialize()
    fp = ctx.fingerprint("Param")
    assert ctx.version_for("Param", fp)
    assert not ctx.version_for("Param", "0" * 32 + ":x")
    assert not Context().version_for("Param", fp)


def test_another_process_result_is_reused_when_planned(tmp_path):
    first = Context.open(tmp_path / "c")
    second = Context.open(tmp_path / "c")  # opened before the other wrote anything
    pipeline(first, 3).materialize()
    head = pipeline(second, 3)
    assert [row.availability for row in head.execution_plan()] == [Availability.AVAILABLE] * 2
    RUNS.clear()
    assert head.materialize() == 6 and RUNS == []


def test_delete_removes_the_version_from_disk(tmp_path):
    ctx = Context.open(tmp_path / "c")
    pipeline(ctx, 2).materialize()
    del ctx["Double"]
    ctx.invalidate("Param")
    reopened = Context.open(tmp_path / "c")
    assert "Double" not in reopened and "Param" not in reopened
    RUNS.clear()
    pipeline(reopened, 2).materialize()
    assert [n for n, _ in RUNS] == ["Param", "Double"]


def test_prune_and_disk_usage(tmp_path, monkeypatch, layout):
    ctx = Context.open(tmp_path / "c")
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    for value in range(5):
        clock[0] += 100
        pipeline(ctx, value).materialize()
    usage = ctx.disk_usage()
    assert usage.entries == 10 and set(usage.per_step) == {"Param", "Double"}
    assert usage.total_bytes == sum(usage.per_step.values()) > 0
    outside = tmp_path / "outside"
    outside.write_text("keep")
    (tmp_path / "c" / "values").mkdir(exist_ok=True)  # none yet if every value is inline
    os.symlink(outside, tmp_path / "c" / "values" / "link.dill")
    (tmp_path / "c" / "index" / "notes.txt").write_text("not ours")

    removed = ctx.prune(keep=3)
    assert len(removed) == 4 and {r.key for r in removed} == {"Param", "Double"}
    assert ctx.disk_usage().entries == 6
    clock[0] += 0
    removed = ctx.prune(older_than=datetime.timedelta(seconds=150))  # written at +300, +400, +500; now +500
    assert sorted({r.written for r in removed}) == [1_000_300.0]
    before = ctx.disk_usage()
    removed = ctx.prune(max_bytes=before.total_bytes - 1)
    assert removed and ctx.disk_usage().total_bytes <= before.total_bytes - 1
    assert min(r.written for r in removed) == 1_000_400.0  # oldest first
    assert ctx.prune(max_bytes=0) and ctx.disk_usage() == (0, 0, {})
    assert outside.read_text() == "keep" and os.path.islink(tmp_path / "c" / "values" / "link.dill")
    assert (tmp_path / "c" / "index" / "notes.txt").exists()
    assert "Double" in ctx  # loaded values stay in memory, now said to live there
    assert ctx.location("Double") == "memory"
    with pytest.raises(ValueError, match="keep"):
        ctx.prune(keep=-1)
    assert Context().prune(keep=0) == [] and Context().disk_usage().entries == 0


def test_unpicklable_result_stays_in_memory_with_a_warning(tmp_path):
    class Opaque:
        def __reduce__(self):
            raise TypeError("cannot be pickled")

    class Handle(Step):
        def run(self):
            return Opaque()

    ctx = Context.open(tmp_path / "c")
    with pytest.warns(CacheWriteWarning, match="'Handle'.*kept in memory only"):
        Handle(ctx=ctx).materialize()
    assert ctx.location("Handle") == "memory"
    assert [p.name for p in (tmp_path / "c").rglob("*") if p.is_file()] == ["cache.json"]


def test_a_foreign_directory_is_not_made_a_cache(tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(CacheError, match="other files"):
        Context.open(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_snapshot_opens_as_a_cache_and_cache_loads_as_a_snapshot(tmp_path):
    plain = Context()
    RUNS.clear()
    pipeline(plain, 4).materialize()
    plain["given"] = [1, 2]
    plain.store(tmp_path / "snap")
    opened = Context.open(tmp_path / "snap")
    assert opened["Double"] == 8 and opened["given"] == [1, 2]
    RUNS.clear()
    assert pipeline(opened, 4).materialize() == 8 and RUNS == []
    assert pipeline(opened, 6).materialize() == 12  # written into the snapshot directory, as a cache
    assert pipeline(opened, 4).materialize() == 8 and [n for n, _ in RUNS] == ["Param", "Double"]
    assert (tmp_path / "snap" / MARKER).exists()

    loaded = Context.load(tmp_path / "snap")  # a cache directory loads: its newest written versions, in memory
    assert loaded["Double"] == 12 and loaded["given"] == [1, 2] and loaded.store_url is None
    RUNS.clear()
    assert pipeline(loaded, 6).materialize() == 12 and RUNS == []

    cache_only = Context.open(tmp_path / "cache")
    pipeline(cache_only, 9).materialize()
    back = Context.load(tmp_path / "cache")
    assert back["Double"] == 18 and back.fingerprint("Param") == cache_only.fingerprint("Param")
    back.store(tmp_path / "snap2")  # and a loaded cache stores as an ordinary snapshot
    assert Context.load(tmp_path / "snap2")["Double"] == 18


@pytest.mark.parametrize("same_size", [True, False])
def test_damaged_value_is_refused_before_unpickling(tmp_path, same_size, monkeypatch):
    monkeypatch.setattr(cache_module, "INLINE_MAX", 0)  # every value in a value file (inline ones: test_cache_inline)
    ctx = Context.open(tmp_path / "c")
    pipeline(ctx, 1).materialize()
    marker = tmp_path / "ran"
    for value in (tmp_path / "c" / "values").iterdir():
        value.write_bytes(payload_bytes(marker, value.stat().st_size if same_size else None))
    reopened = Context.open(tmp_path / "c")
    for key in ("Double", "Param"):
        with pytest.raises(CacheError, match=r"damaged.*Nothing of it was unpickled"):
            reopened[key]
    assert not marker.exists()


def test_prune_removes_what_killed_writers_left_once_it_is_old(tmp_path):
    ctx = Context.open(tmp_path / "c")
    pipeline(ctx, 1).materialize()
    values, index = tmp_path / "c" / "values", tmp_path / "c" / "index"
    values.mkdir(exist_ok=True)  # none yet: both values are inline
    names = {
        "old_orphan": values / f"{'a' * 32}.{'b' * 32}.{'c' * 16}.dill",
        "young_orphan": values / f"{'d' * 32}.{'b' * 32}.{'c' * 16}.dill",
        "old_temp": index / f".{'a' * 32}.{'b' * 32}.json.x1y2z3ab.jo-tmp",
        "old_foreign": values / "notes.dill",
    }
    for path in names.values():
        path.write_bytes(b"x")
    old = time.time() - 2 * 3600
    for label in ("old_orphan", "old_temp", "old_foreign"):
        os.utime(names[label], (old, old))
    before = ctx.disk_usage()
    assert ctx.prune() == []  # no version removed...
    assert not names["old_orphan"].exists() and not names["old_temp"].exists()  # ...but the leftovers are
    assert names["young_orphan"].exists() and names["old_foreign"].exists()
    assert ctx.disk_usage() == before
    RUNS.clear()
    assert pipeline(Context.open(tmp_path / "c"), 1).materialize() == 2 and RUNS == []
