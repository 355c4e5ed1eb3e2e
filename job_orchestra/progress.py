"""A terminal progress bar for ``materialize()``: steps done / total, the steps running now, time elapsed.

Built on tqdm (imported when a run starts). Use it like any :class:`~job_orchestra.Callback`:

>>> from job_orchestra.progress import ProgressBar
>>> bar = ProgressBar(disable=True)
>>> bar.running
[]

``head.materialize("threads", callbacks=ProgressBar())`` or ``with ProgressBar(): head.materialize()``.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

from .events import Callback

if TYPE_CHECKING:
    from .plan import ExecutionPlan

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """Shows one tqdm bar per run on ``file`` (stderr by default); failures are printed above the bar."""

    def __init__(self, file: IO[str] | None = None, *, disable: bool | None = False, **tqdm_options: Any) -> None:
        super().__init__()
        self.file = file
        self.disable = disable
        self.tqdm_options = tqdm_options
        self.running: list[str] = []
        self.bar: Any = None

    def start(self, plan: ExecutionPlan) -> None:
        from tqdm import tqdm  # imported when a run starts, not at `import job_orchestra`

        self.running = []
        self.bar = tqdm(
            total=len(plan.to_run),
            desc=f"materialize {plan.graph.head}",
            unit="step",
            file=self.file if self.file is not None else sys.stderr,
            disable=self.disable,
            dynamic_ncols=True,
            **self.tqdm_options,
        )

    def _show_running(self) -> None:
        if self.bar is None:
            return
        shown = ", ".join(self.running[:3]) + (f" +{len(self.running) - 3}" if len(self.running) > 3 else "")
        self.bar.set_postfix_str(f"running: {shown}" if shown else "", refresh=True)

    def step_start(self, name: str) -> None:
        self.running.append(name)
        self._show_running()

    def step_finish(self, name: str, seconds: float) -> None:
        if name in self.running:
            self.running.remove(name)
        if self.bar is not None:
            self.bar.update(1)
        self._show_running()

    def step_fail(self, name: str, error: BaseException) -> None:
        if name in self.running:
            self.running.remove(name)
        if self.bar is not None and not self.bar.disable:
            what = "interrupted" if isinstance(error, KeyboardInterrupt) else f"failed: {type(error).__name__}"
            self.bar.write(f"step {name!r} {what}: {error}".rstrip(": "), file=self.file or sys.stderr)
        self._show_running()

    def finish(self, plan: ExecutionPlan, error: BaseException | None) -> None:
        if self.bar is not None:
            self.running = []
            self._show_running()
            self.bar.close()
            self.bar = None
