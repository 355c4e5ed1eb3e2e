"""Fault injection: killed stores, full disks, OS errors, failures and interrupts mid-run, corrupted files.

The store() families generate their cases: SIGKILL at random calls of the snapshot code, RLIMIT_FSIZE at
random sizes, every OS error at every step of writing. The reading side is in test_faults_load.py.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import random
import resource
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from job_orchestra import (
    Context,
    SnapshotError,
    SnapshotWriteError,
    Step,
    manifest,
    snapshot_files,
    snapshot_load,
    snapshot_pickle,
    value_codec,
)
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
    for attempt in range(10):
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


# -- generated store() faults: kill points, disk full, OS errors ------------------------------------------
OURS = {
    module.__file__
    for module in (snapshot_module, snapshot_files, snapshot_pickle, value_codec, manifest, snapshot_load)
    if module.__file__
}


class Points:
    """A profile hook counting the calls made by job-orchestra's snapshot code; SIGKILLs itself at ``kill``."""

    def __init__(self, kill: int = 0) -> None:
        self.kill = kill
        self.count = 0

    def __call__(self, frame, event, arg):
        if event in ("call", "c_call") and frame.f_code.co_filename in OURS:
            self.count += 1
            if self.count == self.kill:
                os.kill(os.getpid(), signal.SIGKILL)


def versioned(version: int) -> Context:
    return Context(
        version=version,
        array=np.arange(100_000, dtype="float64") * version,
        nested={"a": [1, 2, {"b": version}], ".hidden": "never stored"},
        **{"x": "text " * 100},
    )


def state_of(target: Path) -> str:
    """ "absent", or the version of the complete snapshot at ``target`` (read back exactly)."""
    if not os.path.lexists(target):
        return "absent"
    loaded = Context.load(target)
    version = loaded["version"]
    expected = versioned(version)
    assert sorted(loaded) == sorted(k for k in expected if not k.startswith("."))
    np.testing.assert_array_equal(loaded["array"], expected["array"])
    assert loaded["nested"] == {"a": [1, 2, {"b": version}]} and loaded["x"] == expected["x"]
    return f"version {version}"


def temporaries(parent: Path) -> list[str]:
    return sorted(e.name for e in parent.iterdir() if ".jo-tmp." in e.name)


