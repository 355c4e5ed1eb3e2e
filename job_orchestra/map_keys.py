"""The items of a mapped step: their keys, names and parameters, from the collections given to ``Step.map``.

Keys are stable: in a list, tuple or range of simple values (int, str, bool, None) an item's key is its
value, so inserting an item renames no other and a new input runs only itself; other lists use positions,
dicts their own keys. Two items whose names would be equal are refused, never merged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .errors import InvalidStepError, MapKeyError

__all__ = ["SIMPLE_KEY_TYPES", "ItemSpec", "MapItem", "combine", "is_collection", "param_items"]

SIMPLE_KEY_TYPES = (int, str, bool, type(None))
"""Values that are their own item key (compared by exact type: an IntEnum or a str subclass is not)."""


class MapItem(NamedTuple):
    """Where an item step belongs: ``step._jo_map`` (its group's name, its key, its position in the group)."""

    group: str
    key: object
    index: int


class ItemSpec(NamedTuple):
    """One item to build: its key, its step name and the keyword arguments that vary per item."""

    key: object
    name: str
    params: dict[str, Any]


def is_collection(value: object) -> bool:
    """What a mapped parameter may be, besides a step: a list, tuple, range or dict."""
    return isinstance(value, (list, tuple, range, dict))


def param_items(group: str, param: str, values: object) -> tuple[list[tuple[object, Any]], bool]:
    """``[(key, value), ...]`` of one mapped parameter in item order, and whether the keys are positions."""
    if isinstance(values, dict):
        return list(values.items()), False
    if isinstance(values, range):
        return [(v, v) for v in values], False
    if isinstance(values, (list, tuple)):
        if all(type(v) in SIMPLE_KEY_TYPES for v in values):
            return [(v, v) for v in values], False
        return list(enumerate(values)), True
    raise InvalidStepError(
        f"{group}.map(): {param}= must be a list, tuple, range or dict of values (one item each), or a step "
        f"whose output is one, got {type(values).__name__}. Pass a value shared by every item in fixed={{...}}."
    )


def _key_text(key: object) -> str:
    return ",".join(map(str, key)) if isinstance(key, tuple) else str(key)


def combine(
    group: str,
    per_param: dict[str, list[tuple[object, Any]]],
    how: str | None,
    keys: Sequence[object] | Callable[[Any], object] | None,
) -> list[ItemSpec]:
    """The items of a map over ``per_param`` (one parameter, or a grid: ``how="product"`` or ``"zip"``)."""
    names = list(per_param)
    if len(names) == 1:
        (param,) = names
        rows = [(k, {param: v}) for k, v in per_param[param]]
    elif how == "product":
        rows = [
            (tuple(k for k, _ in combo), {p: v for p, (_, v) in zip(names, combo)})
            for combo in itertools.product(*per_param.values())
        ]
    elif how == "zip":
        lengths = {p: len(items) for p, items in per_param.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{p}: {n}" for p, n in lengths.items())
            raise MapKeyError(
                f"{group}.map(how='zip'): the mapped parameters have different lengths ({shown}); zip needs "
                "one value of each per item. Use how='product' for every combination.",
                group,
                [],
            )
        rows = [
            (tuple(k for k, _ in combo), {p: v for p, (_, v) in zip(names, combo)})
            for combo in zip(*per_param.values())
        ]
    else:
        raise InvalidStepError(
            f"{group}.map(): {len(names)} mapped parameters ({', '.join(names)}) need how='product' (every "
            f"combination, a grid) or how='zip' (the i-th value of each), got how={how!r}."
        )
    if keys is not None:
        rows = _rekey(group, rows, keys)
    specs = [ItemSpec(k, f"{group}[{_key_text(k)}]", params) for k, params in rows]
    _refuse_duplicates(group, specs)
    return specs


def _rekey(group: str, rows: list[tuple[object, dict]], keys: Sequence[object] | Callable[[Any], object]) -> list:
    if callable(keys):
        out = []
        for _, params in rows:
            values = tuple(params.values())
            out.append(keys(values[0] if len(values) == 1 else values))
    else:
        out = list(keys)
        if len(out) != len(rows):
            raise MapKeyError(
                f"{group}.map(): keys= has {len(out)} keys for {len(rows)} items; give one key per item.", group, []
            )
    for key in out:
        try:
            hash(key)
        except TypeError:
            raise MapKeyError(
                f"{group}.map(): the key {key!r} ({type(key).__name__}) is not hashable; keys name items and "
                "index the collected output, use str, int or tuples of them.",
                group,
                [key],
            ) from None
    return [(key, params) for key, (_, params) in zip(out, rows)]


def _refuse_duplicates(group: str, specs: list[ItemSpec]) -> None:
    seen: dict[str, object] = {}
    dup: list[object] = []
    keys: set[object] = set()
    for spec in specs:
        if spec.name in seen or spec.key in keys:
            dup.append(spec.key)
        seen.setdefault(spec.name, spec.key)
        keys.add(spec.key)
    if dup:
        shown = ", ".join(repr(k) for k in dup[:5]) + (f" and {len(dup) - 5} more" if len(dup) > 5 else "")
        raise MapKeyError(
            f"{group}.map(): duplicate item keys {shown}: each item needs its own key (its step name "
            f"{group}[key] and its cached result). Remove the repeated values, or pass keys=[...] / a dict.",
            group,
            dup,
        )
