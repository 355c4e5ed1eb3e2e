"""The compile-context matrix: one source gives one code digest however and wherever it was compiled.

Python 3.11 compiles ``mod.f()`` to other instructions when ``import mod`` is in the same cell or file
than when it is in another one, and ``%autoreload`` leaves code objects that differ from a fresh import.
Each context below compiles the same class; all digests must agree: a file module, ``importlib.reload``,
``exec`` (with its imports, after them, in a bare namespace), an IPython cell with its imports, imports in
another cell, ``%autoreload 2``, real ipykernel kernels (through nbclient), and fresh processes loading a
snapshot written from a file module or from an autoreload session. The in-process contexts also run on
every other interpreter named in ``JO_TEST_PYTHONS`` (``os.pathsep``-separated) or found as
``python3.12``/``python3.13`` on the PATH that has job-orchestra's dependencies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parent.parent)

IMPORTS = """\
import os
import os.path
import helpers_cc
from helpers_cc import scale
from job_orchestra import Step
"""
BODY = '''\
LIMIT = 10
WEIGHTS = {"a": 1.5, "b": 2}


def clean(values):
    """Drop the missing values."""
    return [v for v in values if v is not None]


class Work(Step):
    """A step whose code calls module functions in every way the compiler treats differently."""

    def __init__(self, k=3, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def run(self, *inputs):
        base = os.path.join("a", "b") + os.getcwd()[:0]  # a library module: LOAD_ATTR / LOAD_METHOD
        total = helpers_cc.twice(self.k) + scale(x=LIMIT)  # a module of the user's, a keyword call
        try:
            total += len(clean([1, None, 2]))
        except (TypeError, ValueError) as exc:
            raise RuntimeError(f"cannot clean: {exc}") from exc
        fn = lambda v: v * WEIGHTS["a"]  # noqa: E731
        return {"base": base, "total": total + fn(2) + sum(x * 2 for x in range(3))}
'''
HELPERS = """\
def twice(x):
    return 2 * x


def scale(x=1):
    return x * 3
"""

IN_PROCESS = r"""
import importlib, json, os, sys, time
sys.path.insert(0, {tmp!r})
from job_orchestra.code_digest import code_digest
IMPORTS, BODY = {imports!r}, {body!r}
tmp = {tmp!r}
out = {{}}
writes = []

def write(name, text):
    path = os.path.join(tmp, name + ".py")
    with open(path, "w") as f:
        f.write(text)
    writes.append(path)
    stamp = time.time() + len(writes) * 3  # a new mtime each time: reloads and autoreload see the change
    os.utime(path, (stamp, stamp))
    importlib.invalidate_caches()

write("steps_cc", IMPORTS + "\n" + BODY)
import steps_cc
out["file module"] = code_digest(steps_cc.Work)
importlib.reload(steps_cc)
out["importlib.reload"] = code_digest(steps_cc.Work)
ns = {{"__name__": "nb"}}
exec(compile(IMPORTS + "\n" + BODY, "<exec-1>", "exec"), ns)
out["exec with its imports"] = code_digest(ns["Work"])
ns = {{"__name__": "nb2"}}
exec(compile(IMPORTS, "<exec-2>", "exec"), ns)
exec(compile(BODY, "<exec-3>", "exec"), ns)
out["exec after its imports"] = code_digest(ns["Work"])
ns = {{}}
exec(compile(IMPORTS + "\n" + BODY, "<exec-4>", "exec"), ns)
assert ns["Work"].__module__ == "builtins"
out["exec in a bare namespace"] = code_digest(ns["Work"])
try:
    from IPython.core.interactiveshell import InteractiveShell
except ImportError:
    InteractiveShell = None
if InteractiveShell is not None:
    shell = InteractiveShell.instance()
    shell.run_cell(IMPORTS + "\n" + BODY).raise_error()
    out["IPython cell with its imports"] = code_digest(shell.user_ns["Work"])
    shell.run_cell("x = 1").raise_error()
    shell.run_cell(IMPORTS).raise_error()
    shell.run_cell("\n\n" + BODY).raise_error()
    out["IPython, imports in another cell"] = code_digest(shell.user_ns["Work"])
    shell.run_line_magic("load_ext", "autoreload")
    shell.run_line_magic("autoreload", "2")
    write("auto_cc", IMPORTS + "\n" + BODY.replace("scale(x=LIMIT)", "scale(x=LIMIT + 1)"))
    shell.run_cell("import auto_cc\nold = auto_cc.Work").raise_error()
    write("auto_cc", IMPORTS + "\n" + BODY)
    shell.run_cell("pass").raise_error()  # autoreload updates auto_cc (and the class in place) before a cell
    assert shell.user_ns["old"] is not shell.user_ns["auto_cc"].Work  # reloaded: the old class updated in place
    out["%autoreload 2, the class updated in place"] = code_digest(shell.user_ns["old"])
    out["%autoreload 2, the reloaded class"] = code_digest(shell.user_ns["auto_cc"].Work)
print(json.dumps(out))
"""

SNAPSHOT_WRITE = r"""
import sys
sys.path.insert(0, {tmp!r})
from job_orchestra import Context
mode = sys.argv[1]
if mode == "file":
    import steps_cc as m
