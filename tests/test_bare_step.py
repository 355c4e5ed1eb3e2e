"""A bare ``Step(name_alias=..., ctx=ctx)`` stands for a result its Context holds (a 1.1 idiom).

1.1 users load a snapshot and wire plain Steps named after stored results into a new pipeline to continue
from them. Such a step has no ``run()``: it cannot recompute its result, so it uses the stored one whatever
its fingerprint says, and when the result is missing the error names the key and the Context's keys.
"""

from __future__ import annotations

import random

import pytest

from job_orchestra import Context, InvalidStepError, Step
from job_orchestra.errors import MissingResultError


class Add(Step):
    def __init__(self, k, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.k = k

    def run(self, *inputs):
        return self.k + sum(inputs)


def random_pipeline(rng: random.Random, ctx: Context | None) -> list[Step]:
    steps: list[Step] = []
    for i in range(rng.randint(2, 9)):
        deps = rng.sample(steps, rng.randint(0, min(i, 3))) if i else []
        steps.append(Add(rng.randint(0, 9), deps, ctx if rng.random() < 0.7 else None, f"N{i}"))
    steps.append(Step.join(steps, name_alias="All"))
    return steps


def rebuild(rng: random.Random, original: list[Step], loaded: Context) -> Step:
    """The same pipeline built afresh, where some stored steps are replaced by bare Steps of the same name."""
    new: dict[str, Step] = {}
    for step in original[:-1]:
        name = str(step)
        if name in loaded and rng.random() < 0.6:
            new[name] = Step(name_alias=name, ctx=loaded)
        else:
            new[name] = Add(step.k, [new[str(d)] for d in step.dependencies], None, name)
    return Step.join(list(new.values()), name_alias="All")


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("executor", [None, "threads"])
def test_continuing_from_bare_steps_after_load_gives_the_same_results(tmp_path, seed, executor):
    rng = random.Random(seed)
    ctx = Context()
    original = random_pipeline(rng, ctx)
    expected = original[-1].materialize()
    ctx.store(tmp_path / "snap")
    loaded = Context.load(tmp_path / "snap")
    head = rebuild(rng, original, loaded)
    plan = head.execution_plan(show=False)
    bare = [row for row in plan if row.step_class == "Step"]
    assert all(row.availability.marker == "[*]" and not row.runs for row in bare)
    assert head.materialize(executor=executor) == expected


def test_bare_step_ignores_the_fingerprint_of_the_step_that_made_it(tmp_path):
    class Sort(Step):
        def run(self):
            return sorted([3, 1, 2])

    ctx = Context()
    Sort(name_alias="Sorted", ctx=ctx).materialize()
    assert ctx.fingerprint("Sorted") is not None  # recorded for Sort's code, not for a bare Step
    ctx.store(tmp_path / "s")
    bare = Step(name_alias="Sorted", ctx=Context.load(tmp_path / "s"))
    assert str(bare.execution_plan(show=False)).splitlines()[1] == " [*] (H) Sorted"
    assert bare.materialize() == [1, 2, 3]

    class Total(Step):
        def run(self, xs):
            return sum(xs)

    assert Total(depends_on=bare).materialize() == 6


def test_upstream_changes_do_not_make_a_bare_step_stale():
    ctx = Context()

    class Source(Step):
        def __init__(self, value, **kwargs):
            super().__init__(**kwargs)
            self.value = value

        def run(self):
            return self.value

    class Double(Step):
        def run(self, x):
            return 2 * x

    Double(depends_on=Source(1, ctx=ctx), ctx=ctx).materialize()
    # A bare step named Double, behind a changed Source: it cannot recompute, so it uses what is there.
    bare = Step(depends_on=Source(5, ctx=ctx), name_alias="Double", ctx=ctx)
    assert bare.materialize() == 2


@pytest.mark.parametrize("seed", range(10))
def test_missing_result_names_the_key_and_the_contexts_keys(seed):
    rng = random.Random(seed)
    keys = [f"K{i}" for i in rng.sample(range(100), rng.randint(0, 5))]
    ctx = Context({k: i for i, k in enumerate(keys)})
    with pytest.raises(MissingResultError) as info:
        Add(0, [Step(name_alias="Sorted", ctx=ctx)]).materialize()
    message = str(info.value)
    assert "'Sorted'" in message and "its Context has no key 'Sorted'" in message
    assert all(repr(k) in message for k in keys)
    assert "context_meta" not in message or not keys
    assert info.value.key == "Sorted"
    assert isinstance(info.value, InvalidStepError) and isinstance(info.value, KeyError)


def test_bare_step_without_a_context_says_so():
    with pytest.raises(MissingResultError, match="it has no Context: pass ctx="):
        Step(name_alias="Sorted").materialize()


def test_a_subclass_without_run_and_without_context_keeps_the_old_message():
    class Forgot(Step):
        pass

    with pytest.raises(InvalidStepError, match=r"Step 'Forgot' \(Forgot\) does not define run\(self, \*inputs\)"):
        Forgot().materialize()
