"""Reading snapshots written by job-orchestra 1.1 (fixtures made by tests/fixtures/make_legacy_snapshots.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from job_orchestra import AttrDict, Context, SnapshotError, Step

FIXTURES = Path(__file__).parent / "fixtures" / "legacy11"


@pytest.fixture
def legacy(tmp_path):
    """A copy of one fixture in a new place (1.1 recorded absolute paths: they must not matter)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


def test_plain_values_and_nesting(legacy):
    ctx = Context.load(legacy("basic"))
    assert ctx.an_int == 7 and ctx.a_float == 2.5 and ctx.a_str == "pasta" and ctx.a_bool is True
    assert ctx.a_list == [1, "two", {"three": 3}]
    assert isinstance(ctx.nested, AttrDict) and ctx.nested.deeper.y == "z" and ctx.nested.x == 1
    assert ".hidden" not in ctx.nested and ".hidden_top" not in ctx  # 1.1 never stored them
    assert ctx["odd key: a/b c"] == 3
    assert ctx.context_meta.python.count(".") == 2
    assert all(ctx.fingerprint(k) is None for k in ctx)  # 1.1 values count as put in by hand


def test_fullcopy_format(legacy):
    assert dict(Context.load(legacy("fullcopy")).items()) == dict(Context.load(legacy("basic")).items())


def test_dataframes_series_and_arrays(legacy):
    ctx = Context.load(legacy("arrays"))
    assert not ctx.is_loaded("frame")  # files are read on first access
    pd.testing.assert_frame_equal(ctx.frame, pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    pd.testing.assert_series_equal(ctx.series, pd.Series([0.5, 1.5], name="values"))
    np.testing.assert_array_equal(ctx.matrix, np.arange(6).reshape(2, 3))
    np.testing.assert_allclose(ctx.model_inputs.weights, np.linspace(0, 1, 5))
    assert ctx.model_inputs.label == "w"


def test_pickled_model(legacy):
    pca = Context.load(legacy("pickled")).pca
    assert type(pca).__name__ == "PCA" and pca.components_.shape == (1, 2)


class LoadNumbers(Step):
    def run(self):
        raise AssertionError("must not run: its result comes from the 1.1 snapshot")


class Total(Step):
    def run(self, data):
        raise AssertionError("must not run: its result comes from the 1.1 snapshot")


def test_a_11_pipeline_snapshot_is_reused(legacy):
    ctx = Context.load(legacy("pipeline"))
    head = Total(depends_on=LoadNumbers(ctx=ctx), ctx=ctx)
    plan = head.execution_plan(show=False)
    assert [(r.availability.value, r.schedule.value) for r in plan] == [("[*]", "( )"), ("[*]", "(H)")]
    assert head.materialize().total == 10


def test_round_trip_into_the_new_format(legacy, tmp_path):
    old = Context.load(legacy("arrays"))
    old.store(tmp_path / "new")
    new = Context.load(tmp_path / "new")
    pd.testing.assert_frame_equal(new.frame, old.frame)
    np.testing.assert_array_equal(new.model_inputs.weights, old.model_inputs.weights)


def test_a_missing_file_names_its_entry_and_file(legacy):
    root = legacy("arrays")
    (root / "matrix_-_np.ndarray.npy").unlink()
    ctx = Context.load(root)
    with pytest.raises(SnapshotError, match=r"the file 'matrix_-_np\.ndarray\.npy' of the entry 'matrix'.*missing"):
        _ = ctx.matrix
    assert ctx.series.name == "values"  # the rest still loads


def test_a_damaged_file_names_its_entry(legacy):
    root = legacy("arrays")
    (root / "frame_-_pd.DataFrame.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(SnapshotError, match=r"the entry 'frame' cannot be read from 'frame_-_pd\.DataFrame\.parquet'"):
        _ = Context.load(root).frame


def test_a_damaged_master_record(legacy):
    root = legacy("basic")
    (root / "master_record.json").write_text("{")
    with pytest.raises(SnapshotError, match=r"master_record\.json is damaged"):
        Context.load(root)


def test_key_is_refused_for_11_snapshots(legacy):
    with pytest.raises(SnapshotError, match="cannot be signed"):
        Context.load(legacy("basic"), key=b"k")


def run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)


def test_pandas_and_numpy_are_imported_only_when_needed():
    done = run(
        f"""
        import sys
        from job_orchestra import Context
        ctx = Context.load({str(FIXTURES / "basic")!r})
        arrays = Context.load({str(FIXTURES / "arrays")!r})
        assert ctx.an_int == 7 and arrays.model_inputs.label == "w"
        print(sorted(m for m in ("pandas", "numpy", "pyarrow") if m in sys.modules))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['numpy']"  # model_inputs holds an array; the DataFrames are not read
    done = run(
        f"""
        import sys
        from job_orchestra import Context
        ctx = Context.load({str(FIXTURES / "arrays")!r})
        before = sorted(m for m in ("pandas", "numpy", "pyarrow") if m in sys.modules)
        ctx.matrix
        after = sorted(m for m in ("pandas", "numpy", "pyarrow") if m in sys.modules)
        print(before, after)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] ['numpy']"


def test_a_missing_package_gets_a_clear_message():
    done = run(
        f"""
        import sys
        sys.modules["pyarrow"] = None  # as if it were not installed
        from job_orchestra import Context, SnapshotError
        ctx = Context.load({str(FIXTURES / "arrays")!r})
        try:
            ctx.frame
        except SnapshotError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "the entry 'frame' is a pandas DataFrame saved as parquet" in done.stdout
    assert "pip install pandas pyarrow" in done.stdout


def test_fixtures_stay_small():
    assert sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file()) < 100_000


def test_hand_written_master_record_kinds(tmp_path):
    """Kinds 1.1 could write that the fixtures do not show: a CleverDict value, an unknown suffix kept as a key."""
    import json

    (tmp_path / "master_record.json").write_text(
        json.dumps({"cd_-_Cleverdict": {"k": 1}, "weird_-_suffix": 2, "a;;b;;c": 3, "a;;d": [1]})
    )
    ctx = Context.load(tmp_path)
    assert isinstance(ctx.cd, AttrDict) and ctx.cd.k == 1
    assert ctx["weird_-_suffix"] == 2
    assert ctx.a.b.c == 3 and ctx.a.d == [1]


@pytest.mark.parametrize("how", ["symlink to /dev/zero", "symlink to a copy", "FIFO", "directory"])
@pytest.mark.parametrize("name", ["matrix_-_np.ndarray.npy", "frame_-_pd.DataFrame.parquet", "master_record.json"])
def test_only_regular_files_inside_a_11_snapshot_are_read(legacy, tmp_path, how, name):
    snap = legacy("arrays")
    file = snap / name
    data = file.read_bytes()
    file.unlink()
    if how == "symlink to /dev/zero":
        file.symlink_to("/dev/zero")
    elif how == "symlink to a copy":
        (tmp_path / "copy").write_bytes(data)
        file.symlink_to(tmp_path / "copy")
    elif how == "FIFO":
        os.mkfifo(file)
    else:
        file.mkdir()
    with pytest.raises(SnapshotError, match=r"not a regular file|never follow"):
        ctx = Context.load(snap)
        ctx["matrix"], ctx["frame"]  # reading them is the test
