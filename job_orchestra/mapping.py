"""``Step.map``: one ordinary step per item of a collection (or of an upstream step's output), collected by
a :class:`MapGroup` step whose output is the items' outputs in item order.

Each item is a plain instance of the mapped class, named ``Group[key]``: it has its own cached result,
fingerprint, failure and resume, and runs on any executor like every other step. The keys come from
:mod:`job_orchestra.map_keys`; plans learn about groups through :mod:`job_orchestra.map_plan`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import map_plan, step
from .errors import InvalidStepError, MapSourceError
from .map_keys import ItemSpec, MapItem, combine, is_collection, param_items
from .map_plan import GroupSummary
from .step import Step

__all__ = ["GroupSummary", "MapGroup", "MapItem", "map_step"]

_RESERVED = ("depends_on", "ctx")


class MapGroup(Step):
    """The collect step of ``Cls.map(...)``: depends on every item and returns their outputs, a list in
    item order, or a dict ``key -> output`` when the keys are not positions (a dict, ``keys=``, a grid).

    ``group_name`` is its name, ``items`` the item steps (empty until a dynamic ``source`` has run).
    """

    def __init__(
        self, name: str, keyed: bool, source: Step | None, build: Callable[[Any], tuple[list[Step], bool]]
    ) -> None:
        super().__init__(depends_on=[source] if source is not None else [], name_alias=name)
        self.keyed = keyed  # a parameter: it decides the output's shape
        self.item_keys: tuple | None = None  # a parameter when keyed: the output's keys, in item order
        self._jo_source = source
        self._jo_build = build
        self._jo_items: list[Step] = []
        self._jo_from: object = _NOTHING
        map_plan.GROUPS.add(self)
        if source is not None:
            map_plan.DYNAMIC.add(self)

    @property
    def group_name(self) -> str:
        """The group's name (the prefix of its items' names)."""
        return self._name

    @property
    def items(self) -> list[Step]:
        """The item steps in item order (empty while a dynamic source has not run)."""
        return list(self._jo_items)

    @property
    def source(self) -> Step | None:
        """The step whose output gives the items (dynamic fan-out), or None for a fixed collection."""
        source = self._jo_source
        return source if isinstance(source, Step) else None

    @property
    def _jo_pending(self) -> bool:
        return self._jo_source is not None and self._jo_from is _NOTHING

    def _jo_set_items(self, items: list[Step], keyed: bool) -> None:
        self._jo_items = items
        self.keyed = keyed
        self.item_keys = tuple(i._jo_map.key for i in items) if self.keyed else None
        # reversed: plans list a step's dependencies in 1.1's reversed breadth-first order, so the items
        # are planned and run in item order (a failure at item k keeps items 0..k-1), the source before them
        source = [self._jo_source] if self._jo_source is not None else []
        self.dependencies = [*reversed(items), *source]

    def _jo_expand(self, value: Any) -> bool:
        """Build the items from the source's output (once per value); True when they changed."""
        if value is self._jo_from:
            return False
        self._jo_set_items(*self._jo_build(value))
        self._jo_from = value
        return True

    def _jo_collapse(self) -> None:
        """Back to the placeholder: the source must run again before the items are known."""
        self._jo_from = _NOTHING
        self._jo_set_items([], self.keyed)

    def run(self, *inputs: Any) -> list | dict:
        outputs = inputs[-2::-1] if self._jo_source is not None else inputs[::-1]
        if self.keyed:
            return dict(zip(self.item_keys or (), outputs))
        return list(outputs)

    def __getstate__(self) -> dict[str, Any]:
        # Neither the build recipe (it holds the inputs and Context) nor the source's output travel: a
        # worker needs only the parameters, and a snapshot finds the items and source in the dependencies.
        drop = ("_jo_build", "_jo_items", "_jo_source", "_jo_from")
        state = {k: v for k, v in super().__getstate__().items() if k not in drop}
        state["_jo_has_source"] = self._jo_source is not None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        has_source = state.pop("_jo_has_source", False)
        super().__setstate__(state)
        deps = self.dependencies  # [*reversed(items), source], or [] in a worker's stripped copy
        source = (deps[-1] if deps else _SOURCE_ELSEWHERE) if has_source else None
        self._jo_source = source
        self._jo_items = list(reversed(deps[:-1] if has_source else deps))
        self._jo_build = None  # no recipe: a loaded dynamic group keeps the items it had
        self._jo_from = None
        map_plan.GROUPS.add(self)


