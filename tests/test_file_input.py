"""Step.from_file(): data files as inputs, with real files in tmp_path.

Each edit of a matrix (content, touch, add, remove, rename, nested edit, glob gaining a match) is planned and
checked for stale-or-not and the exact reason; generated edit sequences check the same against a model of
the directory; a 10,000-file directory is re-hashed only for what changed (hash calls counted); fingerprints
agree across processes, executors and snapshots.
"""

from __future__ import annotations

import itertools
import os
import pickle
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Context, FileInputError, PipelineError, Step, file_input
from job_orchestra.plan import Availability

OLD = time.time() - 3600  # data files are usually older than the plan: dated an hour ago, so memoisable
_dates = itertools.count()


class Read(Step):
    def run(self, paths):
        paths = [paths] if isinstance(paths, str) else paths
        return {p: Path(p).read_text() for p in paths}


class Summary(Step):
    def run(self, files):
        return len(files)


def write(path: str | Path, text: str, *, old: bool = True) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if old:
        date = OLD + next(_dates) / 1000  # each write gets its own date, as edits do
        os.utime(path, (date, date))


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A working directory with data/a.csv, data/b.csv, data/meta.csv and data/sub/c.csv."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.csv", "b.csv", "meta.csv", "sub/c.csv"):
        write(f"data/{name}", f"{name}\n1,2\n")
    return tmp_path


def pipeline(spec: str, ctx: Context) -> tuple[Step, Step]:
    source = Step.from_file(spec)
    read = Read(depends_on=source, ctx=ctx)
    return read, Summary(depends_on=read, ctx=ctx)


def _content(p):
    write(p, "changed\n")


def _same_content(p):
    write(p, Path(p).read_text(), old=False)


def _touch(p):
    os.utime(p, None)


