"""A step defined in a notebook cell and run in another process shows the cell's lines in its traceback."""

from __future__ import annotations

import linecache
import pickle

import cloudpickle
import pytest

from job_orchestra import Context
from job_orchestra.cell_sources import SOURCES_KEY, cell_sources

CELL = """
from job_orchestra import Step
class Breaks(Step):
    def run(self):
        values = [1, 2]
        raise ValueError("no convergence in the cell")
"""


def _cell(name: str) -> dict:
    """Run CELL as IPython would: its lines in linecache without a file (mtime None), a module of its own."""
    lines = CELL.splitlines(keepends=True)
    linecache.cache[name] = (len(CELL), None, lines, name)
    namespace = {"__name__": "cell_namespace_not_importable"}
    exec(compile(CELL, name, "exec"), namespace)
    return namespace


@pytest.mark.parametrize("executor", ["processes"])
def test_a_worker_traceback_shows_the_cells_lines(executor):
    name = "<ipykernel cell 7 of the sources test>"
    step = _cell(name)["Breaks"](ctx=Context())
    cells, methods = cell_sources(type(step))
    assert cells == ((name, tuple(CELL.splitlines(keepends=True))),) and ("Breaks", "run", name) in methods
    with pytest.raises(ValueError, match="no convergence") as info:
        step.materialize(executor)
    worker = "\n".join(info.value.__notes__)
    assert f'File "{name}", line 6, in run' in worker
    assert 'raise ValueError("no convergence in the cell")' in worker  # the source line, from the cell


def test_steps_from_files_carry_nothing_and_loading_drops_the_key():
    from job_orchestra import Step

    class FromFile(Step):
        def run(self):
            return 1

    assert cell_sources(FromFile) == ()
    name = "<cell-sources-roundtrip>"
    step = _cell(name)["Breaks"]()
    state = step.__getstate__()
    assert SOURCES_KEY in state and SOURCES_KEY not in step.__dict__
    del linecache.cache[name]
    copy = pickle.loads(cloudpickle.dumps(step))
    assert SOURCES_KEY not in copy.__dict__ and copy.__dict__.keys() == step.__dict__.keys()
    assert linecache.cache[name][2] == CELL.splitlines(keepends=True)  # registered again on loading


def test_on_dask_too():
    distributed = pytest.importorskip("distributed")
    name = "<ipykernel cell 8 of the sources test>"
    step = _cell(name)["Breaks"](ctx=Context())
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            with pytest.raises(ValueError, match="no convergence") as info:
                step.materialize(client)
    worker = "\n".join(info.value.__notes__)
    assert f'File "{name}", line 6, in run' in worker
    assert 'raise ValueError("no convergence in the cell")' in worker
