"""The pasta al pomodoro of job-orchestra 1.1's README, as a script.

    python examples/pasta_recipe.py

Declares the recipe, shows its plan, cooks it, keeps the sauce in a Context, shows the plan again, and
snapshots the Context to a temporary directory.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from job_orchestra import Callback, Context, Step


class BoilWater(Step):
    def run(self):
        return "boiling water"


class BrownOnions(Step):
    def run(self):
        time.sleep(0.2)  # the slow part of the recipe
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
        return f"{pasta}, tossed with {tomatoes.sauce} and {basil}"


def main() -> None:
    ctx = Context()
    water = BoilWater()
    brown_onions = BrownOnions()
    cut_tomatoes = CutTomatoes(depends_on=brown_onions)
    pour_tomatoes = PourTomatoes(depends_on=[cut_tomatoes, brown_onions], ctx=ctx)
    salt = Salt(depends_on=water)
    pasta = PourPasta(depends_on=salt)
    basil = PickBasil()
    merge = PanFry(depends_on=[pasta, pour_tomatoes, basil])

    print("The plan before cooking:")
    merge.execution_plan()

    log = Callback(
        step_finish=lambda name, seconds: print(f"  done  {name:<13} {seconds * 1000:7.1f} ms"),
        step_cached=lambda name: print(f"  ready {name:<13} (from the Context)"),
    )
    print("Cooking:")
    lunch = merge.materialize(callbacks=log)
    print(f"Lunch: {lunch}\n")

    print("The plan now that the sauce is kept in the Context:")
    merge.execution_plan()
    print("Cooking again (the sauce is not made twice):")
    merge.materialize(callbacks=log)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kitchen"
        ctx.store(path, pipeline=merge)
        back = Context.load(path)
        print(f"\nSnapshot written to {path.name}/ and read back: {sorted(k for k in back if k != 'context_meta')}")
        print(f"Resumed from the snapshot: {back.pipeline.materialize() == lunch}")


if __name__ == "__main__":
    main()
