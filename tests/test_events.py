"""The callback API that progress bars and live displays use."""

from __future__ import annotations

import pytest

from job_orchestra import Callback, Context, Step
from tests.recipes import Leaf, Node


class Fail(Step):
    def run(self, *xs):
        raise RuntimeError("nope")


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def start(self, plan):
        self.events.append(("start", len(plan)))

    def step_start(self, name):
        self.events.append(("step_start", name))

    def step_finish(self, name, seconds):
        assert seconds >= 0
        self.events.append(("step_finish", name))

    def step_cached(self, name):
        self.events.append(("step_cached", name))

    def step_fail(self, name, error):
        self.events.append(("step_fail", name, type(error).__name__))

    def finish(self, plan, error):
        self.events.append(("finish", None if error is None else type(error).__name__))


def test_events_follow_the_run_in_order():
    ctx = Context(Cached=3)
    head = Node(
        depends_on=[Node(depends_on=Leaf(), ctx=ctx, name_alias="Cached"), Leaf(name_alias="L2")], name_alias="H"
    )
    rec = Recorder()
    assert head.materialize(callbacks=rec) == 5
    assert rec.events == [
        ("start", 4),
        ("step_start", "L2"),
        ("step_finish", "L2"),
        ("step_cached", "Cached"),
        ("step_start", "H"),
        ("step_finish", "H"),
        ("finish", None),
    ]


def test_failure_is_reported_then_finish_with_the_error():
    rec = Recorder()
    with pytest.raises(RuntimeError):
        Fail(depends_on=Leaf()).materialize(callbacks=[rec])
    assert rec.events[-2:] == [("step_fail", "Fail", "RuntimeError"), ("finish", "RuntimeError")]


def test_context_manager_registration_and_function_hooks():
    finished = []
    with Callback(step_finish=lambda name, seconds: finished.append(name)):
        Node(depends_on=Leaf(), name_alias="H").materialize()
    Node(depends_on=Leaf(), name_alias="After").materialize()
    assert finished == ["Leaf", "H"]


def test_cached_head_reports_cached():
    rec = Recorder()
    Leaf(ctx=Context(Leaf=1)).materialize(callbacks=rec)
    assert ("step_cached", "Leaf") in rec.events


def test_a_broken_callback_warns_instead_of_breaking_the_run():
    def broken(name):
        raise ZeroDivisionError

    with pytest.warns(RuntimeWarning, match="step_start"):
        assert Node(depends_on=Leaf()).materialize(callbacks=Callback(step_start=broken)) == 2


def test_callbacks_must_be_callback_objects():
    with pytest.raises(TypeError, match="Callback"):
        Leaf().materialize(callbacks=[print])
