"""The fingerprint pass of a plan: which cached results are stale or cannot be told fresh, and why.

It works on the collected graph (duck-typed steps with ``.ctx`` and ``__dict__``) and the availability the
plan found; the plan turns its verdicts into ``[~]`` (stale, with a reason) and ``[?]`` (cannot tell) rows.
Others can add verdicts of their own through :func:`register_reason` without touching this pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .fingerprint import (
    NO_PARAMS,
    FingerprintPass,
    digest,
    given_fingerprint,
    make_fingerprint,
    mark_outputs,
    parameter_keys,
    refreshed_params,
    stale_reason,
    total_of,
)
from .graph import defines_run
from .step_parameters import KNOWN, combine_params

__all__ = ["Fingerprints", "fingerprint_pass", "register_reason"]

REUSED = "cached from an earlier version"
_EXTRA_REASONS: list[Callable[[str, Any, str | None], str | None]] = []


def register_reason(check: Callable[[str, Any, str | None], str | None]) -> None:
    """Add a check ``check(name, step, recorded_fingerprint) -> reason or None`` run for each cached result
    found fresh; a reason makes it stale with that reason (e.g. another module's "class redefined")."""
    _EXTRA_REASONS.append(check)


class Fingerprints:
    """What a plan knows about fingerprints: for each step ``"<total>:<code>:<parameters>"`` (the inputs part
    is added when the fingerprint is asked for), the total each step's dependents hash, the per-parameter
    digests of steps with parameters (to tell, after a run, which ones ``run()`` changed), and the record
    lines that explain each fingerprint."""

    __slots__ = ("changed", "effective", "heads", "params", "pass_", "reused")

    def __init__(self, heads: dict[str, str], effective: dict[str, str], fp_pass: FingerprintPass) -> None:
        self.heads = heads
        self.effective = effective
        self.params = fp_pass.params
        self.pass_ = fp_pass
        self.changed: set[str] = set()
        self.reused: dict[str, str] = {}  # name -> REUSED: taken from a persistent cache's earlier versions

    def fast(self, name: str, step: Any, deps: tuple[str, ...]) -> str | None:
        """The fingerprint of ``name`` right after it ran, when nothing moved since the plan (else None)."""
        if self.changed or len(deps) != 1 or name in self.params:
            return None
        attrs = step.__dict__
        if len(attrs) != attrs.get(KNOWN):
            return None
        head = self.heads.get(name)
        if head is None:
            return None
        code = self.pass_.code.get(type(step))
        if code is None:
            return None
        return f"{head}:{self.effective[deps[0]][:8]}{code[1]}"

    def fingerprint(self, name: str, graph: Any) -> str | None:
        """The fingerprint of ``name`` as things stand (called right after the step ran, to record it)."""
        head = self.heads.get(name)
        if head is None:
            return None
        step = graph.steps[name]
        deps = graph.deps[name]
        effective = self.effective
        planned = self.params.get(name)
        changed = self.changed
        mark_outputs(step.__dict__)  # attributes the run added are outputs
        if planned is None and not (changed and any(d in changed for d in deps)):
            _, code, params = head.split(":")
            return make_fingerprint(code, params, [effective[d] for d in deps])[1] + self.pass_.record(name, step)
        params = NO_PARAMS
        record = self.pass_.klass(type(step))[1]
        if planned is not None:
            now, params_line = refreshed_params(step, planned)
            self.params[name] = now

            params = combine_params(now)
            if params_line:
                record += "\n" + params_line
        old_total, code, _ = head.split(":")
        total, new = make_fingerprint(code, params, [effective[d] for d in deps])
        if total != old_total:
            self.heads[name] = f"{total}:{code}:{params}"
            effective[name] = total
            changed.add(name)
        return new + record


def fingerprint_pass(
    graph: Any, avail: dict[str, Any], available: Any, policy: str
) -> tuple[Fingerprints, dict[str, str], dict[str, str]]:
    """Fingerprint every step in execution order: ``(fingerprints, stale reasons, cannot-tell reasons)``.

    Dependents hash the fingerprint of the value they will actually receive: the recorded one for a result
    used from a Context, the hash of its content for a value put in by hand, the new one for a step that runs.
    """
    fp_pass = FingerprintPass()
    step_fingerprint = fp_pass.step
    steps, deps = graph.steps, graph.deps
    heads: dict[str, str] = {}  # name -> "<total>:<code>:<parameters>"
    effective: dict[str, str] = {}  # name -> total of the value its dependents receive
    stale: dict[str, str] = {}
    unsure: dict[str, str] = {}
    reused: dict[str, str] = {}  # results a persistent cache held under the fingerprint now wanted
    doubts = fp_pass.doubts
    rerun = policy == "rerun"
    codes: dict[type, str] = {}
    no_params = NO_PARAMS
    extra = _EXTRA_REASONS

    last_ctx = recorded_of = None
    for name, step in steps.items():
        step_deps = deps[name]
        attrs = step.__dict__
        code = codes.get(type(step))
        if attrs.get(KNOWN) == len(attrs):
            keys = attrs["_jo_parameters"]
        else:
            keys = parameter_keys(attrs)
        if code is None or keys:
            total, fingerprint = step_fingerprint(name, step, [effective[d] for d in step_deps])
            head = fingerprint.rpartition(":")[0]
            if not fp_pass.code[type(step)][2]:  # classes with doubts go the long way, to note them per step
                codes.setdefault(type(step), head.split(":")[1])
        else:  # the common case inlined (no parameters): this runs once per step per plan
            joined = effective[step_deps[0]] if len(step_deps) == 1 else "|".join([effective[d] for d in step_deps])
            total = digest(f"{code}|{no_params}|{joined}".encode())
            head = f"{total}:{code}:{no_params}"
        heads[name] = head
        if avail[name] is available:
            ctx = step.ctx
            if ctx is not last_ctx:
                last_ctx, recorded_of = ctx, ctx._fingerprints.get
            recorded = recorded_of(name)  # type: ignore[misc]
            if recorded is None:  # put in by hand: it stands for itself, dependents hash its content
                effective[name] = given_fingerprint(ctx._value_token(name))
                continue
            if recorded.startswith(total) and recorded[len(total)] == ":":  # the totals cover everything
                effective[name] = total
                why = next((r for r in (check(name, step, recorded) for check in extra) if r), None) if extra else None
                if why is None:
                    if name in doubts:
                        unsure[name] = "cannot tell: " + "; ".join(dict.fromkeys(doubts[name]))
                    continue
                stale[name] = why
            elif not rerun or not defines_run(step):  # a bare Step(name_alias=...) cannot recompute: use it
                effective[name] = total_of(recorded)
                continue
            elif getattr(ctx, "_cache", None) is not None and ctx._cache.reuse(
                name, total
            ):  # an earlier version, kept on disk
                effective[name] = total
                reused[name] = REUSED
                continue
            else:
                inputs = [effective[d] for d in step_deps]
                fingerprint = make_fingerprint(*head.split(":")[1:], inputs)[1] + fp_pass.record(name, step)
                kind, index, words = stale_reason(recorded, fingerprint, list(step_deps), inputs)
                if kind != "upstream":
                    stale[name] = words or kind
                else:
                    stale[name] = _upstream_reason(name, index, deps, avail, available, stale)
        elif rerun and getattr(step.ctx, "_cache", None) is not None and step.ctx._cache.reuse(name, total):
            avail[name] = available  # not in memory, but on disk (written by an earlier or another run)
            reused[name] = REUSED
        effective[name] = total
    fingerprints = Fingerprints(heads, effective, fp_pass)
    fingerprints.reused = reused
    return fingerprints, stale, unsure


def _upstream_reason(
    name: str, index: int | None, deps: dict[str, tuple[str, ...]], avail: dict, available: Any, stale: dict
) -> str:
    """``upstream: X``, X being the step where the change started when the plan can tell."""
    candidates = deps[name] if index is None else (deps[name][index],)
    if index is None:  # prefer an input that is itself stale, then one that will be computed afresh
        ordered = [d for d in candidates if d in stale]
        ordered += [d for d in candidates if avail[d] is not available]
        candidates = tuple(ordered) or candidates
    if not candidates:
        return "upstream steps changed"
    changed = candidates[0]
    upstream = stale.get(changed)
    if upstream and upstream.startswith("upstream: "):
        return upstream  # name the root of the change, not every step on the way
    return f"upstream: {changed}"
