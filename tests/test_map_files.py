"""Step.map over Step.from_file(...): one item per file, known when the pipeline is planned (no Context on
the file input needed), and each item's own file joins its fingerprint: an edited file re-runs its item
only ("file data/b.csv changed"), a new file runs only itself, a touched or removed one runs nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_orchestra import Context, Step, step

RUNS: list[str] = []


@step
def parse(path=""):
    RUNS.append(path)
    return Path(path).read_text()


@step
def gather(parts):
    return parts


def pipeline(folder: Path, ctx: Context) -> tuple[Step, Step]:
    group = parse.map(path=Step.from_file(str(folder / "*.txt")), ctx=ctx)
    return group, gather(group, ctx=ctx)


def write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    st_ = path.stat()  # a later mtime than any before, whatever the clock's resolution
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + bump * 1_000_000_000))


def test_items_are_known_at_plan_time_and_an_edit_reruns_only_its_item(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.txt").write_text(name)
    ctx = Context()
    _, head = pipeline(folder, ctx)
    plan = head.execution_plan(show=False)
    assert plan.groups["parse"].pending_source is None and len(plan.groups["parse"].items) == 3
    RUNS.clear()
    assert head.materialize() == ["a", "b", "c"]
    assert len(RUNS) == 3
    write(folder / "b.txt", "B", 1)
    _, head = pipeline(folder, ctx)
    b = f"parse[{folder / 'b.txt'}]"
    assert head.execution_plan(show=False)[b].reason == f"file {folder / 'b.txt'} changed"
    RUNS.clear()
    assert head.materialize() == ["a", "B", "c"]
    assert RUNS == [str(folder / "b.txt")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(["edit", "touch", "add", "remove"]), st.integers(0, 5), st.sampled_from("xyz")),
        min_size=1,
        max_size=6,
    )
)
def test_generated_edits_match_a_fresh_computation_and_run_only_what_changed(tmp_path_factory, edits) -> None:
    folder = tmp_path_factory.mktemp("files")
    for i in range(3):
        (folder / f"f{i}.txt").write_text(f"start{i}")
    ctx = Context()
    _, head = pipeline(folder, ctx)
    head.materialize()
    computed = {p.name: p.read_text() for p in folder.glob("*.txt")}  # what each item's result was read from
    for bump, (action, index, text) in enumerate(edits, start=1):
        path = folder / f"f{index}.txt"
        before = {p.name: p.read_text() for p in folder.glob("*.txt")}
        if action == "remove":
            if path.exists() and len(before) > 1:
                path.unlink()
        elif action == "touch":
            if path.exists():
                os.utime(path, ns=(0, path.stat().st_mtime_ns + bump * 1_000_000_000))
        else:  # edit or add: the same text again is no change
            write(path, before.get(path.name, "") + text if action == "edit" else text, bump)
        now = {p.name: p.read_text() for p in sorted(folder.glob("*.txt"))}
        # an item runs when its file's content is not what its kept result was read from (a removed file's
        # result stays in the Context: the same content back is reused)
        expected_runs = sorted(str(folder / n) for n, t in now.items() if computed.get(n) != t)
        _, head = pipeline(folder, ctx)
        RUNS.clear()
        assert head.materialize() == list(now.values())  # exactly what reading the files now gives
        assert sorted(RUNS) == expected_runs
        computed.update(now)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_items_over_files_run_on_executors(tmp_path: Path, executor: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in "abcd":
        (folder / f"{name}.txt").write_text(name * 2)
    ctx = Context()
    _, head = pipeline(folder, ctx)
    assert head.materialize(executor, max_workers=2) == ["aa", "bb", "cc", "dd"]
    write(folder / "c.txt", "changed", 1)
    _, head = pipeline(folder, ctx)
    assert [r.name for r in head.execution_plan(show=False) if r.runs] == [
        f"file:{folder / '*.txt'}",  # no Context: listing the files again is all it does
        f"parse[{folder / 'c.txt'}]",
        "parse",
        "gather",
    ]
    assert head.materialize(executor, max_workers=2) == ["aa", "bb", "changed", "dd"]
