"""``@step``: a plain function as a step class, for pipelines without ``class``/``__init__``/``super()``.

``@step`` turns ``def train(data, *, C=1.0): ...`` into a :class:`~job_orchestra.Step` subclass named
``train``. Its parameters without a default are its *inputs* (other steps: ``train(split)`` or
``train(depends_on=[split])``); those with a default (and keyword-only ones) are its *parameters*, kept as
attributes of the step, so they are fingerprinted and named in stale reasons exactly as a class step's
attributes are (``parameters: C 1.0 → 10.0``). ``ctx=``, ``name_alias=``, ``depends_on=``, ``Step.map`` and
every executor work as for class steps.

The class holds the function as ``train.func`` (a staticmethod: ``train.func(x, C=2)`` is the plain function,
for tests). That attribute is the class's only code, so the code digest (:mod:`job_orchestra.code_digest`)
hashes the function, its defaults, the helpers it calls and the globals it reads exactly as it hashes a
class step's ``run()``, and the cell sources of a function defined in a notebook travel with its steps
(:mod:`job_orchestra.cell_sources`). The class is what the decorated name refers to, so pickle finds it by
reference in a file, and cloudpickle/dill carry it by value from a notebook (processes, Dask, snapshots).
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from .context import Context
from .errors import FunctionStepError
from .step import Step

__all__ = ["FunctionStep", "step"]

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ASYNC_GENERATOR = 0x200
_RESERVED = frozenset({"depends_on", "ctx", "name_alias", "dependencies"})

F = TypeVar("F", bound=Callable[..., Any])


class Signature(NamedTuple):
    """What a function step's function takes: its inputs (steps) and its parameters (values)."""

    inputs: tuple[str, ...]  # positional parameters without a default, in order
    varargs: str | None  # ``*name``: any number of further inputs
    params: tuple[str, ...]  # parameters with a default, and keyword-only ones, in order
    defaults: dict[str, Any]  # parameter -> default (keyword-only parameters without one are required)


_signatures: weakref.WeakKeyDictionary[type, Signature] = weakref.WeakKeyDictionary()


def signature_of(func: types.FunctionType) -> Signature:
    """The inputs and parameters of ``func``, read from its code object (no ``inspect``: cheap, and the same
    after a pickle round trip)."""
    code = func.__code__
    names = code.co_varnames
    positional = names[: code.co_argcount]
    defaults = func.__defaults__ or ()
    first_default = len(positional) - len(defaults)
    kwonly = names[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    varargs = names[code.co_argcount + code.co_kwonlyargcount] if code.co_flags & _CO_VARARGS else None
    params = (*positional[first_default:], *kwonly)
    given = dict(zip(positional[first_default:], defaults))
    given.update({k: v for k, v in (func.__kwdefaults__ or {}).items() if k in kwonly})
    return Signature(tuple(positional[:first_default]), varargs, tuple(params), given)


def _check_function(func: object) -> types.FunctionType:
    """Refuse what cannot be a function step, saying why and what to write instead."""
    if isinstance(func, type):
        raise FunctionStepError(
            f"@step decorates functions; {func.__name__} is a class. Subclass Step instead, or decorate a function."
        )
    if not isinstance(func, types.FunctionType):
        raise FunctionStepError(f"@step decorates a plain function, got {func!r} ({type(func).__name__}).")
    name = func.__name__
    code = func.__code__
    if not name.isidentifier():
        raise FunctionStepError(f"@step needs a function with a name (def ...), got {name!r}: it names the step.")
    if code.co_flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR):
        raise FunctionStepError(f"@step {name}: async functions cannot be steps; write a plain def.")
    if code.co_flags & _CO_GENERATOR:
        raise FunctionStepError(
            f"@step {name}: a generator function's output would be a generator, which cannot be cached; "
            "return a list instead."
        )
    if code.co_flags & _CO_VARKEYWORDS:
        raise FunctionStepError(
            f"@step {name}: **kwargs cannot be parameters (they would not be known when the step is built); "
            "name each parameter with a default."
        )
    if code.co_posonlyargcount > len(signature_of(func).inputs):
        raise FunctionStepError(
            f"@step {name}: a positional-only parameter with a default cannot be passed as a parameter; "
            "remove the '/' or the default."
        )
    sig = signature_of(func)
    if sig.varargs and len(sig.params) > code.co_kwonlyargcount:
        raise FunctionStepError(
            f"@step {name}: parameters with a default before *{sig.varargs} would take its inputs; "
            f"make them keyword-only (after *{sig.varargs})."
        )
    for what, names in (("input", (*sig.inputs, *([sig.varargs] if sig.varargs else []))), ("parameter", sig.params)):
        for arg in names:
            if arg in _RESERVED or arg.startswith("_jo_") or (what == "parameter" and hasattr(FunctionStep, arg)):
                raise FunctionStepError(
                    f"@step {name}: the {what} {arg!r} would hide the step's own {arg!r} (reserved by Step); rename it."
                )
    return func


