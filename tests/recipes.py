"""The 1.1 README's pasta recipe, as importable step classes (so dill pickles them by reference)."""

from __future__ import annotations

import os
from pathlib import Path

from job_orchestra import Context, Step


def jo11_python() -> Path:
    """The Python of the job-orchestra 1.1.4 venv the test command sets up (scripts/setup.sh), or $JO11_PYTHON."""
    if os.environ.get("JO11_PYTHON"):
        return Path(os.environ["JO11_PYTHON"])
    cache = (
        os.environ.get("JO_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "job-orchestra"
    )
    return Path(cache) / "jo11" / "bin" / "python"


CALLS: list[str] = []


class Leaf(Step):
    """A step without dependencies returning 1 (used across the tests)."""

    def run(self):
        return 1


class Node(Step):
    """A step returning the sum of its inputs plus one (used across the tests)."""

    def run(self, *xs):
        return sum(xs) + 1


class _Recorded(Step):
    def run(self, *inputs):
        CALLS.append(str(self))
        return self.cook(*inputs)


class BoilWater(_Recorded):
    def cook(self):
        return "boiling water"


class BrownOnions(_Recorded):
    def cook(self):
        return "browned onions"


class CutTomatoes(_Recorded):
    def cook(self, onions):
        return f"tomatoes cut beside {onions}"


class PourTomatoes(_Recorded):
    def cook(self, tomatoes, onions):
        return {"sauce": f"sauce of ({tomatoes}) and ({onions})"}


class Salt(_Recorded):
    def cook(self, what):
        return f"salted {what}" if isinstance(what, str) else f"salted {what['sauce']}"


class PourPasta(_Recorded):
    def cook(self, water):
        return f"pasta in {water}"


class PickBasil(_Recorded):
    def cook(self):
        return "basil"


class PanFry(_Recorded):
    def cook(self, *ingredients):
        return " + ".join(i if isinstance(i, str) else i["sauce"] for i in ingredients)


def pasta(ctx: Context | None = None) -> dict[str, Step]:
    """The recipe of the 1.1 README, with an optional Context on PourTomatoes."""
    water = BoilWater()
    brown_onions = BrownOnions()
    cut_tomatoes = CutTomatoes(depends_on=brown_onions)
    pour_tomatoes = PourTomatoes(depends_on=[cut_tomatoes, brown_onions], ctx=ctx)
    salt = Salt(depends_on=water)
    pasta_ = PourPasta(depends_on=salt)
    basil = PickBasil()
    merge = PanFry(depends_on=[pasta_, pour_tomatoes, basil])
    return {str(s): s for s in (water, brown_onions, cut_tomatoes, pour_tomatoes, salt, pasta_, basil, merge)}


def salty_pasta(ctx: Context | None = None) -> dict[str, Step]:
    """The README's variant that uses Salt twice, told apart with name_alias."""
    water = BoilWater()
    brown_onions = BrownOnions()
    cut_tomatoes = CutTomatoes(depends_on=brown_onions)
    pour_tomatoes = PourTomatoes(depends_on=[cut_tomatoes, brown_onions], ctx=ctx)
    salt_water = Salt(depends_on=water, name_alias="SaltWater")
    salt_tomatoes = Salt(depends_on=pour_tomatoes, name_alias="SaltTomatoes")
    pasta_ = PourPasta(depends_on=salt_water)
    basil = PickBasil()
    merge = PanFry(depends_on=[pasta_, salt_tomatoes, basil])
    steps = (water, brown_onions, cut_tomatoes, pour_tomatoes, salt_water, salt_tomatoes, pasta_, basil, merge)
    return {str(s): s for s in steps}