else:  # an autoreload session: the module is edited and reloaded in place before the run
    from IPython.core.interactiveshell import InteractiveShell
    import importlib, os, time
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "autoreload")
    shell.run_line_magic("autoreload", "2")
    path = os.path.join({tmp!r}, "auto2_cc.py")
    good = open(os.path.join({tmp!r}, "steps_cc.py")).read()
    with open(path, "w") as f:
        f.write(good.replace("scale(x=LIMIT)", "scale(x=LIMIT + 1)"))
    importlib.invalidate_caches()
    shell.run_cell("import auto2_cc").raise_error()
    with open(path, "w") as f:
        f.write(good)
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))
    shell.run_cell("pass").raise_error()
    m = shell.user_ns["auto2_cc"]
ctx = Context()
head = m.Work(k=4, depends_on=m.Work(ctx=ctx, name_alias="first"), ctx=ctx, name_alias="second")
head.materialize()
ctx.store(sys.argv[2], pipeline=head)
"""

SNAPSHOT_READ = r"""
import json, sys
sys.path.insert(0, {tmp!r})
from job_orchestra import Context
ctx = Context.load(sys.argv[1])
mode = sys.argv[2]
if mode == "restored pipeline":  # no class defined here: the pipeline from the snapshot
    head = ctx.pipeline
else:  # a notebook: the same source, imports in one cell, the classes in another
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_cell({imports!r}).raise_error()
    shell.run_cell({body!r}).raise_error()
    Work = shell.user_ns["Work"]
    head = Work(k=4, depends_on=Work(ctx=ctx, name_alias="first"), ctx=ctx, name_alias="second")
print(json.dumps([[r.name, r.availability.value, r.reason] for r in head.execution_plan(show=False)]))
"""


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "helpers_cc.py").write_text(HELPERS)
    (tmp_path / "steps_cc.py").write_text(IMPORTS + "\n" + BODY)
    return tmp_path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(python: str, script: str, *args: str) -> str:
    done = subprocess.run([python, "-c", script, *args], capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def _in_process(python: str, tmp: Path) -> dict[str, str]:
    script = IN_PROCESS.format(tmp=str(tmp), imports=IMPORTS, body=BODY)
    return json.loads(_run(python, script))


def _other_pythons() -> list[str]:
    names = [p for p in os.environ.get("JO_TEST_PYTHONS", "").split(os.pathsep) if p]
    names += [p for p in (shutil.which("python3.12"), shutil.which("python3.13")) if p]
    usable = []
    for python in dict.fromkeys(names):
        probe = subprocess.run(
            [python, "-c", "import sys, job_orchestra; print(sys.version_info[:2] != (3, 11) or sys.executable)"],
            capture_output=True,
            text=True,
            env=_env(),
        )
        if probe.returncode == 0 and Path(python).resolve() != Path(sys.executable).resolve():
            usable.append(python)
    return usable


def test_every_compile_context_gives_one_digest(sources):
    digests = _in_process(sys.executable, sources)
    assert len(digests) == 9
    assert len(set(digests.values())) == 1, digests


@pytest.mark.parametrize("python", _other_pythons() or [None])
def test_other_interpreters_agree_within_themselves(python, sources):
    if python is None:
        pytest.skip("no other Python interpreter with job-orchestra's dependencies (set JO_TEST_PYTHONS)")
    digests = _in_process(python, sources)
    assert len(digests) >= 5 and len(set(digests.values())) == 1, digests


KERNEL_CASES = {
    "one cell with its imports": [IMPORTS + "\n" + BODY],
    "imports in another cell": [IMPORTS, "y = 2", BODY],
}


def test_real_kernels_agree_with_the_file_module(sources, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    expected = _in_process(sys.executable, sources)["file module"]
    for name, cells in KERNEL_CASES.items():
        code = [f"import sys\nsys.path.insert(0, {str(sources)!r})", *cells]
        code.append("from job_orchestra.code_digest import code_digest\nprint(code_digest(Work))")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code])
        client = nbclient.NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(sources)}}
        )
        client.execute()
        printed = nb.cells[-1].outputs[0]["text"].strip()
        assert printed == expected, name


@pytest.mark.parametrize("written_by", ["file", "autoreload"])
@pytest.mark.parametrize("read_as", ["restored pipeline", "notebook cells"])
def test_a_snapshot_loaded_in_a_fresh_process_is_fresh(sources, written_by, read_as):
    path = str(sources / f"snap-{written_by}")
    write = SNAPSHOT_WRITE.format(tmp=str(sources))
    subprocess.run([sys.executable, "-c", write, written_by, path], check=True, env=_env(), timeout=300)
    read = SNAPSHOT_READ.format(tmp=str(sources), imports=IMPORTS, body=BODY)
    rows = json.loads(_run(sys.executable, read, path, read_as))
    assert rows == [["first", "[*]", None], ["second", "[*]", None]]


def test_an_edit_is_still_seen_in_every_context(sources):
    """The other side: normalising must not hide a real edit (the same contexts, one changed constant)."""
    edited = BODY.replace("v * WEIGHTS", "v / WEIGHTS")
    script = IN_PROCESS.format(tmp=str(sources), imports=IMPORTS, body=edited)
    before = _in_process(sys.executable, sources)
    after = json.loads(_run(sys.executable, textwrap.dedent(script)))
    assert len(set(after.values())) == 1 and set(after.values()).isdisjoint(before.values())
