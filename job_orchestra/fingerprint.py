"""Fingerprints: what a step's result was computed from, to tell a fresh cached result from a stale one.

A step's fingerprint hashes three things:

- its **code** (:mod:`job_orchestra.code_digest`): every method its class and its user-defined base classes
  define, and what that code reads: helper functions and classes of the user's, module-level values (by
  content), libraries (by name and version). Code is hashed in a normalised form
  (:mod:`job_orchestra.code_normal`), so a file, a cell, ``exec``, a reload or a snapshot restored in a
  fresh process give the same digest; line numbers, comments and docstrings are left out.
- its **parameters** (:mod:`job_orchestra.step_parameters`): the attributes of the step other than
  ``dependencies``, ``ctx`` and ``name_alias``, hashed by content (:mod:`job_orchestra.value_hash`).
- the fingerprints of its **dependencies**, in ``depends_on`` order.

The fingerprint recorded with a result is ``"<total>:<code>:<parameters>:<inputs>"`` followed by a small
record of per-part digests (:mod:`job_orchestra.stale_reasons`); only the total decides, the rest lets a
plan say precisely *why* a result is stale. This module combines the layers below it; the plan's pass over
a graph is :mod:`job_orchestra.staleness`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .code_digest import CodeRecord, code_digest, code_record
from .stale_reasons import code_reason, encode_code_parts, encode_params, param_reason, split_fingerprint
from .step_parameters import (
    NO_PARAMS,
    PARAMETER_EXCLUDE,
    combine_params,
    drop_state,
    mark_outputs,
    param_digests,
    param_record,
    parameter_keys,
)
from .value_hash import ValueHasher, digest, new_hasher

if TYPE_CHECKING:
    from .step import Step

_NO_PARAMS = NO_PARAMS

__all__ = [
    "PARAMETER_EXCLUDE",
    "FingerprintPass",
    "code_digest",
    "combine_params",
    "drop_state",
    "hash_value",
    "mark_outputs",
    "param_digests",
    "parameter_keys",
    "params_digest",
    "stale_reason",
]


def hash_value(value: object, on_fallback: Callable[[object, BaseException], None] | None = None) -> str:
    """A content hash of ``value`` (32 hex digits): equal content gives an equal hash in any process.

    Arrays, DataFrames and bytes go through their buffers; containers by structure; functions and classes
    by their code; anything else by its pickle. A value nothing can serialize is hashed by identity (it
    then counts as changed in every new process) after calling ``on_fallback(value, error)``.
    """
    vh = ValueHasher(new_hasher(), code_digest, on_fallback)
    vh.add(value)
    return vh.h.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Whole fingerprints
# ---------------------------------------------------------------------------------------------------------
_warned: set[tuple[str, str]] = set()


def params_digest(step: Step) -> str:
    """The hash of a step's parameters (see :func:`param_digests`)."""
    return combine_params(param_digests(step))


def given_fingerprint(token: str) -> str:
    """The stand-in fingerprint of a value put into a Context by hand, from the hash of its content."""
    return digest(b"given|" + token.encode("utf-8", "surrogatepass"))


_SHOW_INPUTS = 16  # per-input digests are kept in the fingerprint for steps with up to this many inputs


def make_fingerprint(code: str, params: str, inputs: Iterable[str]) -> tuple[str, str]:
    """``(total, fingerprint)`` of a step from its code and parameter digests and its inputs' totals."""
    inputs = list(inputs)
    total = digest(f"{code}|{params}|{'|'.join(inputs)}".encode())
    if len(inputs) <= _SHOW_INPUTS:
        shown = "/".join(t[:8] for t in inputs)
    else:
        shown = "#" + digest("|".join(inputs).encode())[:8]
    return total, f"{total}:{code}:{params}:{shown}"


def total_of(fingerprint: str) -> str:
    """The total part of a recorded fingerprint (what dependents hash)."""
    return fingerprint.partition(":")[0]