class _Nothing:
    def __repr__(self) -> str:
        return "<nothing>"


_NOTHING = _Nothing()
_SOURCE_ELSEWHERE = _Nothing()  # a shipped copy: its last input is the source's output


def map_step(
    cls: type[Step],
    *args: Any,
    how: str | None = None,
    keys: Sequence[object] | Callable[[Any], object] | None = None,
    name_alias: str | None = None,
    fixed: dict[str, Any] | None = None,
    **over: Any,
) -> MapGroup:
    """See :meth:`Step.map`."""
    group = name_alias or cls._default_name or cls.__name__
    if name_alias is not None and (not isinstance(name_alias, str) or not name_alias):
        raise InvalidStepError(f"{cls.__name__}.map(): name_alias= must be a non-empty string, got {name_alias!r}")
    passed = {k: over.pop(k) for k in _RESERVED if k in over}
    fixed = dict(fixed or {})
    for k in fixed:
        if k in over or k in _RESERVED or k == "name_alias":
            raise InvalidStepError(
                f"{group}.map(): {k!r} is in fixed= and is also a mapped or reserved keyword; give it once."
            )
    if how not in (None, "product", "zip"):
        raise InvalidStepError(
            f"{group}.map(): how= takes 'product' (every combination, a grid) or 'zip' (the i-th value of "
            f"each), got how={how!r}."
        )
    if not over:
        raise InvalidStepError(
            f"{group}.map(): no mapped parameter. Pass one as a keyword, e.g. {cls.__name__}.map(fold=range(5))."
        )
    sources = {k: v for k, v in over.items() if isinstance(v, Step)}
    for k, v in over.items():
        if not isinstance(v, Step) and not is_collection(v):
            param_items(group, k, v)  # raises the TypeError naming the parameter
    if len(over) > 1 and how not in ("product", "zip"):
        raise InvalidStepError(
            f"{group}.map(): {len(over)} mapped parameters ({', '.join(over)}) need how='product' (every "
            f"combination, a grid) or how='zip' (the i-th value of each), got how={how!r}."
        )
    if len(sources) > 1:
        raise InvalidStepError(
            f"{group}.map(): {', '.join(sources)} are all steps; a map fans out over the output of one step. "
            "Join them first (Step.join) or map in two stages."
        )
    static = {k: param_items(group, k, v) for k, v in over.items() if k not in sources}
    source_param, source = next(iter(sources.items()), (None, None))
    keyed = keys is not None or len(over) > 1 or any(isinstance(v, dict) for v in over.values())

    def build(value: Any) -> tuple[list[Step], bool]:
        per_param = {k: items for k, (items, _) in static.items()}
        dict_output = keyed
        if source is not None:
            if not is_collection(value):
                raise MapSourceError(
                    f"{group} is mapped over the output of {source._name} ({source_param}=), which returned "
                    f"{type(value).__name__}: it must return a list, tuple, range or dict (one item each).",
                    group,
                    source._name,
                )
            per_param[source_param] = param_items(group, source_param, value)[0]
            per_param = {k: per_param[k] for k in over}  # the keyword order is the grid's key order
            dict_output = keyed or isinstance(value, dict)
        specs = combine(group, per_param, how, keys)
        return [_make(cls, args, passed, fixed, spec, group, i) for i, spec in enumerate(specs)], dict_output

    node = MapGroup(group, keyed, source, build)
    if source is None:
        node._jo_expand(None)
    return node


def _make(cls: type[Step], args: tuple, passed: dict, fixed: dict, spec: ItemSpec, group: str, index: int) -> Step:
    try:
        item = cls(*args, **passed, name_alias=spec.name, **fixed, **spec.params)
    except InvalidStepError:
        raise
    except TypeError as exc:
        raise InvalidStepError(
            f"{group}.map(): {cls.__name__}({', '.join([*passed, 'name_alias', *fixed, *spec.params])}) "
            f"failed for item {spec.name}: {exc}. Step.map passes the mapped values as keywords of the "
            "constructor, with name_alias=; its __init__ must accept them."
        ) from exc
    item._jo_map = MapItem(group, spec.key, index)
    return item


step._mapper[0] = map_step
