"""The Jupyter layer as a job-orchestra renderer, found through the ``job_orchestra.display`` entry point.

The core never imports this package: :mod:`job_orchestra.rendering` loads this module the first time a
plan, graph or step is displayed, and calls the three functions below.
"""

from __future__ import annotations

from typing import Any

from job_orchestra import ExecutionPlan, Step

from . import display, live

__all__ = ["ipython_display", "mimebundle", "start"]


def mimebundle(obj: Any) -> dict[str, str] | None:
    """HTML plans and SVG-with-plan steps; None for anything else (graphs draw themselves)."""
    if isinstance(obj, ExecutionPlan):
        return display.plan_bundle(obj)
    if isinstance(obj, Step):
        return display.step_bundle(obj)
    return None


def ipython_display(obj: Any) -> bool:
    """Show a plan, graph or step live in a kernel (frozen elsewhere); True when ``obj`` is one of those."""
    try:
        display.resolve(obj)
    except TypeError:
        return False
    display.ipython_display(obj)
    return True


def start() -> None:
    """Called when a pipeline first runs in a kernel: live views and progress bars (idempotent)."""
    live.activate()