class FunctionStep(Step):
    """The base of the classes made by :func:`step`: builds the step from inputs and parameters, and calls
    the function with its inputs' outputs and its parameters."""

    func: Callable[..., Any]

    def __init__(
        self,
        *inputs: Step,
        depends_on: Step | Sequence[Step] | None = None,
        ctx: Context | None = None,
        name_alias: str | None = None,
        **params: Any,
    ) -> None:
        cls = type(self)
        sig = _signature(cls)
        label = name_alias or cls.__name__
        if inputs and depends_on is not None:
            raise FunctionStepError(
                f"{label}: inputs given both positionally and as depends_on=; use one of the two.", label
            )
        if depends_on is not None:
            deps = [depends_on] if isinstance(depends_on, Step) else depends_on
        else:
            deps = inputs
        deps = list(deps) if isinstance(deps, (list, tuple)) else deps
        if isinstance(deps, list):
            for i, dep in enumerate(deps):
                if not isinstance(dep, Step):
                    shown = sig.inputs[i] if i < len(sig.inputs) else sig.varargs or f"#{i + 1}"
                    raise FunctionStepError(
                        f"{label}: input {shown!r} is {_short(dep)} ({type(dep).__name__}), not a Step. Inputs are "
                        "other steps; wrap plain data with Step.from_data(...), or give a value as a parameter "
                        "(a function parameter with a default).",
                        label,
                    )
            wanted = len(sig.inputs)
            if len(deps) != wanted and not (sig.varargs and len(deps) >= wanted):
                takes = f"{wanted}{' or more' if sig.varargs else ''} input(s)"
                names = ", ".join((*sig.inputs, *([f"*{sig.varargs}"] if sig.varargs else []))) or "none"
                hint = " Pass parameters by keyword (name=value)." if len(deps) > wanted else ""
                raise FunctionStepError(f"{label} takes {takes} ({names}), got {len(deps)}.{hint}", label)
        unknown = [k for k in params if k not in sig.params]
        if unknown:
            known = ", ".join(sig.params) or "none"
            raise FunctionStepError(
                f"{label}: unknown parameter(s) {', '.join(map(repr, unknown))}; its parameters are: {known}.", label
            )
        missing = [k for k in sig.params if k not in params and k not in sig.defaults]
        if missing:
            raise FunctionStepError(
                f"{label}: missing the parameter(s) {', '.join(map(repr, missing))} (keyword-only, no default).",
                label,
            )
        for key, value in params.items():
            if isinstance(value, Step):
                raise FunctionStepError(
                    f"{label}: parameter {key!r} is the step {value}; steps are inputs: make {key!r} a parameter "
                    "without a default of the function and pass the step positionally.",
                    label,
                )
        super().__init__(depends_on=deps, ctx=ctx, name_alias=name_alias)
        for key in sig.params:
            setattr(self, key, params[key] if key in params else sig.defaults[key])

    def run(self, *inputs: Any) -> Any:
        """Call the function with the inputs' outputs and the step's parameters."""
        __tracebackhide__ = True  # the user's function is the first frame of a failure
        cls = type(self)
        params = {}
        for key in _signature(cls).params:
            try:
                params[key] = self.__dict__[key]
            except KeyError:
                raise FunctionStepError(
                    f"{self}: the function {cls.__name__} now has the parameter {key!r}, which this step was not "
                    f"built with (rebound after an edit?): build the step again.",
                    str(self),
                ) from None
        return cls.func(*inputs, **params)


def _signature(cls: type) -> Signature:
    sig = _signatures.get(cls)
    if sig is None:
        sig = _signatures[cls] = signature_of(cls.func)  # type: ignore[attr-defined]
    return sig


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def step(func: F) -> type[FunctionStep]:
    """Turn a function into a step class named like it: ``def train(data, *, C=1.0)`` gives steps built
    as ``train(split_step, C=10, ctx=ctx)``; ``train.func`` is the plain function."""
    fn = _check_function(func)
    namespace = {
        "__module__": fn.__module__ if fn.__module__ is not None else "builtins",  # as a class exec'd there
        "__qualname__": fn.__qualname__,
        "__doc__": fn.__doc__,
        "func": staticmethod(fn),
    }
    cls = type(fn.__name__, (FunctionStep,), namespace)
    _signatures[cls] = signature_of(fn)
    return cls
