"""Code in a normalised form: the same source gives the same hash however and wherever it was compiled.

CPython compiles one source differently by context: on 3.11 ``mod.f()`` becomes ``LOAD_ATTR`` when
``import mod`` is in the same cell or file and ``LOAD_METHOD`` otherwise, with ``PUSH_NULL``/``PRECALL``
and flag bits moving around; line numbers, file names and caches differ between a file, a cell, ``exec`` and
a reload. What is hashed instead is each instruction's *meaning*: its opname with such families unified
(``LOAD_METHOD`` is ``LOAD_ATTR``), its argument by value (the name, the constant, nested code recursively
normalised, jump targets and exception handlers as positions in the normalised stream), the signature and
the names of arguments, cells and free variables. Left out: line numbers, positions, file names,
``co_qualname``, docstrings (a constant no instruction loads) and instructions that only prepare a call.
The form is well defined per Python minor version; a new minor version counts as new code.
"""

from __future__ import annotations

import bisect
import dis
import inspect
import types
from typing import Any

__all__ = ["add_normalised_code", "normalised_instructions", "stored_globals"]

_DROPPED = frozenset({"CACHE", "NOP", "RESUME", "PRECALL", "PUSH_NULL", "EXTENDED_ARG"})
_FAMILY = {
    "LOAD_METHOD": "LOAD_ATTR",
    "LOAD_NAME": "LOAD_GLOBAL",
    "LOAD_FAST_CHECK": "LOAD_FAST",
    "JUMP_BACKWARD_NO_INTERRUPT": "JUMP_BACKWARD",
}
_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs) | frozenset(getattr(dis, "hasjump", ()))
_FLAGS = (
    inspect.CO_VARARGS
    | inspect.CO_VARKEYWORDS
    | inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ITERABLE_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
)


def normalised_instructions(code: types.CodeType) -> list[tuple[str, Any]]:
    """``(opname, argument)`` pairs of ``code`` in the normalised form (nested code left as code objects)."""
    instructions = list(dis.get_instructions(code))
    offsets = [ins.offset for ins in instructions]
    position: list[int] = []  # normalised index of each instruction (a dropped one: the next kept one)
    kept = 0
    for ins in instructions:
        position.append(kept)
        if ins.opname not in _DROPPED:
            kept += 1

    def at(offset: int) -> int:
        i = bisect.bisect_left(offsets, offset)
        return position[i] if i < len(position) else kept

    out: list[tuple[str, Any]] = []
    for ins in instructions:
        op = ins.opname
        if op in _DROPPED:
            continue
        arg: Any = ins.argval
        if ins.opcode in _JUMPS and isinstance(arg, int):
            arg = ("to", at(arg))
        out.append((_FAMILY.get(op, op), arg))
    for entry in getattr(dis.Bytecode(code), "exception_entries", ()):
        out.append(("EXCEPT", (at(entry.start), at(entry.end), at(entry.target), entry.depth, entry.lasti)))
    return out


def add_normalised_code(h: Any, code: types.CodeType, names: list[str], attrs: list[str] | None = None) -> None:
    """Feed the normalised form of ``code`` (and the code nested in it) into ``h``; collect the global names
    it reads into ``names`` and the attribute names it reads into ``attrs``."""
    h.update(
        f"code|{code.co_argcount}|{code.co_posonlyargcount}|{code.co_kwonlyargcount}|{code.co_flags & _FLAGS}|"
        f"{'|'.join(code.co_varnames)}/{'|'.join(code.co_cellvars)}/{'|'.join(code.co_freevars)}\x00".encode(
            "utf-8", "surrogatepass"
        )
    )
    for op, arg in normalised_instructions(code):
        if isinstance(arg, types.CodeType):
            h.update(f"{op} <code {arg.co_name}>\x00".encode("utf-8", "surrogatepass"))
            add_normalised_code(h, arg, names, attrs)
            continue
        if op == "LOAD_GLOBAL":
            names.append(arg)
        elif attrs is not None and op in _ATTRIBUTE_LOADS:
            attrs.append(arg)
        h.update(f"{op} {_arg_text(arg)}\x00".encode("utf-8", "surrogatepass"))


_ATTRIBUTE_LOADS = frozenset({"LOAD_ATTR", "LOAD_SUPER_ATTR", "IMPORT_FROM"})


def _arg_text(arg: object) -> str:
    if isinstance(arg, frozenset):  # iteration order depends on the hash seed
        return "frozenset{" + "|".join(sorted(map(_arg_text, arg))) + "}"
    if isinstance(arg, tuple):
        return "(" + ",".join(map(_arg_text, arg)) + ")"
    if isinstance(arg, types.CodeType):
        return f"<code {arg.co_name}>"
    return f"{type(arg).__name__}:{arg!r}"


_MUTATORS = frozenset(
    {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "add", "discard", "update", "setdefault"}
)


_STATE_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLASSDEREF"})


def stored_globals(code: types.CodeType) -> set[str]:
    """Globals and closure variables a function (or code nested in it) treats as state: names it assigns or
    deletes with a ``global`` statement, and containers it changes in place (``LOG.append(x)``,
    ``CACHE[key(x)] = value``, ``del SEEN[k]``, ``CACHE.setdefault(k, []).append(v)``)."""
    out: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        ops = list(dis.get_instructions(current))
        for i, ins in enumerate(ops):
            op = ins.opname
            if op in ("STORE_GLOBAL", "DELETE_GLOBAL"):
                out.add(ins.argval)
            elif op in _STATE_LOADS and _changed_in_place(ops, i):
                out.add(ins.argval)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return out


def _changed_in_place(ops: list[dis.Instruction], i: int) -> bool:
    """Follow the value ``ops[i]`` loads: True when a mutating method is looked up on it, or when it is the
    container of an item assignment or deletion; False as soon as anything else uses it (or at a jump)."""
    depth = 1  # entries on the stack from the loaded value up (the value itself is the lowest)
    for ins in ops[i + 1 : i + 64]:
        op = ins.opname
        if op in ("CACHE", "EXTENDED_ARG"):
            continue
        if depth == 2 and op in ("STORE_SUBSCR", "DELETE_SUBSCR"):
            return True  # value[key] = ..., del value[key]: the value is the container
        if depth == 1:
            if op in ("LOAD_ATTR", "LOAD_METHOD"):
                return ins.argval in _MUTATORS
            if not op.startswith("LOAD_") and op != "PUSH_NULL":
                return False  # used by something else: not a change in place (when in doubt, keep hashing)
        if ins.opcode in _JUMPS or op.startswith(("SWAP", "COPY", "ROT_", "DUP_")):
            return False
        try:
            depth += dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None, jump=False)
        except ValueError:
            return False
        if depth < 2:  # the entries above the value were consumed by something that may have taken it too
            return False
    return False
