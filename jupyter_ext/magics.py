"""``%orchestra``: plan, graph, run, widget, save and load, from one line magic.

::

    %load_ext jupyter_ext
    %orchestra plan HEAD      # live HTML plan of the pipeline ending at HEAD
    %orchestra graph HEAD     # live SVG graph
    %orchestra run HEAD       # HEAD.materialize(), with a progress bar; returns the result
    %orchestra widget HEAD    # a PipelineWidget
    %orchestra save [-f] PATH # every Step and Context of the namespace, names kept, in one dill file
    %orchestra load PATH      # put them back (in a fresh kernel too)
"""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import dill
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from job_orchestra import Context, Step, snapshot

from .display import show
from .runs import TRACKER

__all__ = ["FORMAT", "OrchestraMagics", "load_namespace", "save_namespace"]

#: Marks the files written by ``%orchestra save``.
FORMAT = "job-orchestra-namespace"
_USAGE = __doc__.split("::", 1)[1].strip("\n")


def _snapshot_objects(namespace: dict[str, Any]) -> dict[str, Step | Context]:
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_") and isinstance(value, (Step, Context))
    }


def save_namespace(namespace: dict[str, Any], path: str | os.PathLike[str], overwrite: bool = False) -> list[str]:
    """Write every Step and Context of ``namespace`` to one dill file at ``path``; returns their names.

    Objects are pickled together, so shared references survive (a step's ``ctx`` is the Context saved
    under its own name). Classes defined in the notebook are carried by value. The write is atomic.
    """
    target = Path(path).expanduser()
    objects = _snapshot_objects(namespace)
    if not objects:
        raise UsageError("%orchestra save: no Step or Context in the namespace, so there is nothing to save.")
    if target.is_dir():
        raise UsageError(f"%orchestra save: {str(target)!r} is a directory; give a file path such as state.dill.")
    if target.exists() and not overwrite:
        raise UsageError(f"%orchestra save: {str(target)!r} exists; pass -f to replace it, or choose another path.")
    if not target.parent.is_dir():
        raise UsageError(f"%orchestra save: the folder {str(target.parent)!r} does not exist; create it first.")
    payload = {"format": FORMAT, "version": 1, "objects": objects}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            snapshot.dump(payload, f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sorted(objects)


def load_namespace(path: str | os.PathLike[str]) -> dict[str, Step | Context]:
    """Read a file written by :func:`save_namespace` (it runs code from the file, like any pickle)."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise UsageError(f"%orchestra load: no file at {str(source)!r}; give the path used with %orchestra save.")
    with open(source, "rb") as f:
        try:
            payload = dill.load(f)
        except Exception as exc:
            raise UsageError(f"%orchestra load: {str(source)!r} is not a %orchestra save file ({exc}).") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UsageError(f"%orchestra load: {str(source)!r} was not written by %orchestra save.")
    return payload["objects"]


@magics_class
class OrchestraMagics(Magics):
    """The ``%orchestra`` line magic."""

    @line_magic
    def orchestra(self, line: str) -> Any:
        """Show, run or snapshot pipelines: ``%orchestra plan|graph|run|widget HEAD``, ``save|load PATH``."""
        try:
            args = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%orchestra: {exc}") from exc
        if not args:
            raise UsageError(f"%orchestra needs a command:\n{_USAGE}")
        command, rest = args[0], args[1:]
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(f"%orchestra: unknown command {command!r}. Commands:\n{_USAGE}")
        return handler(rest)

    # -- helpers --------------------------------------------------------------------------------------
    def _head(self, command: str, args: list[str]) -> Step:
        if len(args) != 1:
            raise UsageError(f"%orchestra {command} takes one step name, e.g. %orchestra {command} head")
        expr = args[0]
        first, *attrs = expr.split(".")
        namespace = self.shell.user_ns
        if not first.isidentifier() or first not in namespace:
            raise UsageError(f"%orchestra {command}: no variable named {first!r} in the notebook; check the spelling.")
        value = namespace[first]
        for i, attr in enumerate(attrs):
            try:
                value = getattr(value, attr)
            except AttributeError:
                raise UsageError(
                    f"%orchestra {command}: {'.'.join([first, *attrs[:i]])!r} has no attribute {attr!r}."
                ) from None
        if not isinstance(value, Step):
            raise UsageError(
                f"%orchestra {command}: {expr!r} is a {type(value).__name__}, not a Step; "
                "give the head step of a pipeline."
            )
        return value

    def _path(self, command: str, args: list[str]) -> tuple[str, bool]:
        force = "-f" in args
        rest = [a for a in args if a != "-f"]
        if len(rest) != 1:
            raise UsageError(f"%orchestra {command} takes one path, e.g. %orchestra {command} pipeline.dill")
        return rest[0], force

    # -- commands -------------------------------------------------------------------------------------
    def _cmd_plan(self, args: list[str]) -> None:
        show(self._head("plan", args).execution_plan(show=False))

    def _cmd_graph(self, args: list[str]) -> None:
        show(self._head("graph", args).dependency_graph())

    def _cmd_run(self, args: list[str]) -> Any:
        return self._head("run", args).materialize(callbacks=TRACKER)

    def _cmd_widget(self, args: list[str]) -> Any:
        from .widget import PipelineWidget  # imports ipywidgets: only when a widget is wanted

        return PipelineWidget(self._head("widget", args))

    def _cmd_save(self, args: list[str]) -> None:
        path, force = self._path("save", args)
        names = save_namespace(self.shell.user_ns, path, overwrite=force)
        print(f"Saved {len(names)} objects: {', '.join(names)}")

    def _cmd_load(self, args: list[str]) -> None:
        path, _ = self._path("load", args)
        objects = load_namespace(path)
        self.shell.user_ns.update(objects)
        print(f"Loaded {len(objects)} objects: {', '.join(sorted(objects))}")