EDITS = {  # name: (spec, edit, stale reason of Read or None)
    "content change": ("data/meta.csv", lambda: _content("data/meta.csv"), "file data/meta.csv changed"),
    "same size change": (
        "data/meta.csv",
        lambda: write("data/meta.csv", "meta.csv\n1,3\n", old=False),
        "file data/meta.csv changed",
    ),
    "touch only": ("data/meta.csv", lambda: _touch("data/meta.csv"), None),
    "rewritten unchanged": ("data/meta.csv", lambda: _same_content("data/meta.csv"), None),
    "dir: touch only": ("data", lambda: _touch("data/a.csv"), None),
    "dir: add file": ("data", lambda: write("data/new.csv", "x"), "file data/new.csv added"),
    "dir: remove file": ("data", lambda: os.remove("data/b.csv"), "file data/b.csv removed"),
    "dir: rename": (
        "data",
        lambda: os.rename("data/a.csv", "data/z.csv"),
        "2 files changed: data/a.csv (removed), data/z.csv (new)",
    ),
    "dir: nested edit": ("data", lambda: _content("data/sub/c.csv"), "file data/sub/c.csv changed"),
    "dir: nested add": ("data/", lambda: write("data/sub/deeper/d.csv", "d"), "file data/sub/deeper/d.csv added"),
    "dir: three changed": (
        "data",
        lambda: [_content(f"data/{n}") for n in ("a.csv", "b.csv", "meta.csv")],
        "3 files changed: data/a.csv, data/b.csv, +1 more",
    ),
    "dir: empty file added": ("data", lambda: write("data/empty", ""), "file data/empty added"),
    "glob gains a match": ("data/*.csv", lambda: write("data/d.csv", "d"), "file data/d.csv added"),
    "glob: non-match added": ("data/*.csv", lambda: write("data/notes.txt", "n"), None),
    "glob: nested edit": ("data/**/*.csv", lambda: _content("data/sub/c.csv"), "file data/sub/c.csv changed"),
    "glob: nested edit outside": ("data/*.csv", lambda: _content("data/sub/c.csv"), None),
    "glob: match removed": ("data/*.csv", lambda: os.remove("data/a.csv"), "file data/a.csv removed"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edit_makes_the_readers_stale_with_the_exact_reason_or_not(data, case):
    spec, edit, reason = EDITS[case]
    ctx = Context()
    _, head = pipeline(spec, ctx)
    head.materialize()
    before = ctx["Read"]
    edit()
    plan = head.execution_plan(show=False)
    if reason is None:
        assert plan.to_run == [], str(plan)
        assert plan.stale_rows == []
        return
    assert plan["Read"].availability is Availability.STALE
    assert plan["Read"].reason == reason
    assert plan["Summary"].reason == "upstream: Read"
    assert plan.to_run == [f"file:{spec}", "Read", "Summary"]
    assert reason in str(plan)  # the text plan shows the reason as it is
    head.materialize()
    assert ctx["Read"] != before
    assert head.execution_plan(show=False).to_run == []


def test_the_output_is_the_path_or_the_sorted_list_of_paths(data):
    write("data/sub/0.csv", "0")
    assert Step.from_file("data/meta.csv").materialize() == "data/meta.csv"
    assert Step.from_file("data").materialize() == [
        "data/a.csv",
        "data/b.csv",
        "data/meta.csv",
        "data/sub/0.csv",
        "data/sub/c.csv",
    ]
    assert Step.from_file("data/*.csv").materialize() == ["data/a.csv", "data/b.csv", "data/meta.csv"]
    assert Step.from_file(Path("data") / "sub").materialize() == ["data/sub/0.csv", "data/sub/c.csv"]
    absolute = str(data / "data" / "sub")
    assert Step.from_file(absolute).materialize() == [f"{absolute}/0.csv", f"{absolute}/c.csv"]


def test_names_are_readable_stable_and_distinct(data):
    a, b = Step.from_file("data/a.csv"), Step.from_file("data/b.csv")
    assert (a.name, b.name) == ("file:data/a.csv", "file:data/b.csv")
    assert Step.from_file("data/a.csv") is a  # one path, one step: two readers share it without a name clash
    alias = Step.from_file("data/a.csv", name_alias="raw")
    assert alias.name == "raw" and alias is not a
    both = Step.join(
        [
            Read(depends_on=a),
            Read(depends_on=b, name_alias="ReadB"),
            Read(depends_on=Step.from_file("data/a.csv"), name_alias="ReadA2"),
        ]
    )
    assert [len(x) for x in both.materialize()] == [1, 1, 1]
    for bad in ("", b"data/a.csv", 5, None, ["data/a.csv"]):
        with pytest.raises(TypeError, match="non-empty path or glob"):
            Step.from_file(bad)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("data/missing.csv", "the data file 'data/missing.csv' does not exist"),
        ("data/*.parquet", "the pattern 'data/*.parquet' matches no file"),
        ("empty", "the directory 'empty' holds no file"),
    ],
)
def test_nothing_to_read_is_an_error_at_plan_time_naming_the_step_and_path(data, spec, words):
    (data / "empty" / "sub").mkdir(parents=True)
    ctx = Context()
    _, head = pipeline(spec, ctx)
    with pytest.raises(FileInputError, match=re.escape(words)) as info:
        head.execution_plan(show=False)
    assert str(info.value).startswith(f"file:{spec}: ")
    assert (info.value.step, info.value.path) == (f"file:{spec}", spec)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, PipelineError)
    with pytest.raises(FileInputError, match=re.escape(words)):  # and when run without any Context
        Read(depends_on=Step.from_file(spec, name_alias="again")).materialize()
    copy = pickle.loads(pickle.dumps(info.value))  # crosses process pools intact
    assert (str(copy), copy.step, copy.path) == (str(info.value), info.value.step, info.value.path)


def test_a_fifo_is_refused_rather_than_read_forever(data):
    os.mkfifo("data/pipe")
    with pytest.raises(FileInputError, match="'data/pipe' is not a regular file"):
        Read(depends_on=Step.from_file("data/pipe"), ctx=Context()).execution_plan(show=False)
    plan = Read(depends_on=Step.from_file("data"), ctx=Context()).execution_plan(show=False)  # in a directory:
    assert plan.to_run == ["file:data", "Read"]  # only regular files count


def test_an_unreadable_subdirectory_is_an_error_not_a_shorter_list(data, monkeypatch):
    real = os.scandir

    def scandir(path):  # as for a directory without read permission (chmod cannot stop root)
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(file_input.os, "scandir", scandir)
    words = "cannot list the directory 'data/sub' (PermissionError: Permission denied)"
    with pytest.raises(FileInputError, match=re.escape(words)):
        Read(depends_on=Step.from_file("data"), ctx=Context()).execution_plan(show=False)


