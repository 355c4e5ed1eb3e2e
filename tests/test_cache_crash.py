"""A run killed with SIGKILL at random points of its cache writes resumes with every finished result.

The child (tests/cache_pipeline.py) counts its cache's file-system events (each value and record written in
two halves, each fsync and rename before and after) and kills itself at the N-th; N is drawn at random over
the whole run (16 points) and among the events of writing inline records, small values inside their index
record (16 more).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from job_orchestra import Context
from job_orchestra.stores import TEMP_SUFFIX
from tests import cache_pipeline

ROOT = Path(__file__).resolve().parent.parent
SEED = int(os.environ.get("JO_CRASH_SEED", "20261201"))


def _child(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "tests.cache_pipeline", str(cache), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


@pytest.fixture(scope="module")
def total_events(tmp_path_factory) -> tuple[int, list[int]]:
    done = _child(tmp_path_factory.mktemp("full") / "cache")
    assert done.returncode == 0, done.stderr
    inline = done.stdout.split("inline-events ")[-1].split("\n")[0]
    return int(done.stdout.split("events ")[-1]), [int(i) for i in inline.split(",") if i]


def _points(events: tuple[int, list[int]]) -> list[int]:
    total, inline = events
    rng = random.Random(SEED)
    anywhere = rng.sample(range(1, total), 16)
    among_inline = rng.sample(sorted(set(inline) - set(anywhere)), 16)
    return sorted(anywhere + among_inline)


def test_the_fault_points_are_many_and_distinct(total_events):
    points = _points(total_events)
    total, inline = total_events
    assert len(set(points)) == 32 and total > 100
    assert len(set(points) & set(inline)) >= 16 and len(set(points) - set(inline)) >= 8  # both ways of writing


@pytest.mark.parametrize("index", range(32))
def test_killed_run_resumes_with_every_finished_result(tmp_path, total_events, index, capsys):
    at = _points(total_events)[index]
    cache = tmp_path / "cache"
    killed = _child(cache, "--kill-at", str(at))
    assert killed.returncode == -signal.SIGKILL, (at, killed.stdout, killed.stderr)
    stored = [line.split()[1] for line in killed.stdout.splitlines() if line.startswith("stored ")]
    want = cache_pipeline.expected(3)

    reopened = Context.open(cache)
    assert set(stored) <= set(reopened)  # every result that finished is there...
    for key in reopened:  # ...and nothing there is corrupt (each value is checked by size and SHA-256)
        if key in want:
            assert _same(reopened[key], want[key]), key
    on_disk = set(reopened) & set(want)

    capsys.readouterr()
    head = cache_pipeline.build(Context.open(cache), 3)
    head.materialize()
    ran = {line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("ran ")}
    assert ran == set(want) - on_disk  # only what had not finished runs again
    final = Context.open(cache)
    assert all(_same(final[k], v) for k, v in want.items())
    capsys.readouterr()
    cache_pipeline.build(final, 3).materialize()
    assert "ran " not in capsys.readouterr().out
    leftovers = [p for p in cache.rglob("*") if p.name.endswith(TEMP_SUFFIX)]
    assert len(leftovers) <= 1  # at most the one file being written when the kill came, never listed


def test_a_result_another_process_just_wrote_is_used_not_recomputed(tmp_path, capsys):
    cache = tmp_path / "cache"
    mine = Context.open(cache)  # opened before the other process wrote anything
    head = cache_pipeline.build(mine, 5)
    assert all(row.runs for row in head.execution_plan(show=False))
    done = _child(cache, "--param", "5")
    assert done.returncode == 0, done.stderr
    assert all(not row.runs for row in head.execution_plan(show=False))
    capsys.readouterr()
    head.materialize()
    assert "ran " not in capsys.readouterr().out
    assert _same(mine["Stage11"], cache_pipeline.expected(5)["Stage11"])
