"""The pasta recipe as a pipeline file for the command line: ``lunch`` is its head, at module level.

    python -m job_orchestra plan examples/kitchen.py:lunch
    python -m job_orchestra run  examples/kitchen.py:lunch --snapshot kitchen-run/
    python -m job_orchestra run  examples/kitchen.py:lunch --load kitchen-run/

Every step keeps its result in ``ctx``, so ``--snapshot DIR`` stores them all (also after a failure) and
``--load DIR`` resumes: only the steps without a stored result run. ``BURN_THE_PAN=1`` makes the last step fail,
to try that: run with it and ``--snapshot``, then again without it and ``--load``.
"""

from __future__ import annotations

import os

from job_orchestra import Context, Step

ctx = Context()


class BoilWater(Step):
    def run(self):
        return "boiling water"


class BrownOnions(Step):
    def run(self):
        return "browned onions"


class CutTomatoes(Step):
    def run(self, onions):
        return "cut tomatoes"


class PourTomatoes(Step):
    def run(self, tomatoes, onions):
        return {"sauce": f"{tomatoes} on {onions}"}


class Salt(Step):
    def run(self, water):
        return f"salted {water}"


class PourPasta(Step):
    def run(self, water):
        return f"spaghetti in {water}"


class PickBasil(Step):
    def run(self):
        return "basil"


class PanFry(Step):
    def run(self, pasta, tomatoes, basil):
        if os.environ.get("BURN_THE_PAN") == "1":
            raise RuntimeError("the pan is too hot (BURN_THE_PAN=1): unset it and resume with --load")
        return f"{pasta}, tossed with {tomatoes.sauce} and {basil}"


water = BoilWater(ctx=ctx)
brown_onions = BrownOnions(ctx=ctx)
cut_tomatoes = CutTomatoes(depends_on=brown_onions, ctx=ctx)
pour_tomatoes = PourTomatoes(depends_on=[cut_tomatoes, brown_onions], ctx=ctx)
salt = Salt(depends_on=water, ctx=ctx)
pasta = PourPasta(depends_on=salt, ctx=ctx)
basil = PickBasil(ctx=ctx)
lunch = PanFry(depends_on=[pasta, pour_tomatoes, basil], ctx=ctx)
