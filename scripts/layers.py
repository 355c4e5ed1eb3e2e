#!/usr/bin/env python3
"""Check the package layers: no import cycles, no import from a lower layer up to a higher one.

Imports inside functions count (one placed there to dodge a cycle is still a cycle), and each needs a
comment saying why on its line or the line above (an optional or heavy dependency: dask, IPython, or a
module of ours that imports ipywidgets). ``python scripts/layers.py`` prints every
violation and exits 1 if there is one; ``--dot`` prints the import graph, grouped by layer, for Graphviz
(the docs build draws docs/architecture.md's diagram with it, from the real imports).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Layers, bottom first. A module may import modules of its own layer or of lower layers; within a layer
# the imports must still form no cycle. A module missing from this table is reported.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "foundations",
        ["errors", "cleverdict_compat", "attrdict", "events", "rendering", "lazy", "tracebacks", "safe_dill"],
    ),
    (
        "graph and hashing",
        [
            "graph_cache",
            "graph",
            "user_code",
            "code_normal",
            "value_hash",
            "file_input",
            "code_digest",
            "step_parameters",
            "stale_reasons",
            "fingerprint",
            "cell_sources",
            "map_keys",
        ],
    ),
    (
        "storage",
        [
            "manifest",
            "snapshot_files",
            "store_fsspec",
            "stores",
            "snapshot_pickle",
            "value_codec",
            "legacy",
            "snapshot_load",
            "cache_index",
            "cache",
            "cache_workers",
            "snapshot",
            "context",
        ],
    ),
    ("plan", ["redefined", "staleness", "plan_memo", "map_plan", "plan", "group_view", "accept"]),
    (
        "execution",
        [
            "inflight",
            "checks",
            "runstate",
            "cache_gone",
            "shipping",
            "thread_queue",
            "worker_writes",
            "workers",
            "executors",
            "run_loop",
            "parallel",
            "dask_tasks",
            "dask_submit",
            "dask_graph",
            "scheduler",
            "progress",
        ],
    ),
    ("facade", ["drawing", "step", "mapping", "function_step", "__init__", "cli", "__main__"]),
]
PACKAGES = ["job_orchestra", "jupyter_ext"]  # the second is built on the first, never the reverse


@dataclass
class Import:
    source: str
    target: str
    line: int
    in_function: bool
    commented: bool


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    edges: dict[tuple[str, str], list[Import]] = field(default_factory=dict)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _function_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    return inside


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def imports_of(path: Path) -> Iterable[Import]:
    """Every import in ``path`` (outside ``if TYPE_CHECKING:``), with absolute target names."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inside, skip = _function_nodes(tree), _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        here = lines[node.lineno - 1]
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        commented = "#" in here or above.startswith("#")
        for target in targets:
            yield Import(name, target, node.lineno, id(node) in inside, commented)


def _own(target: str, modules: set[str]) -> str | None:
    """The module of ours ``target`` names (``pkg.mod.NAME`` -> ``pkg.mod``), or None for another package's."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def check(root: Path = ROOT) -> Report:
    """Read every module of :data:`PACKAGES` and list what breaks the layering."""
    report = Report()
    files = {module_name(p): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}
    modules = set(files)
    layer_of = {f"{PACKAGES[0]}.{m}".removesuffix(".__init__"): i for i, (_, ms) in enumerate(LAYERS) for m in ms}
    layer_of[PACKAGES[0]] = layer_of.pop(f"{PACKAGES[0]}.__init__", len(LAYERS) - 1)
    for name in sorted(m for m in modules if m.split(".")[0] == PACKAGES[0] and m not in layer_of):
        report.problems.append(f"{name}: not in any layer of scripts/layers.py's LAYERS table")
    for name, path in files.items():
        seen: set[tuple[str, int]] = set()
        for imp in imports_of(path):
            target = _own(imp.target, modules) or imp.target.split(".")[0]
            where = f"{path.relative_to(root)}:{imp.line}"
            if target == name or (target, imp.line) in seen:
                continue
            seen.add((target, imp.line))
            if imp.in_function and not imp.commented:
                report.problems.append(f"{where}: {name} imports {target} inside a function without a comment why")
            if target not in modules:
                continue
            report.edges.setdefault((name, target), []).append(imp)
            up = PACKAGES.index(name.split(".")[0]) < PACKAGES.index(target.split(".")[0])
            if up:
                report.problems.append(f"{where}: {name} imports {target}, a layer built on it")
            elif name in layer_of and target in layer_of and layer_of[target] > layer_of[name]:
                report.problems.append(
                    f"{where}: {name} ({LAYERS[layer_of[name]][0]}) imports {target} "
                    f"({LAYERS[layer_of[target]][0]}), a higher layer"
                )
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for source, target in report.edges:
        if not (target in PACKAGES and source.startswith(target + ".")):  # a package's own __init__
            graph[source].add(target)
    for _ in range(50):  # report each cycle, breaking one edge of it to look for the next
        try:
            tuple(TopologicalSorter(graph).static_order())
            break
        except CycleError as error:
            cycle = error.args[1]
            report.problems.append(f"import cycle: {' -> '.join(reversed(cycle))}")
            graph[cycle[1]].discard(cycle[0])
    return report


def dot(report: Report) -> str:
    """The core's import graph as DOT, one cluster per layer, lower layers at the bottom."""
    core = PACKAGES[0]
    lines = ["digraph layers {", "  rankdir=BT; node [shape=box, style=rounded, fontname=Helvetica, fontsize=11];"]
    for i, (title, members) in enumerate(LAYERS):
        names = [m for m in members if (ROOT / core / f"{m}.py").exists()]
        lines.append(f'  subgraph cluster_{i} {{ label="{i}. {title}"; fontname=Helvetica; color=grey;')
        lines.extend(f'    "{core}.{m}" [label="{m}"];'.replace(f"{core}.__init__", core) for m in names)
        lines.append("  }")
    lines.append('  "jupyter_ext" [label="jupyter_ext (display layer)", shape=component];')
    pairs = set()
    for source, target in report.edges:
        if source.split(".")[0] == "jupyter_ext":
            if target.split(".")[0] == core:
                pairs.add(("jupyter_ext", target))
        elif target != core:
            pairs.add((source, target))
    lines.extend(f'  "{a}" -> "{b}";' for a, b in sorted(pairs))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print the import graph as DOT instead")
    args = parser.parse_args(argv)
    report = check()
    if args.dot:
        print(dot(report), end="")
        return 0
    for problem in report.problems:
        print(problem)
    print(f"{len(report.problems)} layering problem(s) in {', '.join(PACKAGES)}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
