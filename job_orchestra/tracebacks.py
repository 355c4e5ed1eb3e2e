"""User-facing tracebacks: the step's own code first, job-orchestra's frames left out.

The scheduler's frames set ``__tracebackhide__ = True`` (IPython's and pytest's convention), so IPython
hides them. A step run on a thread or process comes back through the executor's frames as well;
:func:`user_traceback` drops those, and :func:`print_user_traceback` does the same for the command line.
An error raised by job-orchestra itself keeps its whole traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from typing import IO

__all__ = ["is_library_frame", "print_user_traceback", "user_traceback"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_FUTURES = os.path.join("concurrent", "futures") + os.sep


def is_library_frame(frame: types.FrameType) -> bool:
    """True for job-orchestra's own frames, executor plumbing, and frames marked ``__tracebackhide__``."""
    if frame.f_locals.get("__tracebackhide__"):
        return True
    filename = frame.f_code.co_filename
    return filename.startswith(_PACKAGE) or _FUTURES in filename


def user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without the library's frames; ``tb`` itself when the error was raised in the library (its
    innermost frame is ours: a misuse or a bug to see whole, not a step's failure)."""
    kept = []
    entry = tb
    last = None
    while entry is not None:
        if not is_library_frame(entry.tb_frame):
            kept.append(entry)
        last = entry
        entry = entry.tb_next
    if not kept or kept[-1] is not last:
        return tb
    new = None
    for entry in reversed(kept):
        new = types.TracebackType(new, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return new


def print_user_traceback(exc: BaseException, file: IO[str] | None = None) -> None:
    """Print ``exc`` as ``traceback.print_exception`` would, without the library's frames."""
    lines = traceback.format_exception(type(exc), exc, user_traceback(exc.__traceback__))
    (file or sys.stderr).write("".join(lines))
