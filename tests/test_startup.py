"""Start-up: ``import job_orchestra`` loads no module it can do without until it is used, and what those
modules were imported for still works once they are loaded (sockets are still refused by content)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from job_orchestra import Context, Step

LATER = [
    "socket",
    "_socket",
    "platform",
    "datetime",
    "importlib.metadata",
    "IPython",
    "ipywidgets",
    "dill",
    "numpy",
    "pandas",
]


def test_import_loads_none_of_the_modules_paid_for_on_first_use():
    code = f"import json, sys, job_orchestra; print(json.dumps([m for m in {LATER!r} if m in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True
    )
    assert json.loads(done.stdout) == []


class Talks(Step):
    def __init__(self, conn, **kwargs):
        super().__init__(**kwargs)
        self.conn = conn

    def run(self):
        return 1


SERVER = None


class Reads(Step):
    def run(self):
        return SERVER is not None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_socket_parameter_or_global_still_cannot_be_told():
    global SERVER
    a, b = socket.socketpair()
    try:
        ctx = Context()
        step = Talks(a, ctx=ctx)
        step.materialize()
        row = step.execution_plan(show=False)["Talks"]
        assert (row.availability.value, row.reason) == ("[?]", "cannot tell: parameter conn is a socket")
        SERVER = b
        reader = Reads(ctx=ctx)
        reader.materialize()
        row = reader.execution_plan(show=False)["Reads"]
        assert row.availability.value == "[?]" and "SERVER" in row.reason and "a socket" in row.reason, row
    finally:
        SERVER = None
        a.close()
        b.close()
