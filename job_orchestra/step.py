"""``Step``: one node of a pipeline, declared by subclassing and overriding ``run()``."""

from __future__ import annotations

import json
import linecache
import os
import sys
import warnings
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import accept, file_input, redefined, rendering, scheduler
from .attrdict import AttrDict
from .cell_sources import SOURCES_KEY, cell_sources, register
from .context import Context
from .errors import InvalidStepError
from .graph import Node, as_dependency_list, collect, legacy_breadth_first, legacy_depth_first, node_name
from .plan import ExecutionPlan, stale_policy
from .rendering import start_in_kernel

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from .drawing import DependencyGraph
    from .events import Callback
    from .plan import StalePolicy

__all__ = ["Step"]

_NO_NAME = object()

_mapper: list[Any] = [None]
"""``Step.map``'s implementation, set by :mod:`job_orchestra.mapping` (which subclasses Step, so step.py
cannot import it)."""


class Step(Node):
    """A unit of work in a pipeline.

    Subclass it and override ``run(self, *inputs)``; ``inputs`` are the outputs of ``depends_on``, in that
    order. Give it a :class:`~job_orchestra.Context` with ``ctx=`` to keep its result between runs, and a
    unique name with ``name_alias=`` when one class is used more than once in a pipeline.

    >>> class Two(Step):
    ...     def run(self):
    ...         return 2
    >>> class Square(Step):
    ...     def run(self, x):
    ...         return x * x
    >>> Square(depends_on=Two()).materialize()
    4
    """

    def __init__(
        self,
        depends_on: Step | Sequence[Step] | None = None,
        ctx: Context | None = None,
        name_alias: str | None = None,
    ) -> None:
        if name_alias is not None and (not isinstance(name_alias, str) or not name_alias):
            raise InvalidStepError(f"{type(self).__name__}: name_alias= must be a non-empty string, got {name_alias!r}")
        self.name_alias = name_alias
        self.dependencies: list[Step] = as_dependency_list(name_alias or type(self).__name__, depends_on)
        if ctx is not None:
            if not isinstance(ctx, Context):
                raise InvalidStepError(
                    f"{name_alias or type(self).__name__}: ctx= must be a job_orchestra.Context, got "
                    f"{type(ctx).__name__}. Create one with Context()."
                )
        self.ctx = ctx

    # -- pickling: cell sources travel with steps defined in a notebook (see .cell_sources) -------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__
        sources = cell_sources(type(self))
        return {**state, SOURCES_KEY: sources} if sources else state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if SOURCES_KEY in state:
            state = dict(state)
            register(state.pop(SOURCES_KEY), type(self))
        self.__dict__.update(state)

    # -- naming -------------------------------------------------------------------------------------
    @property
    def _name(self) -> str:
        return node_name(self)

    _default_name: str | None = None

    @property
    def name(self) -> str:
        """The step's name, ``str(step)`` as in 1.1: its ``name_alias`` if given, else its class name. A step
        that sets its own ``name`` attribute (``self.name = ...`` in 1.1 code) gets that value back instead:
        for job-orchestra it is a parameter like any other, and ``str(step)`` stays the name."""
        own = self.__dict__.get("name", _NO_NAME)
        return self._name if own is _NO_NAME else own

    @name.setter
    def name(self, value: Any) -> None:
        self.__dict__["name"] = value

    @name.deleter
    def name(self) -> None:
        del self.__dict__["name"]

    def __repr__(self) -> str:
        kind = type(self).__name__
        if not all(hasattr(self, a) for a in ("name_alias", "dependencies", "ctx")):
            return f"<{kind} not initialized: its __init__ does not call super().__init__()>"
        alias = f" {self.name_alias!r}" if self.name_alias else ""
        deps = ", ".join(map(str, self.dependencies))
        ctx = ", ctx" if self.ctx is not None else ""
        return f"<{kind}{alias} depends_on=[{deps}]{ctx}>"

    # -- the work -----------------------------------------------------------------------------------
    run = Node.run  # the same function: a step that does not override it "defines no run()" (see defines_run)

    def materialize(
        self,
        executor: str | Executor | Any | None = None,
        *,
        max_workers: int | None = None,
        callbacks: Sequence[Callback] | Callback | None = None,
        stale: StalePolicy = "rerun",
    ) -> Any:
        """Run what the pipeline needs and return this step's output.

        Each step runs at most once; steps whose Context holds a result are not run, and neither are the
        steps behind them. Results are written to their Context as soon as each step finishes, so a failure
        loses nothing: call ``materialize()`` again to run only what is left. A cached result computed from
        other code, parameters or inputs is stale and runs again; ``stale="use"`` uses it anyway (as 1.1 did).

        ``executor`` runs independent steps side by side: ``None`` (serial), ``"threads"``, ``"processes"``,
        any :class:`concurrent.futures.Executor`, or a ``dask.distributed.Client`` (steps become Dask tasks).
        At most ``max_workers`` steps run at once. ``callbacks`` follow the run (see :class:`Callback`).
        """
        __tracebackhide__ = True  # IPython's convention: tracebacks start at the user's code
        start_in_kernel()  # a display layer (found by entry point) shows progress in Jupyter
        with stale_policy(stale):
            return scheduler.materialize(self, executor=executor, max_workers=max_workers, callbacks=callbacks)

    def rebind(self) -> Step:
        """Move the steps of this pipeline whose class was defined again (a notebook cell re-run) onto
        the current class, keeping their parameters, dependencies, Context and name; returns ``self``."""
        redefined.rebind(self)
        return self

    # -- inspection ---------------------------------------------------------------------------------
    def execution_plan(self, show: bool | None = None, *, stale: StalePolicy = "rerun") -> ExecutionPlan:
        """What is cached and what will run, one row per step in 1.1's plan order (dependencies first).

        Returns an :class:`~job_orchestra.plan.ExecutionPlan`, whose ``str()`` is 1.1's text. Outside
        IPython (a script, as in 1.1) the plan is also printed, unless ``show=False``. Stale results show as
        ``[~]`` and are scheduled again; ``stale="use"`` shows the plan 1.1 would follow.
        """
        plan = ExecutionPlan.of(self, stale=stale)
        if show is None:
            show = not _interactive()
        if show:
            print(plan)
        return plan

    def accept_code(self, head: Step | None = None) -> list[str]:
        """Accept this step's current code without re-running it (after an edit that does not change
        results); with ``head``, also the steps up to ``head`` stale only because of it. Returns their names."""
        return accept.accept_code(self, head)

    def dependency_graph(self, *, expand: bool | Sequence[str] | None = None) -> DependencyGraph:
        """The pipeline drawn with Graphviz: displays as inline SVG in Jupyter; ``.source`` is DOT.

        A mapped step is one stacked node; ``expand`` draws groups item by item: None (small ones), True,
        False, or a list of group names."""
        from .drawing import DependencyGraph  # imports graphviz: paid by the first drawing, not at import

        return DependencyGraph.of(self, expand=expand)

    def dependency_graph_js(self, enable_wheel_zoom: bool = False) -> str:
        """Deprecated 1.1 API: JavaScript that draws the graph into a notebook output element."""
        warnings.warn(
            "dependency_graph_js() is deprecated: dependency_graph() returns a Graphviz drawing that "
            "displays as inline SVG.",
            DeprecationWarning,
            stacklevel=2,
        )

        svg = self.dependency_graph().svg_or_text()
        return f"element.innerHTML = {json.dumps(svg)};"

    # Rich display: built by a display layer found through job_orchestra.rendering (jupyter_ext in Jupyter).
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        """The step's dependency graph and execution plan (HTML), plus its repr and plan as text."""
        bundle = rendering.mimebundle(self)
        if bundle is None:
            bundle = {"text/plain": f"{self!r}\n{str(self.execution_plan(show=False)).rstrip()}"}
        return bundle

    def _ipython_display_(self) -> None:
        """In IPython, show the graph and plan through the display layer (live: they follow the runs)."""
        rendering.ipython_display(self, fallback=self._repr_mimebundle_())

    def depending_steps_breadth_first(self) -> list[str]:
        """Names of every step this one depends on, directly or not, breadth-first (1.1 order)."""
        graph = collect(self)
        return legacy_breadth_first(graph.head, graph.deps)

    def depending_steps_depth_first(self) -> list[str]:
        """Names of every step this one depends on, directly or not, in depth-first post-order."""
        graph = collect(self)
        return legacy_depth_first(graph.head, graph.deps)

    # -- fan-out ------------------------------------------------------------------------------------
    @classmethod
    def map(
        cls,
        *args: Any,
        how: str | None = None,
        keys: Sequence[object] | Any = None,
        name_alias: str | None = None,
        fixed: dict[str, Any] | None = None,
        **over: Any,
    ) -> Step:
        """One step of this class per item, collected by a :class:`~job_orchestra.mapping.MapGroup` step.

        Each keyword is a mapped parameter: a list/tuple/range (items in order), a dict (key -> value) or a
        step whose output is one (its items are known after it runs). Two or more need ``how="product"``
        (a grid) or ``how="zip"``. ``*args``, ``depends_on=``, ``ctx=`` and ``fixed={...}`` go to every
        item unchanged; item ``key`` is named ``f"{name_alias or class name}[{key}]"``.
        See docs/concepts/map.md.
        """
        return _mapper[0](cls, *args, how=how, keys=keys, name_alias=name_alias, fixed=fixed, **over)

    # -- the 1.1 helpers ----------------------------------------------------------------------------
    @staticmethod
    def from_data(data: Any, name_alias: str = "Data") -> Step:
        """A step with no dependencies whose output is ``{"output": data}`` (with attribute access)."""
        return _Data(data, name_alias=name_alias)

    @staticmethod
    def from_file(path_or_glob: str | os.PathLike[str], name_alias: str | None = None) -> Step:
        """An input step for data files: a file, a directory (its files, recursively) or a glob.

        Its output is the path as given (a file) or the sorted list of the files' paths, so a step that reads
        them depends on it; their content joins the fingerprint, so an edited file makes its readers stale
        (``file data/meta.csv changed``). Named ``file:<path as given>`` unless ``name_alias`` is given; the
        same path and alias give the same step.
        """
        given = os.fspath(path_or_glob) if isinstance(path_or_glob, (str, os.PathLike)) else None
        if not isinstance(given, str) or not given:
            raise InvalidStepError(f"Step.from_file() takes a non-empty path or glob (str), got {path_or_glob!r}")
        key = (given, name_alias)
        step = _FILE_INPUTS.get(key)
        if step is None:
            step = _FILE_INPUTS[key] = FileInput(given, name_alias=name_alias)
        return step

    @staticmethod
    def stepify(
        output: Any,
        depends_on: Step | Sequence[Step] | None = None,
        ctx: Context | None = None,
        name_alias: str | None = None,
    ) -> Step:
        """A step that returns ``output`` whatever its inputs, e.g. to put a value in a pipeline."""
        return _Stepify(output, depends_on=depends_on, ctx=ctx, name_alias=name_alias)

    @staticmethod
    def join(dependencies: Sequence[Step], name_alias: str | None = None) -> Step:
        """A step (class ``Join``) whose output is the tuple of its dependencies' outputs."""
        return Join(depends_on=dependencies, name_alias=name_alias)

    @staticmethod
    def noop_step(dependencies: Sequence[Step], name_alias: str | None = None) -> Step:
        """Deprecated name of :meth:`join`."""
        warnings.warn("Step.noop_step() is deprecated; use Step.join().", DeprecationWarning, stacklevel=2)
        return NoOpNode(depends_on=dependencies, name_alias=name_alias)


