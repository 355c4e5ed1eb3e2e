"""Shared pieces of the fault-injection tests: a payload that betrays its unpickling, a reference snapshot,
and the one check every case ends with ("a clear error, or an exact round-trip; nothing executed")."""

from __future__ import annotations

import collections
import pathlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from job_orchestra import Context, SnapshotError
from tests.recipes import Leaf, Node


class Payload:
    """Unpickling it creates the file ``marker``: the proof that bytes from a snapshot ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def payload_bytes(marker: Path, size: int | None = None) -> bytes:
    """A pickle that creates ``marker`` when loaded, padded (after its STOP) to ``size`` bytes if shorter."""
    data = pickle.dumps(Payload(marker), protocol=5)
    if size is not None and len(data) < size:
        data += b"\0" * (size - len(data))
    return data


def reference_values() -> dict[Any, Any]:
    """Values with every kind of key the manifest knows: str, int and pickled (a tuple)."""
    return {
        "numbers": list(range(300)),
        "array": np.arange(2000, dtype="float64"),
        7: {"int": "key"},
        ("tuple", "key"): collections.OrderedDict(a=1, b=[2, 3]),
    }


def make_reference(path: Path, *, key: bytes | None = None) -> Path:
    """A snapshot of :func:`reference_values` with a pipeline."""
    ctx = Context(reference_values())
    head = Node(depends_on=Leaf(ctx=ctx), ctx=ctx)
    ctx.store(path, pipeline=head, key=key)
    return path


def check(snap: Path, marker: Path, *, key: bytes | None = None) -> str:
    """Load ``snap`` and read everything: refused with a SnapshotError, or exactly the reference values.
    Never runs the payload. Returns the outcome: "refused at load", "refused at read" or "exact"."""
    try:
        try:
            loaded = Context.load(snap, key=key)
        except SnapshotError as exc:
            assert "snapshot" in str(exc).lower(), str(exc)
            return "refused at load"
        expected = reference_values()
        assert set(loaded) == set(expected) | {"context_meta"}, f"keys changed: {sorted(map(repr, loaded))}"
        refused = 0
        for k in [*expected, "context_meta", "pipeline"]:
            try:
                value = loaded.pipeline if k == "pipeline" else loaded[k]
            except SnapshotError as exc:
                assert repr(k) in str(exc) or k in ("pipeline", "context_meta"), str(exc)
                refused += 1
                continue
            if k == "pipeline":
                assert str(value) == "Node" and value.ctx is loaded
            elif isinstance(value, np.ndarray):
                assert value.dtype == expected[k].dtype and np.array_equal(value, expected[k])
            elif k != "context_meta":
                assert type(value) is type(expected[k]) and value == expected[k]
        return "refused at read" if refused else "exact"
    finally:
        assert not marker.exists(), "bytes from the snapshot were unpickled before being verified"
