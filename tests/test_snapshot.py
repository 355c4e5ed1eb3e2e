"""Context snapshots with dill: what is kept, atomicity, lazy loading, whole pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from job_orchestra import Context, SnapshotExistsError, Step, UnserializableValueError

REPO = Path(__file__).resolve().parents[1]


class Point:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return isinstance(other, Point) and other.x == self.x


def test_round_trip_of_values_1_1_could_not_store(tmp_path):
    ctx = Context()
    ctx["fn"] = lambda x: x * 3
    ctx["a_set"] = {1, 2}
    ctx["a_tuple"] = (1, "two")
    ctx[7] = "integer key"
    ctx["nested"] = {1: "int key inside", "ok": [1, 2]}
    ctx["array"] = np.arange(10)
    ctx["frame"] = pd.DataFrame({"a": [1, 2]})
    ctx["point"] = Point(3)
    ctx.store(tmp_path / "snap")
    back = Context.load(tmp_path / "snap")
    assert back["fn"](2) == 6
    assert back["a_set"] == {1, 2} and back["a_tuple"] == (1, "two") and back[7] == "integer key"
    assert back["nested"] == {1: "int key inside", "ok": [1, 2]}
    assert np.array_equal(back["array"], np.arange(10))
    pd.testing.assert_frame_equal(back["frame"], pd.DataFrame({"a": [1, 2]}))
    assert back.point == Point(3)
    assert back["context_meta"] == ctx["context_meta"]


def test_keys_starting_with_a_dot_are_skipped_at_any_level(tmp_path):
    ctx = Context({".secret": 1, "public": {"a": 1, ".hidden": 2, "deeper": {".x": 1, "y": 2}}})
    ctx.store(tmp_path / "s")
    back = Context.load(tmp_path / "s")
    assert ".secret" not in back
    assert back["public"] == {"a": 1, "deeper": {"y": 2}}
    assert ctx["public"][".hidden"] == 2  # the live Context is untouched


def test_store_refuses_an_existing_path(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "file").write_text("x")
    for name in ("taken", "file"):
        with pytest.raises(FileExistsError, match=name):
            Context().store(tmp_path / name)
    with pytest.raises(SnapshotExistsError):
        Context().store(tmp_path / "taken")


def test_an_unserializable_value_names_its_key_and_leaves_nothing(tmp_path):
    ctx = Context(good=1, bad_generator=(i for i in range(3)))
    with pytest.raises(UnserializableValueError, match=r"'bad_generator'.*generator") as info:
        ctx.store(tmp_path / "snap")
    assert isinstance(info.value, TypeError) and info.value.key == "bad_generator"
    assert list(tmp_path.iterdir()) == []  # no target, no temporary sibling


def test_snapshot_layout_has_a_readable_manifest_and_one_file_per_key(tmp_path):
    ctx = Context(a=1, b="text")
    ctx.store(tmp_path / "snap")
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["format"] == "job-orchestra-snapshot" and manifest["format_version"] == 2
    assert {"created", "python", "packages"} <= set(manifest)
    keys = [e["key"] for e in manifest["entries"]]
    assert keys == ["context_meta", "a", "b"]
    files = sorted(p.name for p in (tmp_path / "snap" / "entries").iterdir())
    assert len(files) == 3 and all(e["size"] > 0 and len(e["blake3"]) == 64 for e in manifest["entries"])


def test_load_is_lazy(tmp_path):
    ctx = Context(big=np.ones(20_000_000), small=1)  # 160 MB
    ctx.store(tmp_path / "snap")
    started = time.perf_counter()
    back = Context.load(tmp_path / "snap")
    assert "big" in back and not back.is_loaded("big")
    assert back.small == 1 and not back.is_loaded("big")
    assert "not loaded yet" in repr(back)
    elapsed = time.perf_counter() - started
    assert back["big"].shape == (20_000_000,) and back.is_loaded("big")
    assert elapsed < 5  # generous: a sanity check that nothing big was read, the benchmark has the figure


def test_pipeline_is_stored_and_reattached_to_the_loaded_context(tmp_path):
    from tests import recipes

    ctx = Context()
    steps = recipes.pasta(ctx)
    lunch = steps["PanFry"].materialize()
    ctx.store(tmp_path / "snap", pipeline=steps["PanFry"])
    back = Context.load(tmp_path / "snap")
    head = back.pipeline
    assert str(head) == "PanFry"
    pour = next(s for s in head.dependencies if str(s) == "PourTomatoes")
    assert pour.ctx is back
    recipes.CALLS.clear()
    assert head.materialize() == lunch
    assert "PourTomatoes" not in recipes.CALLS and "BrownOnions" not in recipes.CALLS


def test_pipeline_of_notebook_classes_resumes_in_a_fresh_process(tmp_path):
    writer = textwrap.dedent(
        """
        import sys
        from job_orchestra import Context, Step
        class Load(Step):
            def run(self):
                print("RUN Load")
                return list(range(5))
        class Square(Step):
            def __init__(self, power, **kw):
                super().__init__(**kw)
                self.power = power
            def run(self, xs):
                print("RUN Square")
                return [x ** self.power for x in xs]
        class Total(Step):
            def run(self, xs):
                print("RUN Total")
                return sum(xs)
        ctx = Context()
        head = Total(depends_on=Square(2, depends_on=Load(), ctx=ctx))
        print("RESULT", head.materialize())
        ctx.store(sys.argv[1], pipeline=head)
        """
    )
    reader = textwrap.dedent(
        """
        import sys
        from job_orchestra import Context
        ctx = Context.load(sys.argv[1])
        print("RESULT", ctx.pipeline.materialize())
        """
    )
    snap = str(tmp_path / "snap")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.run([sys.executable, "-c", writer, snap], capture_output=True, text=True, env=env, check=True)
    assert "RESULT 30" in first.stdout
    second = subprocess.run([sys.executable, "-c", reader, snap], capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr
    assert "RESULT 30" in second.stdout
    assert "RUN Total" in second.stdout and "RUN Square" not in second.stdout and "RUN Load" not in second.stdout


def test_a_crash_before_rename_leaves_nothing_at_the_target(tmp_path, monkeypatch):
    import job_orchestra.snapshot as snapshot

    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot, "rename_noreplace", crash)
    with pytest.raises(OSError, match="ENOSPC") as info:
        Context(a=1).store(tmp_path / "snap")
    assert info.value.errno == 28 and "the snapshot into place" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_step_names_with_odd_characters_round_trip(tmp_path):
    class Named(Step):
        def run(self):
            return 5

    ctx = Context()
    Named(ctx=ctx, name_alias="a/b: c*?").materialize()
    ctx.store(tmp_path / "snap")
    assert Context.load(tmp_path / "snap")["a/b: c*?"] == 5


def test_1_1_spellings_of_store_and_load(tmp_path):
    ctx = Context(a=1)
    ctx.store(dir_path=tmp_path / "one", fullcopy=True)
    ctx.store(str(tmp_path / "two"), True)  # 1.1's positional fullcopy
    assert Context.load(dir_path=tmp_path / "one")["a"] == 1
    assert Context.load(tmp_path / "two").pipeline is None
    with pytest.raises(TypeError, match="path"):
        Context().store()


def test_notebook_steps_using_library_functions_imported_by_name_snapshot_and_resume(tmp_path):
    # dill's recurse walk alone never ends on scikit-learn's decorated functions; snapshots must still work.
    writer = textwrap.dedent(
        """
        import sys
        from sklearn.metrics import accuracy_score
        from sklearn.model_selection import cross_val_score
        from job_orchestra import Context, Step
        class Score(Step):
            def run(self):
                return {"accuracy": accuracy_score([1, 0, 1], [1, 1, 1]), "cv": cross_val_score.__name__}
        class Report(Step):
            def run(self, score):
                return f"{score.cv}: {score.accuracy:.2f}"
        ctx = Context(scorer=lambda y, p: accuracy_score(y, p))
        head = Report(depends_on=Score(ctx=ctx))
        print("RESULT", head.materialize())
        ctx.store(sys.argv[1], pipeline=head)
        """
    )
    reader = textwrap.dedent(
        """
        import sys
        from job_orchestra import Context
        ctx = Context.load(sys.argv[1])
        print("RESULT", ctx.pipeline.materialize(), ctx["scorer"]([1, 0], [1, 0]))
        """
    )
    snap = str(tmp_path / "snap")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.run([sys.executable, "-c", writer, snap], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([sys.executable, "-c", reader, snap], capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "RESULT cross_val_score: 0.67 1.0" in second.stdout


def test_the_manifest_names_the_installed_versions_of_the_libraries_that_pickled_it(tmp_path):
    from importlib import metadata

    import numpy as np

    Context(a=np.arange(3)).store(tmp_path / "snap")
    packages = json.loads((tmp_path / "snap" / "manifest.json").read_text())["packages"]
    for dist in ("job-orchestra", "dill", "numpy"):
        assert packages[dist] == metadata.version(dist), dist
