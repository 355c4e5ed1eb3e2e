"""Mapped steps whose runs and failures live in a directory (a ``Box``), so they are seen the same way on
threads and on worker processes, and are no part of any step's fingerprint (only the path is)."""

from __future__ import annotations

import os
from pathlib import Path

from job_orchestra import Step


class Boom(Exception):
    """The failure an item raises when its box says so."""


class Box:
    """A directory recording which steps ran (one line each, appended) and which items must fail."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        Path(path).mkdir(parents=True, exist_ok=True)

    def runs(self) -> list[str]:
        log = Path(self.path, "runs.log")
        return log.read_text().splitlines() if log.exists() else []

    def clear(self) -> None:
        Path(self.path, "runs.log").unlink(missing_ok=True)
        for f in Path(self.path).glob("fail-*"):
            f.unlink()

    def fail(self, *values: object) -> None:
        for v in values:
            Path(self.path, f"fail-{v!r}").touch()


def record(box: str, name: str) -> None:
    fd = os.open(os.path.join(box, "runs.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (name + "\n").encode())
    finally:
        os.close(fd)


class Item(Step):
    """Returns ``(x, inputs)``; raises :class:`Boom` when the box holds ``fail-{x!r}``."""

    def __init__(self, *deps: Step, x: object = None, box: str = "", **kw: object) -> None:
        super().__init__(depends_on=list(deps) or kw.pop("depends_on", None), **kw)
        self.x = x
        self.box = box

    def run(self, *inputs: object) -> object:
        record(self.box, self.name)
        if os.path.exists(os.path.join(self.box, f"fail-{self.x!r}")):
            raise Boom(self.name)
        return (self.x, inputs) if inputs else self.x


class Source(Step):
    """Returns its ``values`` (the output a dynamic map fans out over)."""

    def __init__(self, values: object = (), box: str = "", **kw: object) -> None:
        super().__init__(**kw)
        self.values = values
        self.box = box

    def run(self, *inputs: object) -> object:
        record(self.box, self.name)
        return self.values


class Total(Step):
    """Collects what it is given (a group's output) into a list of its items, recording its run."""

    def __init__(self, group: Step, box: str = "", **kw: object) -> None:
        super().__init__(depends_on=group, **kw)
        self.box = box

    def run(self, outputs: object) -> object:
        record(self.box, self.name)
        return outputs
