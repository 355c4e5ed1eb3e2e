"""Remember a plan's rows while nothing its fingerprint pass read can have changed.

Planning an all-cached 100,000-step pipeline again should not hash every step again. The memo of a graph
(kept on its :mod:`.graph_cache` entry, so the steps, names and dependencies are known to be the same) is
used only when checks made at C speed prove every input of the pass unchanged:

- each step's Context (by identity), which of the steps' names it holds, the fingerprint recorded with
  each, and the content hash of each value put in by hand (:meth:`Context._value_token`'s memo);
- each step's attribute count, its parameter names, and each parameter's value: a value is proven
  unchanged only when it is the same object and of an immutable built-in type (numbers, strings, bytes,
  tuples and frozensets of those); any other value (a list, a dict, an array, a function) is hashed again
  by content, as every plan does, and compared;
- each class's code digest (:func:`.code_digest.code_record` re-checks what it read, module globals
  included), and whether the step defines ``run()`` where the pass asked;
- each file input's files (scanned again: content decides).

Anything the checks cannot cover makes a plan ineligible: values that could not be hashed (``[?]``), a
persistent cache the pass asked for earlier versions, checks added with ``register_reason``, stale rows
explained by files. When in doubt, the full pass runs.
"""

from __future__ import annotations

from operator import attrgetter, is_, methodcaller
from typing import Any

from .file_input import FILES_KEY, remember, scan
from .fingerprint import FingerprintPass
from .graph import defines_run
from .staleness import _EXTRA_REASONS, Fingerprints, _file_lines
from .step_parameters import KNOWN, PARAM_KEYS, param_digests

__all__ = ["enabled", "lookup", "remember_plan"]

_ENABLED = [True]
_MISSING = object()
_get_ctx = attrgetter("ctx")
_get_dict = attrgetter("__dict__")
_get_known = methodcaller("get", KNOWN)
_get_keys = methodcaller("get", PARAM_KEYS)
_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})


def enabled(on: bool | None = None) -> bool:
    """Whether plans are remembered and reused; ``enabled(False)`` plans every time in full (tests compare
    the two)."""
    if on is not None:
        _ENABLED[0] = bool(on)
    return _ENABLED[0]