def test_a_missing_file_is_said_from_a_process_pool(data):
    with pytest.raises(FileInputError, match=re.escape("data/gone.csv")):
        Step.join(
            [Read(depends_on=Step.from_file("data/gone.csv")), Read(depends_on=Step.from_file("data"), name_alias="R2")]
        ).materialize("processes", max_workers=2)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_executors_record_the_same_fingerprints_as_a_serial_run(data, executor):
    serial, parallel = Context(), Context()
    pipeline("data", serial)[1].materialize()
    pipeline("data", parallel)[1].materialize(executor, max_workers=2)
    assert dict(parallel) == dict(serial)
    assert parallel._fingerprints == serial._fingerprints
    _content("data/a.csv")
    plan = pipeline("data", parallel)[1].execution_plan(show=False)
    assert plan["Read"].reason == "file data/a.csv changed"


def test_stale_use_keeps_the_cached_result(data):
    ctx = Context()
    _, head = pipeline("data/meta.csv", ctx)
    head.materialize()
    _content("data/meta.csv")
    assert head.execution_plan(show=False, stale="use").to_run == []
    assert head.execution_plan(show=False)["Read"].reason == "file data/meta.csv changed"


def test_the_html_plan_shows_the_reason(data):
    ctx = Context()
    _, head = pipeline("data", ctx)
    head.materialize()
    os.remove("data/b.csv")
    assert "file data/b.csv removed" in head.execution_plan(show=False)._repr_html_()


# -- generated edit sequences against a model of the directory --------------------------------------------
NAMES = ["a.csv", "b.csv", "sub/c.csv", "sub/deep/d.csv", "e.txt"]
OPS = st.lists(
    st.tuples(st.sampled_from(["write", "touch", "remove", "rewrite"]), st.sampled_from(NAMES), st.integers(0, 3)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_generated_edits_are_stale_exactly_when_the_files_changed(ops):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        model = {"a.csv": "0", "sub/c.csv": "1"}
        for name, text in model.items():
            write(root / name, text)
        ctx = Context()
        source = Step.from_file(str(root))
        head = Read(depends_on=source, ctx=ctx)
        head.materialize()
        before = dict(model)
        for op, name, value in ops:
            path = root / name
            if op == "write":
                write(path, str(value), old=value % 2 == 0)
                model[name] = str(value)
            elif op == "rewrite" and name in model:
                write(path, model[name], old=False)
            elif op == "touch" and name in model:
                _touch(path)
            elif op == "remove" and name in model:
                path.unlink()
                del model[name]
        changed = sorted(n for n in set(before) | set(model) if before.get(n) != model.get(n))
        if not model:
            with pytest.raises(FileInputError, match="holds no file"):
                head.execution_plan(show=False)
            return
        row = head.execution_plan(show=False)[head.name]
        if not changed:
            assert row.availability is Availability.AVAILABLE, row
            return
        assert row.availability is Availability.STALE
        shown = [f"{root}/{n}" for n in changed]
        notes = {n: " (new)" if n not in before else " (removed)" if n not in model else "" for n in changed}
        if len(changed) == 1:
            verb = {" (new)": "added", " (removed)": "removed", "": "changed"}[notes[changed[0]]]
            assert row.reason == f"file {shown[0]} {verb}"
        else:
            listed = ", ".join(f"{root}/{n}{notes[n]}" for n in changed[:2])
            more = f", +{len(changed) - 2} more" if len(changed) > 2 else ""
            assert row.reason == f"{len(changed)} files changed: {listed}{more}"
        head.materialize()
        assert ctx[head.name] == {f"{root}/{n}": model[n] for n in sorted(model)}


# -- the per-file memo -----------------------------------------------------------------------------------
@pytest.fixture
def hash_calls(monkeypatch):
    calls: list[str] = []
    real = file_input._hash_file

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(file_input, "_hash_file", counting)
    return calls


def test_a_10000_file_directory_is_rehashed_only_for_the_file_that_changed(tmp_path, monkeypatch, hash_calls):
    monkeypatch.chdir(tmp_path)
    for i in range(10_000):
        write(f"big/{i // 1000}/f{i:05d}.csv", f"{i}\n")
    ctx = Context()
    head = Summary(depends_on=Step.from_file("big"), ctx=ctx)
    assert head.materialize() == 10_000
    assert len(hash_calls) == 10_000  # cold: every file read once
    hash_calls.clear()
    assert head.execution_plan(show=False).to_run == []
    assert hash_calls == []  # warm, nothing changed: not one file read
    write("big/4/f04321.csv", "edited\n")
    plan = head.execution_plan(show=False)
    assert hash_calls == [str(tmp_path / "big" / "4" / "f04321.csv")]
    assert plan["Summary"].reason == "file big/4/f04321.csv changed"
    assert len(ctx.fingerprint("Summary")) < 1000  # over RECORDED_FILES: the record keeps a count, not a list


def test_a_fresh_process_names_the_files_up_to_the_recorded_limit_and_says_so_beyond(data, monkeypatch):
    monkeypatch.setattr(file_input, "RECORDED_FILES", 3)
    small, big = Context(), Context()
    Read(depends_on=Step.from_file("data/sub"), ctx=small).materialize()  # 1 file: listed in the record
    Read(depends_on=Step.from_file("data"), ctx=big, name_alias="All").materialize()  # 4 files: a count
    _content("data/sub/c.csv")
    monkeypatch.setattr(file_input, "_history", file_input.OrderedDict())  # as in a fresh process
    assert Read(depends_on=Step.from_file("data/sub"), ctx=small).execution_plan(show=False)["Read"].reason == (
        "file data/sub/c.csv changed"
    )
    plan = Read(depends_on=Step.from_file("data"), ctx=big, name_alias="All").execution_plan(show=False)
    assert plan["All"].reason == (
        "files of data changed (which ones is not recorded for inputs of over 3 files, and this process did not "
        "plan the earlier ones)"
    )


def test_the_memo_rereads_a_file_whose_date_is_too_recent_to_trust(tmp_path, hash_calls):
    path = tmp_path / "x.csv"
    write(path, "one", old=False)
    first = file_input.file_digest(str(path))
    write(path, "two", old=False)  # same size, maybe the same date tick: must be read again
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns))
    assert file_input.file_digest(str(path)) != first
    assert len(hash_calls) == 2
    os.utime(path, (OLD, OLD))
    file_input.file_digest(str(path))
    file_input.file_digest(str(path))
    assert len(hash_calls) == 3  # once its date is old enough, memoised


