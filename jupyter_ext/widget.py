"""``PipelineWidget``: the graph and the plan of a pipeline, with buttons to run, invalidate and snapshot.

Everything on it is live: it redraws while steps run (from the tracker's events) and after each cell.
"""

from __future__ import annotations

import html
import traceback
from typing import Any

import ipywidgets as widgets

from job_orchestra import ExecutionPlan, PipelineError, Step

from . import actions, follow, live, runs
from .graph_svg import inline_svg, render_svg, why_no_svg
from .plan_html import progress_html, render_plan
from .static import static_block, with_fallback
from .storage_view import persisted_contexts
from .summary import format_bytes
from .theme import FONT

__all__ = ["PipelineWidget"]


class PipelineWidget(widgets.VBox):
    """An ipywidgets panel for the pipeline ending at ``head``.

    - **Materialize** runs the pipeline (``head.materialize()``); the graph and plan update as steps run,
      and the result (or the error, with the failing step highlighted in the graph) appears below.
    - **Invalidate selected** drops the cached results of the chosen steps and of every step after them,
      so they run again on the next materialize.
    - **Store snapshot** writes ``ctx.store(path, pipeline=head)`` for the pipeline's Context.

    >>> PipelineWidget(head)  # doctest: +SKIP
    """

    def __init__(self, head: Step) -> None:
        if not isinstance(head, Step):
            raise TypeError(f"PipelineWidget(head) takes the head Step of a pipeline, got {type(head).__name__}")
        self.head = head
        self.result: Any = None
        self.error: BaseException | None = None
        self._key: tuple | None = None
        self._handles: list[Any] = []  # where this panel was displayed (to update its static picture)
        self._names = follow.names_of(head)  # the variables holding the head: followed when rebuilt
        self._sent = ""
        self.title = widgets.HTML()
        self.graph_view = widgets.HTML()
        self.plan_view = widgets.HTML()
        self.materialize_button = widgets.Button(
            description="Materialize", icon="play", button_style="primary", tooltip="Run what the plan schedules"
        )
        self.steps_select = widgets.SelectMultiple(options=[], rows=4, layout=widgets.Layout(width="220px"))
        self.invalidate_button = widgets.Button(
            description="Invalidate selected",
            icon="eraser",
            tooltip="Drop these results and those after them",
            layout=widgets.Layout(width="220px"),
        )
        self.path_text = widgets.Text(
            placeholder="snapshot directory, e.g. snapshots/run-1", layout=widgets.Layout(width="300px")
        )
        self.store_button = widgets.Button(
            description="Store snapshot", icon="save", layout=widgets.Layout(width="180px")
        )
        self.prune_keep = widgets.BoundedIntText(
            value=1, min=0, max=10_000, description="keep", layout=widgets.Layout(width="140px")
        )
        self.prune_button = widgets.Button(
            description="Prune cache",
            icon="trash",
            tooltip="Delete stored versions of each step but the newest 'keep' ones (ctx.prune(keep=...))",
            layout=widgets.Layout(width="140px"),
        )
        self.status = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(max_height="320px", overflow="auto"))
        self.materialize_button.on_click(lambda _: self.materialize())
        self.invalidate_button.on_click(lambda _: self.invalidate(self.steps_select.value))
        self.store_button.on_click(lambda _: self.store(self.path_text.value))
        self.prune_button.on_click(lambda _: self.prune(keep=self.prune_keep.value))
        spaced = widgets.Layout(margin="0 16px 4px 0")
        # Shown only when a Context of the pipeline is bound to a place (Context.open): see refresh().
        self.cache_box = widgets.VBox(
            [self.prune_keep, self.prune_button], layout=widgets.Layout(margin="0 16px 4px 0", display="none")
        )
        controls = widgets.HBox(
            [
                widgets.VBox([self.materialize_button], layout=spaced),
                widgets.VBox([self.steps_select, self.invalidate_button], layout=spaced),
                widgets.VBox([self.path_text, self.store_button], layout=spaced),
                self.cache_box,
            ],
            layout=widgets.Layout(align_items="flex-start", flex_flow="row wrap"),
        )
        super().__init__([self.title, self.graph_view, self.plan_view, controls, self.status, self.output])
        self.add_class("jo-pipeline-widget")
        self.refresh(force=True)
        live.attach_observer()
        live.activate()
        live.register_widget(self)

    # -- drawing --------------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Redraw the graph and plan if the pipeline's state changed (always when ``force``)."""
        try:
            plan = ExecutionPlan.of(self.head)
        except PipelineError as exc:
            self._say(f"The pipeline cannot be planned: {exc}", error=True)
            return
        statuses = runs.statuses(plan)
        run = runs.TRACKER.current()
        if run is not None and run.plan.head is self.head and run.total:
            self.status.value = progress_html(run)
        key = live.state_key("widget", plan, statuses)
        if key == self._key and not force:
            return
        self._key = key
        svg = render_svg(plan, statuses)
        self.graph_view.value = (
            inline_svg(svg) if svg is not None else f'<p style="opacity:.75">{html.escape(why_no_svg(plan))}</p>'
        )
        self.plan_view.value = render_plan(plan, statuses)
        self.cache_box.layout.display = "flex" if persisted_contexts(plan) else "none"
        names = tuple(plan.graph.steps)
        if self.steps_select.options != names:
            keep = tuple(n for n in self.steps_select.value if n in names)
            self.steps_select.options = names
            self.steps_select.value = keep
            self.steps_select.rows = max(2, min(len(names), 8))
        self.title.value = (
            f'<div style="{FONT}"><b>Pipeline {html.escape(plan.graph.head)}</b> \u00b7 {len(plan)} steps</div>'
        )
        if force and (run is None or run.finished):  # a final state: what exports show in its place
            self._sync_fallback()

    def follow(self, namespace: dict[str, Any]) -> None:
        """After a cell: when the variable that held the head now holds a new step of the same name (the
        pipeline was rebuilt or loaded), show and drive that pipeline instead."""
        new = follow.successor(self._names, self.head.name, self.head, namespace)
        if new is not None:
            self.head = new
            self.output.outputs = ()
            self.result, self.error = None, None
            self.refresh(force=True)
            self._say(f"Now showing the new pipeline of {new.name} (it replaced the one shown before).")
            self._sync_fallback()

    # -- the static picture (nbconvert, GitHub, the docs) ------------------------------------------
    def fallback_html(self) -> str:
        """The panel's state as static HTML: title, graph, plan and status line, without the buttons."""
        parts = (self.title.value, self.graph_view.value, self.plan_view.value, self.status.value)
        return static_block("".join(parts), "widget")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget, plus its static picture for renderers without widgets (nbconvert, GitHub)."""
        self._sent = self.fallback_html()
        return with_fallback(super()._repr_mimebundle_(**kwargs), self._sent)

    def _ipython_display_(self) -> None:
        """Display with a display id, so the static picture follows the panel at the end of each cell."""
        from IPython.display import display  # only called inside IPython

        self._handles.append(display(self._repr_mimebundle_(), raw=True, display_id=True))

    def _sync_fallback(self) -> None:
        if not self._handles:
            return
        fallback = self.fallback_html()
        if fallback == self._sent:
            return
        self._sent = fallback
        bundle = with_fallback(super()._repr_mimebundle_(), fallback)
        for handle in self._handles:
            handle.update(bundle, raw=True)

    def _say(self, text: str, error: bool = False) -> None:
        icon = "\u26a0 " if error else ""
        self.status.value = f'<span class="jo-status" style="{FONT}">{icon}{html.escape(text)}</span>'

    # -- actions --------------------------------------------------------------------------------------
    def materialize(self) -> Any:
        """Run the pipeline; show the result (or the error) in the output area. Returns the result.

        Errors are shown, not raised (this is what the button calls); they are kept in ``self.error``.
        The panel itself shows the progress, so no separate progress bar is displayed.
        """
        self.output.outputs = ()
        self.result, self.error = None, None
        self._say(f"Running {self.head} \u2026")
        with live.no_progress_bar():
            try:
                self.result = self.head.materialize(callbacks=runs.TRACKER)
            except Exception as exc:
                self.error = exc
            except KeyboardInterrupt as exc:  # the kernel's stop button: say so, the finished steps are kept
                self.error = exc
        # Written into the Output widget's state directly (not through display messages), so a notebook
        # run headlessly keeps them in the widget and nothing leaks into the cell's own outputs.
        if self.error is None:
            self._show_result(self.result)
        elif isinstance(self.error, KeyboardInterrupt):
            pass
        else:
            self.output.append_stderr("".join(traceback.format_exception(self.error)))
        self.refresh(force=True)
        if self.error is None:
            self._say(f"Materialized {self.head}.")
        elif isinstance(self.error, KeyboardInterrupt):
            left = len(ExecutionPlan.of(self.head).to_run)
            self._say(f"Interrupted: the finished steps kept their results; {left} left to run on Materialize.")
        else:
            failed = [n for n, s in runs.statuses(ExecutionPlan.of(self.head)).items() if s == "failed"]
            where = f" in step {', '.join(failed)}" if failed else ""
            self._say(f"Failed{where}: {type(self.error).__name__}: {self.error}", error=True)
        self._sync_fallback()
        return self.result

    def _show_result(self, result: Any) -> None:
        from IPython import get_ipython  # only called inside IPython

        if get_ipython() is None:  # formatting rich output would create an IPython shell: plain repr instead
            self.output.append_stdout(f"{result!r}\n")
        else:
            self.output.append_display_data(result)

    def invalidate(self, names: Any) -> list[str]:
        """Drop the results of ``names`` and of the steps after them; returns the names dropped."""
        names = list(names)
        if not names:
            self._say("Select the steps to invalidate first.", error=True)
            return []
        dropped = actions.invalidate(self.head, names)
        if str(self.head) in dropped:  # the result shown below is not the pipeline's result any more
            self.output.outputs = ()
            self.result = None
        self.refresh(force=True)
        live.refresh_all(force=True)  # other views of this pipeline, shown in earlier cells
        if dropped:
            self._say(f"Dropped the results of {', '.join(dropped)}: they run on the next materialize.")
        else:
            self._say(f"Nothing to drop: {', '.join(names)} and the steps after them hold no result.")
        self._sync_fallback()
        return dropped

    def store(self, path: str) -> bool:
        """Snapshot the pipeline's Context (with the pipeline) to ``path``; True when written."""
        try:
            ctx = actions.store_snapshot(self.head, path)
        except (OSError, ValueError, PipelineError) as exc:
            self._say(f"Snapshot not written: {exc}", error=True)
            return False
        results = sum(1 for key in ctx if key != "context_meta")  # the Context's own metadata is no result
        self._say(f"Stored a snapshot of {results} results (with the pipeline) at {path.strip()}.")
        return True

    def prune(self, *, keep: int | None = None, older_than: Any = None, max_bytes: int | None = None) -> list[Any]:
        """``ctx.prune(...)`` on every persisted Context of the pipeline; returns what was removed."""
        contexts = persisted_contexts(ExecutionPlan.of(self.head))
        if not contexts:
            self._say("Nothing to prune: no Context of this pipeline is stored on disk (see Context.open).", error=True)
            return []
        removed: list[Any] = []
        freed = 0
        try:
            for ctx in contexts:
                before = ctx.disk_usage().total_bytes
                removed += list(ctx.prune(older_than=older_than, keep=keep, max_bytes=max_bytes) or [])
                freed += before - ctx.disk_usage().total_bytes
        except (OSError, ValueError, PipelineError) as exc:
            self._say(f"Prune stopped: {exc}", error=True)
            return removed
        self.refresh(force=True)
        live.refresh_all(force=True)
        where = ", ".join(str(ctx.store_url) for ctx in contexts)
        self._say(f"Pruned {len(removed)} stored versions from {where} ({format_bytes(max(freed, 0))} freed).")
        self._sync_fallback()
        return removed

    def __repr__(self) -> str:  # text/plain of the saved output
        return f"<PipelineWidget of {self.head}>"
