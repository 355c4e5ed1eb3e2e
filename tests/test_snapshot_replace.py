"""``--snapshot DIR`` and ``store()`` never delete or replace what job-orchestra did not write.

Every kind of thing that can already be at the path is tried (a matrix, with random file contents): the
command line refuses with exit code 2 and says how to proceed, before running anything, and the thing is
left byte for byte as it was; an earlier snapshot is replaced atomically; ``Context.store()`` refuses all
of them, even an empty directory.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

import pytest

from job_orchestra import Context, SnapshotError, SnapshotExistsError
from job_orchestra import snapshot as snapshot_module
from job_orchestra.cli import main
from tests import test_cli

pipeline = test_cli.pipeline  # the CLI tests' pipeline file, as a fixture here too

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses symlinks and FIFOs")


def tree(path: Path) -> dict[str, str]:
    """What is at ``path``: every name below it with its kind and content hash (links not followed)."""
    out = {}
    items = [path, *sorted(path.rglob("*"))] if path.is_dir() and not path.is_symlink() else [path]
    for item in items:
        name = str(item.relative_to(path.parent))
        if item.is_symlink():
            out[name] = "link -> " + os.readlink(item)
        elif item.is_file():
            out[name] = hashlib.sha256(item.read_bytes()).hexdigest()
        else:
            out[name] = "dir" if item.is_dir() else "other"
    return out


def occupy(path: Path, kind: str, rng: random.Random) -> None:
    """Put something that is not ours at ``path``."""
    data = rng.randbytes(rng.randint(0, 2000))
    if kind == "regular file":
        path.write_bytes(data)
    elif kind == "directory with files":
        (path / "sub").mkdir(parents=True)
        (path / "notes.txt").write_bytes(data)
        (path / "sub" / "model.bin").write_bytes(data[::-1])
    elif kind == "directory with a foreign manifest.json":
        path.mkdir()
        (path / "manifest.json").write_text('{"format": "someone-else", "entries": []}')
    elif kind == "directory with a damaged manifest.json":
        path.mkdir()
        (path / "manifest.json").write_bytes(data + b"{")
    elif kind == "a 1.1 snapshot":
        path.mkdir()
        (path / "master_record.json").write_text('{"a": 1}')
    elif kind == "symlink to a snapshot":
        Context(a=1).store(path.with_name(path.name + "-real"))
        path.symlink_to(path.with_name(path.name + "-real"))
    elif kind == "dangling symlink":
        path.symlink_to(path.with_name("nowhere"))
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "directory with a manifest.json symlink":
        path.mkdir()
        Context(a=1).store(path.with_name(path.name + "-real"))
        (path / "manifest.json").symlink_to(path.with_name(path.name + "-real") / "manifest.json")
    else:
        raise AssertionError(kind)


FOREIGN = [
    "regular file",
    "directory with files",
    "directory with a foreign manifest.json",
    "directory with a damaged manifest.json",
    "a 1.1 snapshot",
    "symlink to a snapshot",
    "dangling symlink",
    "FIFO",
    "directory with a manifest.json symlink",
]


@pytest.mark.parametrize("kind", FOREIGN)
def test_the_command_line_refuses_to_replace_what_it_did_not_write(pipeline, tmp_path, capsys, kind):
    target = tmp_path / "out"
    occupy(target, kind, random.Random(kind))
    before = tree(target)
    with pytest.raises(SystemExit) as info:
        main(["run", f"{pipeline}:head", "--snapshot", str(target)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"--snapshot {target}" in err and ("is never replaced" in err or "only a snapshot written by" in err)
    assert "Choose another path, or move or delete it yourself" in err
    assert "RUNS" not in err and "done:" not in err  # refused before anything ran
    assert tree(target) == before
    assert [e for e in tmp_path.iterdir() if ".jo-tmp." in e.name] == []


@pytest.mark.parametrize("kind", FOREIGN)
def test_store_refuses_anything_at_the_path(tmp_path, kind):
    target = tmp_path / "out"
    occupy(target, kind, random.Random(kind))
    before = tree(target)
    with pytest.raises(SnapshotExistsError, match="exists already"):
        Context(a=1).store(target)
    assert tree(target) == before


def test_store_refuses_even_an_empty_directory_or_one_appearing_meanwhile(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SnapshotExistsError, match=r"exists already \(a directory\)"):
        Context(a=1).store(tmp_path / "empty")
    real = snapshot_module._put_in_place

    def someone_creates_it(tmp, target, existing):
        target.mkdir()  # an empty directory appears between the check and the rename
        real(tmp, target, existing)

    monkeypatch.setattr(snapshot_module, "_put_in_place", someone_creates_it)
    with pytest.raises(SnapshotExistsError, match="changed while the snapshot was being written"):
        Context(a=1).store(tmp_path / "late")
    assert list((tmp_path / "late").iterdir()) == []
    assert [e for e in tmp_path.iterdir() if ".jo-tmp." in e.name] == []


def test_the_command_line_replaces_its_own_snapshot_and_fills_an_empty_directory(pipeline, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", f"{pipeline}:head", "--snapshot", str(empty)]) == 0
    assert Context.load(empty)["Total"] == {"total": 330}
    first = Context.load(empty)
    inode = os.stat(empty).st_ino
    assert main(["run", f"{pipeline}:head", "--snapshot", str(empty)]) == 0  # replaced: a new directory
    assert os.stat(empty).st_ino != inode and Context.load(empty)["Total"] == first["Total"]
    assert sorted(e.name for e in tmp_path.iterdir() if e.name != "__pycache__") == ["cli_pipeline.py", "empty"]


def test_a_context_still_reading_a_replaced_snapshot_gets_a_clear_error_never_the_new_bytes(tmp_path):
    """The replacement is one atomic exchange. A Context opened on the old snapshot that reads an entry
    afterwards finds the new file in its place: its checksum (from the old manifest) refuses it."""
    target = tmp_path / "snap"
    snapshot_module.store(Context(version=1, data=list(range(100))), target)
    opened = Context.load(target)
    snapshot_module.store(Context(version=2, data=list(range(200))), target, replace=True)
    assert Context.load(target)["version"] == 2 and Context.load(target)["data"] == list(range(200))
    for key in ("version", "data"):
        with pytest.raises(SnapshotError, match=rf"the entry '{key}' is damaged"):
            opened[key]


def test_the_cleanup_removes_only_temporary_copies_that_are_provably_ours(tmp_path):
    """Named like ours, of this machine, of a process that is gone, and marked (or empty): removed by the
    next store(), whatever its target. Anything else that merely looks similar is kept."""
    from job_orchestra.snapshot_files import MARKER, _host

    pid = os.fork()
    if pid == 0:  # pragma: no cover - a process that ends at once: its number is free afterwards
        os._exit(0)
    os.waitpid(pid, 0)
    host = _host()
    cases = {  # name -> (marker, files, removed?)
        f".a.jo-tmp.{host}.{pid}.x1.tmp": (True, True, True),
        f".b.jo-tmp.{host}.{pid}.x2.tmp": (False, False, True),  # empty: killed right after mkdtemp
        f".c.jo-tmp.{host}.{pid}.x3.tmp": (False, True, False),  # not marked: not provably ours
        f".d.jo-tmp.{host}.{os.getppid()}.x4.tmp": (True, True, False),  # its process is alive
        f".e.jo-tmp.elsewhere.{pid}.x5.tmp": (True, True, False),  # another machine (a shared disk)
        f".f.jo-tmp.{host}.{pid}.x6.old": (True, True, False),  # not our name pattern
        f"g.jo-tmp.{host}.{pid}.x7.tmp": (True, True, False),  # not hidden: not our name pattern
    }
    for name, (marker, files, _) in cases.items():
        (tmp_path / name).mkdir()
        if marker:
            (tmp_path / name / MARKER).write_text("x")
        if files:
            (tmp_path / name / "data.bin").write_bytes(b"precious")
    (tmp_path / f".h.jo-tmp.{host}.{pid}.x8.tmp").symlink_to(tmp_path / f".a.jo-tmp.{host}.{pid}.x1.tmp")
    Context(a=1).store(tmp_path / "unrelated-name")
    left = {e.name for e in tmp_path.iterdir()}
    for name, (_, _, removed) in cases.items():
        assert (name not in left) == removed, name
    assert f".h.jo-tmp.{host}.{pid}.x8.tmp" in left  # a link is never followed nor removed
