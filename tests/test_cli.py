"""``python -m job_orchestra``: run / plan / graph, snapshots, exit codes, progress display."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from job_orchestra import Context
from job_orchestra.cli import main

PIPELINE = textwrap.dedent(
    """
    import os
    from job_orchestra import Context, Step

    RUNS = []
    ctx = Context()

    class Load(Step):
        def run(self):
            RUNS.append("Load")
            return list(range(10))

    class Square(Step):
        def run(self, xs):
            RUNS.append("Square")
            if os.environ.get("BREAK_SQUARE") == "1":
                raise ValueError("square is broken on purpose")
            return [x * x for x in xs]

    class Total(Step):
        def run(self, xs, squares):
            RUNS.append("Total")
            return {"total": sum(xs) + sum(squares)}

    load = Load(ctx=ctx)
    head = Total(depends_on=[load, Square(depends_on=load, ctx=ctx)], ctx=ctx)

    def build():
        return head

    not_a_step = 42
    """
)


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    path = tmp_path / "cli_pipeline.py"
    path.write_text(PIPELINE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BREAK_SQUARE", raising=False)
    yield path
    sys.modules.pop("cli_pipeline", None)


def runs():
    return sys.modules["cli_pipeline"].RUNS


def _interruptible() -> None:
    # A CI job started in the background inherits an ignored SIGINT; a user's terminal does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args, env=None, timeout=120):
    """Run the command line in a fresh process (exit codes and Ctrl-C as a user sees them)."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "job_orchestra", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        preexec_fn=_interruptible,
    )


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_run_prints_the_result_and_exits_0(pipeline, capsys, executor):
    assert main(["run", f"{pipeline}:head", "--executor", executor, "--max-workers", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "AttrDict({'total': 330})"
    assert "Total done: 3 step(s) run" in err


def test_head_can_be_a_function_returning_a_step_and_a_module_name_works(pipeline, capsys):
    assert main(["run", "cli_pipeline:build"]) == 0
    assert "'total': 330" in capsys.readouterr().out


def test_snapshot_then_load_runs_only_what_is_left(pipeline, tmp_path, capsys, monkeypatch):
    snap = tmp_path / "snap"
    monkeypatch.setenv("BREAK_SQUARE", "1")
    assert main(["run", f"{pipeline}:head", "--executor", "threads", "--snapshot", str(snap)]) == 1
    err = capsys.readouterr().err
    assert "step 'Square' failed: ValueError: square is broken on purpose" in err
    assert "snapshot with 1 result(s) written" in err  # written even after the failure
    assert sorted(k for k in Context.load(snap) if k != "context_meta") == ["Load"]

    monkeypatch.setenv("BREAK_SQUARE", "0")
    sys.modules.pop("cli_pipeline")
    assert main(["run", f"{pipeline}:head", "--load", str(snap), "--snapshot", str(snap)]) == 0
    assert runs() == ["Square", "Total"]  # Load came from the snapshot
    assert Context.load(snap)["Total"] == {"total": 330}  # the snapshot was replaced

    # The snapshot holds the pipeline too: it runs without the source file.
    capsys.readouterr()
    assert main(["plan", "--load", str(snap)]) == 0
    plan = capsys.readouterr().out
    assert plan.splitlines()[1:] == [" [*] ( ) Load", " [*] ( ) Square", " [*] (H) Total"]


def test_plan_prints_the_plan(pipeline, capsys):
    assert main(["plan", f"{pipeline}:head"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Execution plan.") and out.splitlines()[1:] == [
        " [ ] (>) Load",
        " [ ] (>) Square",
        " [ ] (H) Total",
    ]
    assert runs() == []  # planning runs nothing


def test_graph_writes_svg_and_dot(pipeline, tmp_path):
    svg, dot = tmp_path / "g.svg", tmp_path / "g.dot"
    assert main(["graph", f"{pipeline}:head", "-o", str(svg)]) == 0
    assert main(["graph", f"{pipeline}:head", "--output", str(dot)]) == 0
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    assert "Load -> Square" in dot.read_text()


def test_a_missing_dot_is_not_a_step_failure(pipeline, tmp_path):
    """Without Graphviz's dot on the PATH, graph says so and exits 3 (1 means a step failed)."""
    empty = tmp_path / "bin-without-dot"
    empty.mkdir()
    done = cli("graph", f"{pipeline}:head", "-o", str(tmp_path / "g.svg"), env={"PATH": str(empty)})
    assert done.returncode == 3, done.stderr
    assert "Graphviz's 'dot' program is not installed (nothing failed in the pipeline)" in done.stderr
    assert "failed:" not in done.stderr and not (tmp_path / "g.svg").exists()
    dot = cli("graph", f"{pipeline}:head", "-o", str(tmp_path / "g.dot"), env={"PATH": str(empty)})
    assert dot.returncode == 0 and "Load -> Square" in (tmp_path / "g.dot").read_text()


@pytest.mark.parametrize("n", [0, 1, 50, 199, 200, 201, 5000])
def test_results_print_in_full_up_to_200_lines_then_say_what_is_left(n):
    from job_orchestra.cli import _readable

    value = list(range(n)) if n < 100 else "\n".join(map(str, range(n)))
    text = _readable(value)
    lines = text.splitlines()
    if n <= 200:
        assert "more line(s)" not in text
        assert (ast.literal_eval(text) if n < 100 else text) == value  # all of it, readable back
    else:
        assert len(lines) == 201
        assert lines[-1] == f"... {n - 200} more line(s) of this str; use --snapshot DIR to keep it"
    assert _readable("a long string " * 100) == "a long string " * 100  # strings: as they are, not a repr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "{p}"], "expected FILE_OR_MODULE:HEAD"),
        (["run", "{p}:missing"], "has no 'missing'. Steps defined there: head, load."),
        (["run", "{p}:not_a_step"], "is a int, not a Step"),
        (["run", "no_such_module_xyz:head"], "no Python file or module named 'no_such_module_xyz'"),
        (["run", "missing_file.py:head"], "no such file: missing_file.py"),
        (["run"], "give the pipeline as FILE_OR_MODULE:HEAD"),
        (["plan", "{p}:head", "--load", "no_snapshot_here"], "no snapshot there"),
        (["plan", "{p}:head", "--load", "{p}"], "is a file, not a snapshot"),
        (["plan", "{p}:head", "--load", "."], "is not a job-orchestra snapshot"),
        (["plan", "{p}:head", "--load", ""], "--load needs a snapshot directory, got an empty string"),
        (["graph", "{p}:head", "-o", "."], "-o . is a directory"),
        (["graph", "{p}:head", "-o", "missing/g.svg"], "missing does not exist"),
        (["run", "{p}:head", "--snapshot", "{p}/snap"], "is not a directory"),
        (["run", "{p}:head", "--snapshot", ""], "--snapshot needs a directory, got an empty string"),
        (["run", "{p}:head", "--snapshot", "."], "that is the current directory"),
    ],
)
def test_usage_errors_exit_2_with_a_message(pipeline, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main([a.format(p=pipeline) for a in argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_options_exit_2(pipeline, capsys):
    for argv in (["run", f"{pipeline}:head", "--executor", "gpu"], ["run", "x:y", "--max-workers", "0"], []):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


def test_progress_bar_shows_steps_done_and_total(pipeline, capsys):
    assert main(["run", f"{pipeline}:head", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "materialize Total" in err and "3/3" in err and "running: Square" in err


def test_shell_exit_codes_for_failure_and_interrupt(tmp_path):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "stop.py").write_text(
        textwrap.dedent(
            """
            import os, signal, time
            from job_orchestra import Context, Step

            ctx = Context()

            class Presses(Step):
                def run(self):
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while this step runs
                    time.sleep(0.2)
                    return 1

            class After(Step):
                def run(self, x):
                    return x + 1

            head = After(depends_on=Presses(ctx=ctx), ctx=ctx)
            """
        )
    )
    failed = cli("run", str(tmp_path / "pipe.py:head"), env={"BREAK_SQUARE": "1"})
    assert failed.returncode == 1
    assert failed.stderr.rstrip().endswith("step 'Square' failed: ValueError: square is broken on purpose")
    assert "Traceback" in failed.stderr and failed.stdout == ""

    for executor in ("serial", "threads"):
        snap = tmp_path / f"snap-{executor}"
        stopped = cli("run", str(tmp_path / "stop.py:head"), "--executor", executor, "--snapshot", str(snap))
        assert stopped.returncode == 130, stopped.stderr
        assert "interrupted" in stopped.stderr
        kept = sorted(k for k in Context.load(snap) if k != "context_meta")
        # Serially Ctrl-C lands inside the step; with threads the running step finishes and is kept.
        assert kept == ([] if executor == "serial" else ["Presses"])


def _tree(root):
    return sorted(
        (os.path.relpath(os.path.join(d, n), root), open(os.path.join(d, n), "rb").read())
        for d, _, files in os.walk(root)
        for n in files
    )


@pytest.mark.parametrize(
    "added",
    ["NOTES.txt", "analysis/plots.ipynb", "entries/mine.txt", "entries/sub/deep.txt", "a cache", "pipeline.dill/"],
)
def test_snapshot_replace_keeps_what_store_did_not_write(pipeline, tmp_path, capsys, added):
    """--snapshot replaces a snapshot only when it holds nothing else: a user's files, or a cache opened in the
    snapshot directory (cache.json, index/), make it refuse before running, deleting nothing."""
    snap = tmp_path / "snap"
    assert main(["run", f"{pipeline}:head", "--snapshot", str(snap)]) == 0
    if added == "a cache":
        opened = Context.open(snap)
        opened._put_result("Extra", [1, 2], "f" * 8 + ":1", 0.1)  # a version only the cache keeps
    elif added == "pipeline.dill/":  # the name of a file store() writes, but a directory
        (snap / "pipeline.dill").unlink()
        (snap / "pipeline.dill").mkdir()
        (snap / "pipeline.dill" / "x").write_text("mine")
    else:
        (snap / added).parent.mkdir(parents=True, exist_ok=True)
        (snap / added).write_text("three weeks of notes")
    before = _tree(snap)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["run", f"{pipeline}:head", "--snapshot", str(snap)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "store() did not write" in err and "Replacing it would delete them" in err, err
    assert ("used as a cache" in err) == (added == "a cache")
    assert _tree(snap) == before
    assert runs() == ["Load", "Square", "Total"]  # the refused run ran nothing


def test_snapshot_replace_refuses_a_damaged_manifest(pipeline, tmp_path, capsys):
    snap = tmp_path / "snap"
    assert main(["run", f"{pipeline}:head", "--snapshot", str(snap)]) == 0
    manifest = json.loads((snap / "manifest.json").read_text())
    manifest["entries"][0]["file"] = "../outside"
    (snap / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["run", f"{pipeline}:head", "--snapshot", str(snap)])
    assert info.value.code == 2
    assert "manifest.json is damaged" in capsys.readouterr().err


def test_load_into_a_persistent_cache_writes_values_not_placeholders(tmp_path, monkeypatch, capsys):
    """--load fills a pipeline's Contexts from a snapshot lazily; a Context.open() cache gets the values
    themselves, readable after the snapshot is gone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cached_pipeline.py").write_text(
        textwrap.dedent(
            """
            import os
            from job_orchestra import Context, Step

            ctx = Context.open(os.environ["JO_TEST_CACHE"]) if os.environ.get("JO_TEST_CACHE") else Context()

            class Numbers(Step):
                def run(self):
                    return list(range(1000))

            class Count(Step):
                def run(self, xs):
                    return len(xs)

            head = Count(depends_on=Numbers(ctx=ctx), ctx=ctx)
            """
        )
    )
    try:
        assert main(["run", "cached_pipeline.py:head", "--snapshot", "snap"]) == 0
        sys.modules.pop("cached_pipeline", None)
        monkeypatch.setenv("JO_TEST_CACHE", str(tmp_path / "cache"))
        assert main(["run", "cached_pipeline.py:head", "--load", "snap"]) == 0
    finally:
        sys.modules.pop("cached_pipeline", None)
    shutil.rmtree(tmp_path / "snap")
    cache = Context.open(tmp_path / "cache")
    assert cache["Numbers"] == list(range(1000)) and cache["Count"] == 1000
    assert Context.open(tmp_path / "cache")["Numbers"] == list(range(1000))  # and in a second opening


def test_snapshot_path_with_dot_dot_replaces_the_snapshot_it_names(pipeline, tmp_path):
    snap = tmp_path / "snap"
    assert main(["run", f"{pipeline}:head", "--snapshot", str(snap)]) == 0
    assert main(["run", f"{pipeline}:head", "--snapshot", f"{snap}/entries/.."]) == 0
    assert sorted(os.listdir(snap)) == ["entries", "manifest.json", "pipeline.dill"]
    assert Context.load(snap)["Total"] == {"total": 330}