def stale_reason(
    recorded: str, current: str, inputs: list[str], input_totals: list[str]
) -> tuple[str, int | None, str | None]:
    """Why ``recorded`` differs from ``current``: ``("code" | "parameters" | "upstream", input index, words)``.

    ``current`` carries its record (see :mod:`job_orchestra.stale_reasons`); ``words`` says what changed
    (``code: Train.run``, ``parameters: lr 0.1 → 0.2``). For "upstream" the index is the first input (in
    ``depends_on`` order) whose fingerprint changed, or None when it cannot be told (more than 16 inputs).
    """
    old, old_code, old_params = split_fingerprint(recorded)
    new, new_code, new_params = split_fingerprint(current)
    if len(old) != 4:
        return "code", None, "code"
    if old_code is not None:  # a record without a parameters line: the step had none
        old_params = old_params or {}
        new_params = new_params or {}
    if old[1] != new[1]:
        words = code_reason(old_code, new_code)
        if old[2] != new[2]:
            words += "; " + param_reason(old_params, new_params)
        return "code", None, words
    if old[2] != new[2]:
        return "parameters", None, param_reason(old_params, new_params)
    shown = old[3]
    if shown.startswith("#") or len(inputs) > _SHOW_INPUTS:
        return "upstream", None, None
    before = shown.split("/") if shown else []
    for i, total in enumerate(input_totals):
        if i >= len(before) or before[i] != total[:8]:
            return "upstream", i, None
    return "upstream", None, None


def _safe_code_record(kind: type) -> CodeRecord:
    try:
        return code_record(kind)
    except Exception as exc:  # never let hashing break a run: such a class counts as changed in a new process
        where = (kind.__qualname__, "<code>")
        if where not in _warned:
            _warned.add(where)
            warnings.warn(
                f"job-orchestra: cannot fingerprint the code of {kind.__qualname__} ({type(exc).__name__}: {exc}); "
                "its cached results count as stale in every new process. Please report this.",
                RuntimeWarning,
                stacklevel=3,
            )
        return CodeRecord(
            digest(f"unhashable-code:{id(kind)}".encode())[:16], {}, (f"the code of {kind.__qualname__}",)
        )


class FingerprintPass:
    """Computes fingerprints for the steps of one graph in execution order, caching code digests per class.

    Besides the fingerprints themselves it keeps what explains them: per class the record line of its code
    parts, per step with parameters their digests and record line, and per step what could not be hashed.
    """

    __slots__ = ("code", "doubts", "params", "suffix")

    def __init__(self) -> None:
        self.code: dict[type, tuple[str, str, tuple[str, ...]]] = {}  # class -> (digest, record, doubts)
        self.params: dict[str, dict[str, str]] = {}  # per-parameter digests of the steps that have any
        self.suffix: dict[str, str] = {}  # record lines of steps with parameters
        self.doubts: dict[str, list[str]] = {}  # what could not be hashed, per step

    def klass(self, kind: type) -> tuple[str, str, tuple[str, ...]]:
        """``(code digest, record line, doubts)`` of a step class, computed once per pass."""
        entry = self.code.get(kind)
        if entry is None:
            record = _safe_code_record(kind)
            entry = self.code[kind] = (record.digest, "\n" + encode_code_parts(record.parts), record.doubts)
        return entry

    def step(self, name: str, step: Step, input_totals: list[str]) -> tuple[str, str]:
        """``(total, fingerprint)`` of ``step`` given the totals of its inputs, in ``depends_on`` order (the
        fingerprint without its record: see :meth:`record`)."""
        code, code_line, code_doubts = self.klass(type(step))
        attrs = step.__dict__
        keys = parameter_keys(attrs)
        if code_doubts:
            self.doubts[name] = list(code_doubts)
        if not keys:  # the common case, inlined: this runs once per step per plan
            params = NO_PARAMS
        else:
            doubts: list[str] = []
            parts = param_digests(step, doubts)
            if doubts:
                self.doubts.setdefault(name, []).extend(doubts)
            if parts:
                self.params[name] = parts
                self.suffix[name] = code_line + "\n" + encode_params(param_record(step, parts))
            params = combine_params(parts)
        if len(input_totals) <= _SHOW_INPUTS:
            total = digest(f"{code}|{params}|{'|'.join(input_totals)}".encode())
            return total, f"{total}:{code}:{params}:{'/'.join([t[:8] for t in input_totals])}"
        return make_fingerprint(code, params, input_totals)

    def record(self, name: str, step: Step) -> str:
        """The record lines to append to ``name``'s fingerprint (its code parts, and its parameters)."""
        suffix = self.suffix.get(name)
        return suffix if suffix is not None else self.klass(type(step))[1]


def refreshed_params(step: Step, planned: dict[str, str]) -> tuple[dict[str, str], str]:
    """After a run: the parameters of ``step`` without those its ``run()`` changed (now state), and the
    record line of what is left."""
    mark_outputs(step.__dict__)
    now = param_digests(step)
    state = [k for k, d in now.items() if planned.get(k) != d]
    if state:
        drop_state(step, state)
        now = {k: v for k, v in now.items() if k not in state}
    return now, encode_params(param_record(step, now)) if now else ""
