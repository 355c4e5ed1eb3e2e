"""Fingerprints: what a step's result was computed from, to tell a fresh cached result from a stale one.

A step's fingerprint hashes three things:

- its **code**: the bytecode, constants and names of every method its class (and its user-defined base
  classes) defines, recursively through nested functions, closures, decorated functions and the module-level
  helper functions, classes and simple constants they use. Bytecode is what runs: re-running an unchanged
  cell, moving it, a new kernel, or a pipeline restored from a snapshot in a fresh process (where no source
  text exists) give the same fingerprint; editing ``run()`` or anything it uses changes it. Line numbers,
  file names, comments and class docstrings are left out. A new Python minor version counts as new code.
- its **parameters**: every attribute of the step object except ``dependencies``, ``ctx`` and
  ``name_alias`` (so the ``data`` of :meth:`Step.from_data` and the ``output`` of :meth:`Step.stepify`
  count). Arrays, DataFrames and bytes are hashed through their buffers with xxHash (a 1 GB array takes a
  few tens of milliseconds); other values through their pickle.
- the fingerprints of its **dependencies**, in ``depends_on`` order.

The fingerprint recorded with a result is a string ``"<total>:<code>:<parameters>:<inputs>"``; only equality
matters, and the parts let a plan say *why* a result is stale.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .code_digest import code_digest
from .value_hash import ValueHasher, digest, new_hasher

if TYPE_CHECKING:
    from .step import Step

__all__ = [
    "PARAMETER_EXCLUDE",
    "FingerprintPass",
    "code_digest",
    "hash_value",
    "param_digests",
    "params_digest",
    "stale_reason",
]

PARAMETER_EXCLUDE = frozenset({"dependencies", "ctx", "name_alias", "_jo_parameters"})
"""Step attributes that are not parameters: the 1.1 constructor arguments."""


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
# Parameters and whole fingerprints
# ---------------------------------------------------------------------------------------------------------
_NO_PARAMS = "0" * 16
_warned: set[tuple[str, str]] = set()


_PARAM_KEYS = "_jo_parameters"


def _warn_unhashable(step: Step, key: str) -> Callable[[object, BaseException], None]:
    def warn(value: object, error: BaseException) -> None:
        where = (type(step).__qualname__, key)
        if where not in _warned:
            _warned.add(where)
            warnings.warn(
                f"job-orchestra: the parameter {key!r} of step {str(step)!r} ({type(value).__name__}) cannot be "
                f"pickled ({type(error).__name__}: {error}), so its content is not part of the fingerprint: "
                "the step's cached result counts as stale in every new process. Keep such objects out of the "
                "step's attributes (create them in run()), or make them picklable.",
                RuntimeWarning,
                stacklevel=2,
            )

    return warn


def param_digests(step: Step) -> dict[str, str]:
    """The hash of each parameter of a step (empty when it has none), in name order.

    Parameters are the attributes other than ``dependencies``, ``ctx`` and ``name_alias`` that the step has
    when it is first fingerprinted (after ``__init__``, before it ever runs). Their names are kept on the
    step (and in pickles of it), so attributes a ``run()`` adds to ``self`` are not parameters.
    """
    attrs = step.__dict__
    keys = attrs.get(_PARAM_KEYS)
    if keys is None:
        keys = [k for k in attrs if k not in PARAMETER_EXCLUDE]
        keys = attrs[_PARAM_KEYS] = tuple(sorted(keys)) if keys else ()
    parts: dict[str, str] = {}
    for key in keys:
        if key not in attrs:
            parts[key] = "deleted"
            continue
        warn = _warn_unhashable(step, key)
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
        return _NO_PARAMS
    return digest("|".join(f"{k}={v}" for k, v in parts.items()).encode("utf-8", "surrogatepass"))[:16]


def params_digest(step: Step) -> str:
    """The hash of a step's parameters (see :func:`param_digests`)."""
    return combine_params(param_digests(step))


def drop_state(step: Step, keys: Iterable[str]) -> None:
    """Stop counting ``keys`` as parameters of ``step``: its ``run()`` changes them, so they are state."""
    dropped = set(keys)
    attrs = step.__dict__
    attrs[_PARAM_KEYS] = tuple(k for k in attrs.get(_PARAM_KEYS, ()) if k not in dropped)
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


def stale_reason(recorded: str, current: str, inputs: list[str], input_totals: list[str]) -> tuple[str, int | None]:
    """Why ``recorded`` differs from ``current``: ``("code" | "parameters" | "upstream", input index)``.

    For "upstream" the index is the first input (in ``depends_on`` order) whose fingerprint changed, or None
    when it cannot be told (more than 16 inputs, or a fingerprint from another version).
    """
    old = recorded.split(":")
    new = current.split(":")
    if len(old) != 4:
        return "code", None
    if old[1] != new[1]:
        return "code", None
    if old[2] != new[2]:
        return "parameters", None
    shown = old[3]
    if shown.startswith("#") or len(inputs) > _SHOW_INPUTS:
        return "upstream", None
    before = shown.split("/") if shown else []
    for i, total in enumerate(input_totals):
        if i >= len(before) or before[i] != total[:8]:
            return "upstream", i
    return "upstream", None


def _safe_code_digest(kind: type) -> str:
    try:
        return code_digest(kind)
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
        return digest(f"unhashable-code:{id(kind)}".encode())[:16]


class FingerprintPass:
    """Computes fingerprints for the steps of one graph in execution order, caching code digests per class."""

    __slots__ = ("code", "params")

    def __init__(self) -> None:
        self.code: dict[type, str] = {}
        self.params: dict[str, dict[str, str]] = {}  # per-parameter digests of the steps that have any

    def step(self, name: str, step: Step, input_totals: list[str]) -> tuple[str, str]:
        """``(total, fingerprint)`` of ``step`` given the totals of its inputs, in ``depends_on`` order."""
        kind = type(step)
        code = self.code.get(kind)
        if code is None:
            code = self.code[kind] = _safe_code_digest(kind)
        attrs = step.__dict__
        keys = attrs.get(_PARAM_KEYS)
        if keys == ():  # the common case, inlined: this runs once per step per plan
            params = _NO_PARAMS
        else:
            parts = param_digests(step)
            if parts:
                self.params[name] = parts
            params = combine_params(parts)
        if len(input_totals) <= _SHOW_INPUTS:
            total = digest(f"{code}|{params}|{'|'.join(input_totals)}".encode())
            return total, f"{total}:{code}:{params}:{'/'.join([t[:8] for t in input_totals])}"
        return make_fingerprint(code, params, input_totals)
