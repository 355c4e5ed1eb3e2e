"""A pipeline for the persistent-cache notebook (05): five steps, one of which can kill its own process.

    python long_run.py CACHE_DIR          # runs the pipeline on Context.open(CACHE_DIR)
    CRASH_IN=Bake python long_run.py DIR  # ... and dies with os._exit(137) inside the step Bake

The notebook's last part crashes its own kernel: ``new_cache()`` makes a fresh cache directory and notes
where, so that ``last_cache()`` finds it again in the kernel Jupyter starts in the dead one's place.

``os._exit`` ends the process at once, as the out-of-memory killer or a crashed kernel would: no cleanup,
no ``finally``, nothing flushed but what was already written.
"""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
import time
from pathlib import Path

from job_orchestra import Context, Step


class Steps(Step):
    """Base of the steps: says when it runs, and dies when CRASH_IN names it."""

    def run(self, *inputs):
        print(f"running {self}", flush=True)
        if os.environ.get("CRASH_IN") == str(self):
            time.sleep(2.5)  # (a real crash would not wait: this lets the line above and the progress bar show)
            os._exit(137)
        return self.compute(*inputs)


class Fetch(Steps):
    def compute(self):
        return list(range(self.rows))


class Clean(Steps):
    def compute(self, rows):
        return [r for r in rows if r % 7]


class Features(Steps):
    def compute(self, rows):
        return {"n": len(rows), "total": sum(rows)}


class Bake(Steps):
    def compute(self, features):
        return features["total"] / features["n"]


class Report(Steps):
    def compute(self, mean):
        return f"mean of the cleaned rows: {mean:.2f}"


def build(ctx: Context, rows: int = 1000) -> Step:
    """The pipeline on ``ctx``; ``rows`` is the parameter of its first step."""
    fetch = Fetch(ctx=ctx)
    fetch.rows = rows
    return Report(
        depends_on=Bake(depends_on=Features(depends_on=Clean(depends_on=fetch, ctx=ctx), ctx=ctx), ctx=ctx), ctx=ctx
    )


# Where the notebook's kernel-crash part keeps its cache directory's name: in the temporary directory, per user.
_POINTER = Path(tempfile.gettempdir()) / f"job-orchestra-example-05-{getpass.getuser()}.txt"


def new_cache() -> str:
    """A fresh, empty cache directory for one run of the notebook, noted for ``last_cache()``."""
    path = os.path.join(tempfile.mkdtemp(prefix="jo-example-05-"), "cache")
    _POINTER.write_text(path, encoding="utf-8")
    return path


def last_cache() -> str:
    """The directory ``new_cache()`` made last, found again after a kernel restart."""
    try:
        return _POINTER.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            "No cache was made by new_cache() yet: run the cell that crashes the kernel (section 5) first."
        ) from None


if __name__ == "__main__":
    print(build(Context.open(sys.argv[1])).materialize())