class _Data(Step):
    """The step made by :meth:`Step.from_data`; named ``Step`` when ``name_alias=None``, as in 1.1."""

    _default_name = "Step"

    def __init__(self, data: Any, name_alias: str = "Data") -> None:
        super().__init__(name_alias=name_alias)
        self.data = data

    def run(self) -> AttrDict:
        return AttrDict(output=self.data)


class _Stepify(Step):
    """The step made by :meth:`Step.stepify`; named ``Step`` unless aliased, as in 1.1."""

    _default_name = "Step"

    def __init__(
        self,
        output: Any,
        depends_on: Step | Sequence[Step] | None = None,
        ctx: Context | None = None,
        name_alias: str | None = None,
    ) -> None:
        super().__init__(depends_on=depends_on, ctx=ctx, name_alias=name_alias)
        self.output = output

    def run(self, *inputs: Any) -> Any:
        return self.output


class FileInput(Step):
    """The input step made by :meth:`Step.from_file`; its files are read by :mod:`job_orchestra.file_input`."""

    def __init__(self, path: str, name_alias: str | None = None) -> None:
        super().__init__(name_alias=name_alias or f"file:{path}")  # the graph names steps by alias or class
        self.path = path  # a parameter: the path as given
        setattr(self, file_input.FILES_KEY, file_input.FileSpec(path))

    def run(self) -> str | list[str]:
        return file_input.output_of(file_input.FileSpec(self.path), self._name)


_FILE_INPUTS: weakref.WeakValueDictionary[tuple[str, str | None], FileInput] = weakref.WeakValueDictionary()


class Join(Step):
    """Collects its dependencies' outputs into one tuple (made by :meth:`Step.join`)."""

    def run(self, *inputs: Any) -> tuple:
        return inputs


class NoOpNode(Join):
    """What the deprecated :meth:`Step.noop_step` makes: a :class:`Join` under 1.1's class name."""


def _interactive() -> bool:
    """True when the returned plan is displayed anyway: called from a cell of IPython/Jupyter or at a Python
    prompt. A script run by ``ipython script.py`` or ``%run`` prints it, as 1.1 did."""
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        get = getattr(ipython, "get_ipython", None)
        if get is not None and get() is not None:
            return _called_from_cell(sys._getframe(2))
    return hasattr(sys, "ps1")


def _called_from_cell(frame: Any) -> bool:
    """IPython keeps each cell's source in ``linecache`` without a modification time (it is no file)."""
    entry = linecache.cache.get(frame.f_code.co_filename) if frame is not None else None
    return entry is not None and len(entry) == 4 and entry[1] is None