def test_an_edit_whose_date_was_put_back_is_still_seen(tmp_path, hash_calls):
    """Same size, same inode, the very same mtime_ns restored: the change time (which os.utime cannot set)
    still moved, so the file is read again."""
    path = tmp_path / "x.csv"
    write(path, "one")
    before = os.stat(path)
    first = file_input.file_digest(str(path))
    path.write_text("two")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(path).st_mtime_ns, os.stat(path).st_ino) == (before.st_mtime_ns, before.st_ino)
    assert file_input.file_digest(str(path)) != first
    assert len(hash_calls) == 2


# -- across processes and snapshots ----------------------------------------------------------------------
SCRIPT = """
import sys
from job_orchestra import Context, Step
from pipe import Read, Summary

if __name__ == "__main__":
    if sys.argv[1] == "first":
        ctx = Context()
        head = Summary(depends_on=Read(depends_on=Step.from_file(sys.argv[2]), ctx=ctx), ctx=ctx)
        head.materialize()
        ctx.store("snap", pipeline=head)
    else:
        ctx = Context.load("snap")
        head = ctx.pipeline
        plan = head.execution_plan(show=False)
        print(repr(plan["Read"].reason))
        head.materialize()
"""


def test_fingerprints_are_stable_across_processes_and_snapshots(data):
    Path("pipe.py").write_text(
        textwrap.dedent("""
        from pathlib import Path
        from job_orchestra import Step
        class Read(Step):
            def run(self, paths):
                with open("ran.log", "a") as log:
                    log.write("Read\\n")
                return {p: Path(p).read_text() for p in paths}
        class Summary(Step):
            def run(self, files):
                return len(files)
        """)
    )
    Path("run.py").write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(data), os.environ.get("PYTHONPATH", "")]))

    def run(*args):
        done = subprocess.run([sys.executable, "run.py", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    run("first", "data")
    assert run("again") == "None"  # a fresh process: nothing stale, nothing re-run
    _touch("data/a.csv")
    assert run("again") == "None"
    _content("data/sub/c.csv")
    write("data/new.csv", "n")
    assert run("again") == "'2 files changed: data/new.csv (new), data/sub/c.csv'"  # named from the record
    assert Path("ran.log").read_text() == "Read\nRead\n"  # first, then only after the edit
