"""Fault injection: killed stores, full disks, failures and interrupts mid-run, corrupted files."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from job_orchestra import Context, SnapshotError, SnapshotWriteError, Step
from job_orchestra import snapshot as snapshot_module

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses fork, SIGKILL and /dev/full")


def big_context() -> Context:
    ctx = Context()
    for i in range(6):
        ctx[f"array{i}"] = np.full(250_000, i, dtype="float64")  # 2 MB each
        ctx[f"small{i}"] = {"i": i, "name": f"entry {i}"}
    return ctx


def check_complete(path: Path, expected: Context) -> None:
    loaded = Context.load(path)
    assert sorted(map(str, loaded)) == sorted(map(str, expected))
    for key in expected:
        if key.startswith("array"):
            np.testing.assert_array_equal(loaded[key], expected[key])
        elif key != "context_meta":
            assert loaded[key] == expected[key]


def leftovers(parent: Path, name: str) -> list[Path]:
    return list(parent.glob(f".{name}.jo-tmp.*"))


def test_a_store_killed_at_random_moments_leaves_nothing_or_a_whole_snapshot(tmp_path):
    ctx = big_context()
    started = time.perf_counter()
    ctx.store(tmp_path / "timing")
    duration = time.perf_counter() - started
    rng = random.Random(20)
    outcomes = {"absent": 0, "complete": 0}
    for attempt in range(20):
        target = tmp_path / f"snap{attempt}"
        pid = os.fork()
        if pid == 0:  # the child stores, and is killed somewhere along the way
            try:
                ctx.store(target)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, 1.3 * duration))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if target.exists():
            check_complete(target, ctx)
            outcomes["complete"] += 1
        else:
            outcomes["absent"] += 1
            ctx.store(target)  # storing again works, and clears what the killed store left behind
            assert leftovers(tmp_path, target.name) == []
            check_complete(target, ctx)
    print(f"store takes {duration * 1000:.0f} ms; after SIGKILL: {outcomes}")


def test_a_full_disk_leaves_nothing_and_says_so(tmp_path, monkeypatch):
    """Entry files are opened on /dev/full: the kernel's own ENOSPC, as on a full disk."""
    real_open = open

    def open_on_full_disk(file, mode="r", *args, **kwargs):
        if "entries" in str(file) and "w" in mode:
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is not available")
    monkeypatch.setattr(snapshot_module, "open", open_on_full_disk, raising=False)
    with pytest.raises(SnapshotWriteError) as info:
        big_context().store(tmp_path / "snap")
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    message = str(info.value)
    assert "writing the Context entry 'context_meta' failed with ENOSPC" in message  # the first entry written
    assert "the disk is full" in message and "Nothing was stored there" in message
    assert "dill cannot serialize" not in message
    assert not (tmp_path / "snap").exists() and leftovers(tmp_path, "snap") == []


def test_a_full_disk_while_writing_the_manifest(tmp_path, monkeypatch):
    def no_space(file, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(snapshot_module, "_write_synced", no_space)
    with pytest.raises(SnapshotWriteError, match="writing the manifest failed with ENOSPC") as info:
        big_context().store(tmp_path / "snap")
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


class Source(Step):
    def run(self):
        return 1


class Add(Step):
    def run(self, x):
        return x + 1


class Fails(Step):
    def run(self, x):
        raise ValueError("bad data")


class Interrupted(Step):
    def run(self, x):
        raise KeyboardInterrupt


@pytest.mark.parametrize("failure", [Fails, Interrupted])
def test_a_failure_or_interrupt_mid_run_keeps_finished_results(failure):
    ctx = Context()
    a = Source(ctx=ctx)
    b = Add(depends_on=a, ctx=ctx)
    bad = failure(depends_on=b, ctx=ctx, name_alias="c")
    head = Add(depends_on=bad, ctx=ctx, name_alias="d")
    with pytest.raises((ValueError, KeyboardInterrupt)) as info:
        head.materialize()
    assert any("'c'" in note for note in info.value.__notes__)
    assert ctx.Source == 1 and ctx.Add == 2 and "c" not in ctx
    assert ctx.fingerprint("Add") is not None
    fixed = Add(depends_on=Add(depends_on=b, ctx=ctx, name_alias="c"), ctx=ctx, name_alias="d")
    assert fixed.execution_plan(show=False).to_run == ["c", "d"]
    assert fixed.materialize() == 4


def test_random_corruption_always_gives_a_snapshot_error(tmp_path):
    ctx = Context(numbers=list(range(1000)), text="x" * 500, nested={"a": [1, 2, 3]})
    ctx.store(tmp_path / "clean")
    rng = random.Random(5)
    files = sorted((tmp_path / "clean" / "entries").iterdir())
    manifest = json.loads((tmp_path / "clean" / "manifest.json").read_text())
    data_files = [tmp_path / "clean" / r["file"] for r in manifest["entries"] if r["key"] != "context_meta"]
    for attempt in range(30):
        snap = tmp_path / f"copy{attempt}"
        os.mkdir(snap)
        os.mkdir(snap / "entries")
        (snap / "manifest.json").write_bytes((tmp_path / "clean" / "manifest.json").read_bytes())
        for f in files:
            (snap / "entries" / f.name).write_bytes(f.read_bytes())
        victim = rng.choice(data_files)
        data = bytearray(victim.read_bytes())
        if rng.random() < 0.5:
            data = data[: rng.randrange(len(data))]
        else:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        (snap / "entries" / victim.name).write_bytes(bytes(data))
        loaded = Context.load(snap)
        broken = []
        for key in ("numbers", "text", "nested"):
            try:
                assert loaded[key] == ctx[key]
            except SnapshotError as exc:
                assert repr(key) in str(exc) and victim.name in str(exc)
                broken.append(key)
        assert len(broken) == 1
