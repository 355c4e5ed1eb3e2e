"""The garbage collector as users left it: job-orchestra pauses it only around its own bookkeeping.

Every step's ``run()`` sees the collector as the caller had it, and after ``materialize()`` (returning,
raising, interrupted, planning a parameter whose hashing fails) it is enabled or not, with the thresholds
and the frozen count, exactly as before.
"""

from __future__ import annotations

import gc

import pytest

from job_orchestra import Context, Step


def collector_state():
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()


class Seen(Step):
    """Records whether the collector was on while it ran, then does what ``how`` says."""

    def __init__(self, how: str, log: list, **kwargs):
        super().__init__(**kwargs)
        self.how = how
        self.log = log

    def run(self, *inputs):
        self.log.append(gc.isenabled())
        if self.how == "raise":
            raise ValueError("boom")
        if self.how == "interrupt":
            raise KeyboardInterrupt
        return len(inputs)


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no pickling")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("how", ["return", "raise", "interrupt", "unhashable"])
@pytest.mark.parametrize("with_ctx", [True, False])
def test_the_collector_is_as_the_caller_left_it(enabled, how, with_ctx):
    before_threshold = gc.get_threshold()
    gc.set_threshold(500, 7, 9)
    if not enabled:
        gc.disable()
    try:
        state = collector_state()
        log: list = []
        ctx = Context() if with_ctx else None
        steps = [Seen("return", log, ctx=ctx, name_alias="s0")]
        for i in range(1, 30):
            steps.append(Seen("return", log, depends_on=steps[-1], ctx=ctx, name_alias=f"s{i}"))
        head = Seen("return" if how == "unhashable" else how, log, depends_on=steps[-1], ctx=ctx, name_alias="head")
        if how == "unhashable":
            head.odd = Unpicklable()  # hashed during the plan; the plan says it cannot tell, and runs on
        expected = {"raise": ValueError, "interrupt": KeyboardInterrupt}.get(how)
        if expected is None:
            head.materialize()
        else:
            with pytest.raises(expected):
                head.materialize()
        assert collector_state() == state
        assert log and set(log) == {enabled}, log  # every run() saw the collector as the caller had it
        head.execution_plan(show=False)
        if expected is None:
            head.materialize(stale="use")
        assert collector_state() == state
    finally:
        gc.enable()
        gc.set_threshold(*before_threshold)


def test_a_plan_that_raises_leaves_the_collector_on():
    class Bad(Step):
        def run(self):
            return 1

    a = Bad(name_alias="a")
    b = Bad(depends_on=a, name_alias="b")
    a.dependencies = [b]  # a cycle: the walk raises
    state = collector_state()
    with pytest.raises(Exception, match="cycle"):
        b.execution_plan(show=False)
    assert collector_state() == state and gc.isenabled()
