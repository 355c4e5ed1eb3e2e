"""Context: attribute dict, metadata, invalidation, pickling."""

from __future__ import annotations

import pickle

import dill
import pytest

from job_orchestra import Context


def test_context_is_a_dict_with_attribute_access_and_metadata():
    ctx = Context(a=1)
    assert isinstance(ctx, dict)
    assert ctx.a == 1 == ctx["a"]
    ctx.b = 2
    assert ctx["b"] == 2
    meta = ctx["context_meta"]
    assert {"created_on", "python"} <= set(meta)
    with pytest.raises(AttributeError, match="missing"):
        _ = ctx.missing


def test_invalidate_drops_results_by_name_or_step():
    from job_orchestra import Step

    class A(Step):
        def run(self):
            return 1

    ctx = Context(A=1, B=2)
    assert ctx.invalidate(A(), "B", "nope") == ["A", "B"]
    assert "A" not in ctx and "B" not in ctx


@pytest.mark.parametrize("dumps,loads", [(pickle.dumps, pickle.loads), (dill.dumps, dill.loads)])
def test_context_pickles_with_its_values(dumps, loads):
    ctx = Context(a=[1, 2])
    ctx._put_result("s", 3, "fp")
    back = loads(dumps(ctx))
    assert isinstance(back, Context) and back == ctx and back.fingerprint("s") == "fp"


def test_dict_conversion_and_equality():
    ctx = Context(a=1)
    assert dict(ctx)["a"] == 1
    assert ctx == dict(ctx)
    copy = ctx.copy()
    copy["b"] = 1
    assert "b" not in ctx