def test_store_killed_at_generated_points_leaves_nothing_partial_and_the_next_store_cleans_up(tmp_path):
    """SIGKILL at a random call of the snapshot code (60 points over store() and replace=True); then
    the target is absent, the old snapshot or the new one, whole; and the next store() in the directory,
    to another name, removes every temporary copy the killed one left."""
    parent = tmp_path / "parent"
    parent.mkdir()
    totals = {}
    for replace in (False, True):
        probe = parent / f"probe-{replace}"
        if replace:
            snapshot_module.store(versioned(1), probe)
        points = Points()
        sys.setprofile(points)
        try:
            snapshot_module.store(versioned(2), probe, replace=replace)
        finally:
            sys.setprofile(None)
        totals[replace] = points.count
        shutil.rmtree(probe)
    rng = random.Random(17)
    outcomes: collections.Counter = collections.Counter()
    for case in range(60):
        replace = case % 2 == 1
        target = parent / f"snap{case}"
        if replace:
            snapshot_module.store(versioned(1), target)
        total = totals[replace]  # half the points anywhere, half around the final renames
        kill = rng.randint(1, total) if case % 4 < 2 else rng.randint(total * 9 // 10, total + 3)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                sys.setprofile(Points(kill))
                snapshot_module.store(versioned(2), target, replace=replace)
            finally:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        state = state_of(target)
        assert state in (("version 1", "version 2") if replace else ("absent", "version 2")), (case, kill, state)
        outcomes[f"{'replace' if replace else 'store'}: {'killed' if killed else 'finished'}, {state}"] += 1
        left = temporaries(parent)
        snapshot_module.store(versioned(3), parent / "other")  # another name, same directory
        assert temporaries(parent) == [], f"the killed store (point {kill}) left {left}, not cleaned up"
        shutil.rmtree(parent / "other")
        outcomes["temporary copies cleaned up"] += len(left)
    assert sum(n for k, n in outcomes.items() if "killed" in k) >= 50
    assert outcomes["replace: killed, version 2"] + outcomes["store: killed, version 2"] > 0  # after the rename
    print(f"points per store: {totals[False]}, per replace: {totals[True]}; outcomes: {dict(outcomes)}")


def test_a_disk_full_at_generated_sizes_names_the_entry_and_leaves_nothing(tmp_path):
    """RLIMIT_FSIZE at random sizes (the kernel's own EFBIG): a whole snapshot, or an error naming
    what was being written, with nothing left behind."""
    ctx = versioned(2)
    sizes = [os.path.getsize(f) for f in snapshot_module.store(ctx, tmp_path / "probe").rglob("*") if f.is_file()]
    shutil.rmtree(tmp_path / "probe")
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    rng = random.Random(4)
    outcomes: collections.Counter = collections.Counter()
    for case in range(24):
        limit = rng.choice([0, 1, rng.randint(0, max(sizes) + 100), rng.choice(sizes), rng.choice(sizes) - 1])
        target = tmp_path / f"snap{case}"
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(read)
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (max(limit, 0), hard))
                try:
                    snapshot_module.store(ctx, target)
                    report = {"stored": True}
                except SnapshotWriteError as exc:
                    report = {"errno": exc.errno, "message": str(exc)}
                except BaseException as exc:
                    report = {"other": repr(exc)}
                os.write(write, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            report = json.loads(pipe.read())
        os.waitpid(pid, 0)
        assert "other" not in report, report
        if report.get("stored"):
            assert state_of(target) == "version 2"
            outcomes["stored whole"] += 1
            continue
        assert report["errno"] == errno.EFBIG, report
        message = report["message"]
        assert "failed with EFBIG" in message and "Nothing was stored there" in message, message
        what = message.split("writing ", 1)[1].split(" failed")[0]
        assert what.startswith(("the Context entry '", "the manifest", "a temporary directory")), message
        assert not os.path.lexists(target) and temporaries(tmp_path) == []
        outcomes["EFBIG, " + (what.split("'")[0] + "'" + what.split("'")[1] + "'" if "'" in what else what)] += 1
    print(f"RLIMIT_FSIZE outcomes: {dict(outcomes)}")
    assert outcomes["stored whole"] < 24


OPERATIONS = ["temporary directory", "entries directory", "entry file", "entry write", "fsync", "manifest", "rename"]
ERRNOS = [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO]


@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_os_errors_are_told_as_what_they_are(tmp_path, monkeypatch, operation, code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    real_open = open
    parent = tmp_path / "parent"
    parent.mkdir()
    if operation == "temporary directory":
        monkeypatch.setattr(snapshot_module, "make_temp", fail)
    elif operation == "entries directory":
        monkeypatch.setattr(Path, "mkdir", fail)
    elif operation == "entry file":
        opener = lambda file, mode="r", *a, **k: fail() if "entries" in str(file) else real_open(file, mode, *a, **k)  # noqa: E731
        monkeypatch.setattr(snapshot_module, "open", opener, raising=False)
    elif operation == "entry write":
        monkeypatch.setattr(value_codec, "_write_all", fail)
    elif operation == "fsync":
        monkeypatch.setattr(snapshot_module.os, "fsync", fail)
    elif operation == "manifest":
        monkeypatch.setattr(snapshot_module, "_write_synced", fail)
    else:
        monkeypatch.setattr(snapshot_module, "rename_noreplace", fail)
    with pytest.raises(SnapshotWriteError) as info:
        Context(data=np.arange(10)).store(parent / "snap")
    error = info.value
    assert isinstance(error, OSError) and error.errno == code
    message = str(error)
    assert f"failed with {errno.errorcode[code]} ({os.strerror(code)})" in message
    assert "Nothing was stored there" in message and "dill cannot serialize" not in message
    if operation in ("entry file", "entry write", "fsync"):
        assert "the Context entry 'context_meta'" in message  # the first entry written
    if code in (errno.ENOSPC, errno.EROFS, errno.EACCES):
        assert {errno.ENOSPC: "disk is full", errno.EROFS: "read-only", errno.EACCES: "permission"}[code] in message
    monkeypatch.undo()
    assert list(parent.iterdir()) == []