def _frozen(value: object, depth: int = 0) -> bool:
    """True when identity proves the content unchanged: exact immutable built-in types only (a subclass of
    ``int`` or ``str`` may carry attributes that change)."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if (kind is tuple or kind is frozenset) and depth < 4 and len(value) <= 64:  # type: ignore[arg-type]
        return all(_frozen(v, depth + 1) for v in value)  # type: ignore[union-attr]
    return False


class _Memo:
    """What one full pass read (see the module docstring) and what it found."""

    __slots__ = (
        "classes",
        "ctxs",
        "files",
        "fingerprints",
        "groups",
        "keys",
        "lens",
        "params",
        "rows",
        "runs",
        "to_run",
    )


def lookup(graph: Any, policy: str) -> tuple[Any, Fingerprints | None, list[str]] | None:
    """``(rows, fingerprints, to_run)`` of the last plan of ``graph`` if every input of its pass is proven
    unchanged, else None (``rows``: what the plan builds its rows from, never changed; the fingerprints are
    a fresh copy, since a run updates them)."""
    token = graph.token
    memo = token.memo.get(policy) if token is not None and token.memo and _ENABLED[0] else None
    if memo is None:
        return None
    steps = graph.nodes  # the memo keeps no step: the cache holds the head only weakly
    if not all(map(is_, map(_get_ctx, steps), memo.ctxs)):
        return None
    fp = memo.fingerprints
    if fp is not None and not _same_inputs(memo, steps):
        return None
    files = None
    if memo.files:
        files = _same_files(memo, steps)
        if files is None:
            return None
    fingerprints = None
    if fp is not None:
        fingerprints = _copy(fp, files, graph.deps)
    return memo.rows, fingerprints, memo.to_run


def _same_inputs(memo: _Memo, steps: list) -> bool:
    for ctx, cache, names, held, recorded, given in memo.groups:
        if ctx._cache is not cache or list(map(ctx.__contains__, names)) != held:
            return False
        if list(map(ctx._fingerprints.get, names)) != recorded:
            return False
        tokens = ctx._given
        for name, token in given:
            if tokens.get(name) != token:
                return False
    dicts = list(map(_get_dict, steps))
    lens = list(map(len, dicts))
    if lens != memo.lens or list(map(_get_known, dicts)) != lens or list(map(_get_keys, dicts)) != memo.keys:
        return False
    for i, keys, values, digests in memo.params:
        step = steps[i]
        attrs = step.__dict__
        now = [attrs.get(k, _MISSING) for k in keys]
        if all(map(is_, now, values)) and all(map(_frozen, values)):
            continue
        if param_digests(step) != digests:  # hashed by content, as every plan hashes such values
            return False
    for i, defines in memo.runs:
        if defines_run(steps[i]) is not defines:
            return False
    for kind, code in memo.classes:
        if FingerprintPass().klass(kind) != code:  # code_record checks again what the digest read
            return False
    return True


def _same_files(memo: _Memo, steps: list) -> dict | None:
    """The file inputs' manifests scanned now, if each has the content the memo's pass saw."""
    files = {}
    for name, i, spec, step_total, total in memo.files:
        if steps[i].__dict__.get(FILES_KEY) is not spec:
            return None
        manifest = scan(spec, name)
        if manifest.total != total:
            return None
        remember(spec, step_total, manifest)
        files[name] = manifest
    return files


def _copy(fp: Fingerprints, files: dict | None, deps: dict) -> Fingerprints:
    old = fp.pass_
    new_pass = FingerprintPass()
    new_pass.code.update(old.code)
    new_pass.params.update(old.params)
    new_pass.suffix.update(old.suffix)
    if files is None:
        files, lines = fp.files, fp.file_lines
    else:
        lines = _file_lines(deps, files) if files else {}
    return Fingerprints(dict(fp.heads), dict(fp.effective), new_pass, dict(files), dict(lines))


def remember_plan(
    graph: Any, policy: str, rows: Any, to_run: tuple, fingerprints: Fingerprints | None, stale: dict, unsure: dict
) -> None:
    """Keep what the full pass of ``graph`` read and found, when the checks of :func:`lookup` cover it all."""
    token = graph.token
    if token is None or not _ENABLED[0]:
        return
    if token.memo is None:
        token.memo = {}
    token.memo.pop(policy, None)
    steps = graph.nodes
    memo = _Memo()
    memo.ctxs = ctxs = list(map(_get_ctx, steps))
    memo.rows = rows
    memo.to_run = to_run  # (names, positions): never changed by the plans that share it
    memo.fingerprints = None if fingerprints is None else _copy(fingerprints, None, graph.deps)
    memo.groups, memo.params, memo.runs, memo.classes, memo.files = [], [], [], [], []
    if fingerprints is not None:
        fp_pass = fingerprints.pass_
        if unsure or fp_pass.doubts or fingerprints.reused or _EXTRA_REASONS:
            return
        if fingerprints.files and stale:  # a file's reason may read this process's memory of earlier files
            return
        names = graph.names
        if not _remember_contexts(memo, names, steps, ctxs, stale, fingerprints, policy):
            return
        dicts = list(map(_get_dict, steps))
        memo.lens = list(map(len, dicts))
        if list(map(_get_known, dicts)) != memo.lens:
            return
        memo.keys = list(map(_get_keys, dicts))
        for i, (name, attrs, keys) in enumerate(zip(names, dicts, memo.keys)):
            if keys:
                digests = fp_pass.params.get(name)
                if digests is None:
                    return
                values = [attrs.get(k, _MISSING) for k in keys]  # kept only when identity proves content
                values = [v if _frozen(v) else _MISSING for v in values]
                memo.params.append((i, keys, values, dict(digests)))
            spec = attrs.get(FILES_KEY)
            if spec is not None:
                manifest = fingerprints.files.get(name)
                if manifest is None:
                    return
                memo.files.append((name, i, spec, fingerprints.heads[name], manifest.total))
        for kind, code in fp_pass.code.items():
            if code[2]:
                return
            memo.classes.append((kind, code))
    token.memo[policy] = memo


def _remember_contexts(
    memo: _Memo, names: list[str], steps: list, ctxs: list, stale: dict, fingerprints: Fingerprints, policy: str
) -> bool:
    """Per Context: the names it was asked for, which it held, their recorded fingerprints and hand-put
    hashes; and the steps whose ``run()`` the pass looked at. False when a check cannot cover it."""
    by_ctx: dict[int, tuple[Any, list[str]]] = {}
    for name, ctx in zip(names, ctxs):
        if ctx is not None:
            by_ctx.setdefault(id(ctx), (ctx, []))[1].append(name)
    heads = fingerprints.heads
    index = {name: i for i, name in enumerate(names)}
    for ctx, group in by_ctx.values():
        held = list(map(ctx.__contains__, group))
        recorded = list(map(ctx._fingerprints.get, group))
        given = []
        cache = ctx._cache
        for name, has, fp in zip(group, held, recorded, strict=True):
            if cache is not None and policy == "rerun" and (not has or name in stale):
                return False  # the pass asked the cache on disk, which other processes may change
            if not has:
                continue
            if fp is None:
                token = ctx._given.get(name)
                if token is None:
                    return False
                given.append((name, token))
                continue
            total = heads[name].partition(":")[0]
            if not (fp.startswith(total) and fp[len(total) : len(total) + 1] == ":"):
                memo.runs.append((index[name], defines_run(steps[index[name]])))
        memo.groups.append((ctx, cache, group, held, recorded, given))
    return True
