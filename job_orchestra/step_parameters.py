"""A step's parameters: which attributes count, their hashes, and those that turned out to be state.

Parameters are the attributes a step has when it is first planned, other than the 1.1 constructor
arguments and job-orchestra's own bookkeeping (``_jo_*``). An attribute first set after that (a cell doing
``step.seed = 3`` after displaying the step) becomes a parameter at the next plan; one first set *by*
``run()`` (``self.model_ = ...``) is an output, left out; one a ``run()`` changes is state (with a warning).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

from .code_digest import _describe, code_digest
from .value_hash import ValueHasher, digest, new_hasher

__all__ = ["PARAMETER_EXCLUDE", "combine_params", "drop_state", "param_digests", "param_record"]

PARAMETER_EXCLUDE = frozenset({"dependencies", "ctx", "name_alias", "_jo_parameters", "_jo_state", "_jo_known"})
"""Step attributes that are not parameters: the 1.1 constructor arguments and job-orchestra's bookkeeping."""

NO_PARAMS = "0" * 16
PARAM_KEYS = "_jo_parameters"  # the names of the parameters, kept on the step (and in its pickles)
STATE_KEYS = "_jo_state"  # attributes run() set or changed: outputs and state, not parameters
KNOWN = "_jo_known"  # len(step.__dict__) when the keys above were last brought up to date
_warned: set[tuple[str, str]] = set()


def _is_parameter(key: str) -> bool:
    return key not in PARAMETER_EXCLUDE and not key.startswith("_jo_")


def parameter_keys(attrs: dict) -> tuple[str, ...]:
    """The parameter names of a step from its ``__dict__``, brought up to date when attributes were added."""
    keys = attrs.get(PARAM_KEYS)
    if keys is None:  # first sight: its attributes now are its parameters
        keys = attrs[PARAM_KEYS] = tuple(sorted(k for k in attrs if _is_parameter(k)))
        attrs[KNOWN] = len(attrs) + (KNOWN not in attrs)
        return keys
    known = attrs.get(KNOWN)
    if known == len(attrs):
        return keys
    state = attrs.get(STATE_KEYS, ())
    new = [k for k in attrs if _is_parameter(k) and k not in keys and k not in state]
    if known is None:  # a step pickled before job-orchestra tracked this: what it holds beyond was output
        attrs[STATE_KEYS] = tuple(sorted((*state, *new)))
    elif new:  # set on the step after its first plan, before a run used it: a parameter
        keys = attrs[PARAM_KEYS] = tuple(sorted((*keys, *new)))
    attrs[KNOWN] = len(attrs) + (KNOWN not in attrs)
    return keys


def mark_outputs(attrs: dict) -> None:
    """After a run: attributes the run added to the step are outputs, not parameters."""
    if attrs.get(KNOWN) == len(attrs):
        return
    keys = attrs.get(PARAM_KEYS, ())
    state = attrs.get(STATE_KEYS, ())
    new = [k for k in attrs if _is_parameter(k) and k not in keys and k not in state]
    if new:
        attrs[STATE_KEYS] = tuple(sorted((*state, *new)))
    attrs[KNOWN] = len(attrs) + (KNOWN not in attrs)


def _warn_unhashable(step: Any, key: str, doubts: list[str] | None) -> Callable[[object, BaseException], None]:
    def warn(value: object, error: BaseException) -> None:
        if doubts is not None:
            doubts.append(f"parameter {key} is {_describe(value)}")
        where = (type(step).__qualname__, key)
        if where not in _warned:
            _warned.add(where)
            warnings.warn(
                f"job-orchestra: the parameter {key!r} of step {str(step)!r} ({type(value).__name__}) cannot be "
                f"hashed by content ({type(error).__name__}: {error}), so its content is not part of the fingerprint: "
                "the plan marks the step [?] (cannot tell), and its cached result counts as stale in every new "
                "process. Keep such objects out of the step's attributes (create them in run()), or make them "
                "picklable.",
                RuntimeWarning,
                stacklevel=2,
            )

    return warn


def param_digests(step: Any, doubts: list[str] | None = None) -> dict[str, str]:
    """The hash of each parameter of a step (empty when it has none), in name order; values that cannot be
    hashed are described in ``doubts``."""
    attrs = step.__dict__
    keys = parameter_keys(attrs)
    parts: dict[str, str] = {}
    for key in keys:
        if key not in attrs:
            parts[key] = "deleted"
            continue
        warn = _warn_unhashable(step, key, doubts)
        vh = ValueHasher(new_hasher(), code_digest, warn)
        try:
            vh.add(attrs[key])
        except Exception as exc:  # never let hashing break a run: count the value as changed instead
            warn(attrs[key], exc)
            vh.tag(f"unhashable:{id(attrs[key])}")
        parts[key] = vh.h.hexdigest()[:16]
    return parts


def combine_params(parts: dict[str, str]) -> str:
    """One digest for a step's parameters from :func:`param_digests`."""
    if not parts:
        return NO_PARAMS
    return digest("|".join(f"{k}={v}" for k, v in parts.items()).encode("utf-8", "surrogatepass"))[:16]


_SHOWN = (bool, int, float, complex, type(None))


def param_record(step: Any, parts: dict[str, str]) -> dict[str, list]:
    """Per parameter: its digest (8 hex digits) and, for a number or a short string, its value's text, so that
    a plan can say ``lr 0.1 → 0.2``."""
    attrs = step.__dict__
    out: dict[str, list] = {}
    for key, value_digest in parts.items():
        if key not in attrs:  # deleted since the first plan: left out, so the plan says "(removed)"
            continue
        value = attrs[key]
        shown = None
        if isinstance(value, _SHOWN) or (isinstance(value, str) and len(value) <= 40):
            shown = repr(value)
        out[key] = [value_digest[:8], shown]
    return out


def drop_state(step: Any, keys: Iterable[str]) -> None:
    """Stop counting ``keys`` as parameters of ``step``: its ``run()`` changes them, so they are state."""
    dropped = set(keys)
    attrs = step.__dict__
    attrs[PARAM_KEYS] = tuple(k for k in attrs.get(PARAM_KEYS, ()) if k not in dropped)
    attrs[STATE_KEYS] = tuple(sorted({*attrs.get(STATE_KEYS, ()), *dropped}))
    where = (type(step).__qualname__, ",".join(sorted(dropped)))
    if where not in _warned:
        _warned.add(where)
        warnings.warn(
            f"job-orchestra: step {str(step)!r} changed its attribute(s) {', '.join(map(repr, sorted(dropped)))} "
            "while it ran, so they are treated as state, not as parameters: changing them no longer makes its "
            "result stale. Keep parameters unchanged in run(); keep logs and counters outside the step.",
            RuntimeWarning,
            stacklevel=3,
        )
