"""``python -m job_orchestra``: run, plan or draw a pipeline from a file or module, in batch.

::

    python -m job_orchestra run pipeline.py:head --executor processes --snapshot results/
    python -m job_orchestra run --load results/            # the pipeline stored with the snapshot
    python -m job_orchestra plan my_package.pipelines:build_pipeline
    python -m job_orchestra graph pipeline.py:head -o pipeline.svg

``HEAD`` names a Step in the file or module, or a function that takes no argument and returns one.
Exit codes: 0 success, 1 a step failed (the message names it), 2 usage error, 3 a program job-orchestra
needs is missing (Graphviz's ``dot`` for ``graph``), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import pprint
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .context import Context
from .errors import PipelineError, SnapshotError, SnapshotExistsError
from .events import Callback
from .graph import collect
from .progress import ProgressBar
from .snapshot import check_replaceable, store
from .step import Step
from .tracebacks import print_user_traceback

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING_PROGRAM, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """A command line that cannot be carried out as given (exit code 2)."""


# -- finding the pipeline -----------------------------------------------------------------------------
def _import_target(source: str) -> Any:
    """Import ``source``: a Python file (loaded as a module named after it) or a dotted module name."""
    path = Path(source)
    if source.endswith(".py") or path.is_file():
        if not path.is_file():
            raise UsageError(f"no such file: {source}")
        name = path.stem
        folder = str(path.resolve().parent)
        if folder not in sys.path:  # so worker processes can import the file's classes by name too
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot load {source} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            traceback.print_exc()
            raise UsageError(f"{source} raised {type(exc).__name__} while loading: {exc}") from None
        import cloudpickle  # only the pipeline-loading path needs it

        cloudpickle.register_pickle_by_value(module)  # workers (even a remote cluster's) need not have the file
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:  # as `python -m` does
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name and source.startswith(exc.name):
            raise UsageError(f"no Python file or module named {source!r}") from None
        traceback.print_exc()
        raise UsageError(f"importing {source} failed: {exc}") from None
    except Exception as exc:
        traceback.print_exc()
        raise UsageError(f"{source} raised {type(exc).__name__} while loading: {exc}") from None


def find_head(target: str) -> Step:
    """The head step named by ``FILE_OR_MODULE:HEAD``."""
    source, sep, attr = target.rpartition(":")
    if not sep or not source or not attr:
        raise UsageError(f"expected FILE_OR_MODULE:HEAD (e.g. pipeline.py:head), got {target!r}")
    module = _import_target(source)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            found = sorted(n for n, v in vars(module).items() if isinstance(v, Step))
            raise UsageError(f"{source} has no {attr!r}. Steps defined there: {', '.join(found) or 'none'}.") from None
    if not isinstance(obj, Step) and callable(obj):
        obj = obj()
    if not isinstance(obj, Step):
        raise UsageError(f"{target} is a {type(obj).__name__}, not a Step (nor a function returning one)")
    return obj


def _contexts(head: Step) -> dict[int, Context]:
    return {id(s.ctx): s.ctx for s in collect(head).steps.values() if s.ctx is not None}


def _fill_from_snapshot(head: Step, snapshot: Context) -> int:
    """Put the snapshot's results into the Contexts of the steps that lack them; return how many."""
    filled = 0
    for name, step in collect(head).steps.items():
        ctx = step.ctx
        if ctx is None or ctx is snapshot or name in ctx or name not in snapshot:
            continue
        ctx._put_result(name, dict.__getitem__(snapshot, name), snapshot.fingerprint(name))  # stays lazy
        filled += 1
    return filled


def _resolve_head(args: argparse.Namespace) -> Step:
    snapshot = None
    if args.load is not None:
        if not args.load:
            raise UsageError("--load needs a snapshot directory, got an empty string")
        try:
            snapshot = Context.load(args.load)
        except (FileNotFoundError, NotADirectoryError):
            raise UsageError(f"--load {args.load}: no snapshot there") from None
        except SnapshotError as exc:  # a file, a directory that is not a snapshot, a damaged one
            raise UsageError(f"--load {args.load}: {exc}") from None
    if args.target:
        head = find_head(args.target)
    elif snapshot is not None and snapshot.pipeline is not None:
        head = snapshot.pipeline
    else:
        raise UsageError("give the pipeline as FILE_OR_MODULE:HEAD, or --load a snapshot stored with pipeline=head")
    if snapshot is not None:
        if not _contexts(head):
            _say("--load: no step of this pipeline has a Context, so the snapshot's results cannot be used")
        else:
            _fill_from_snapshot(head, snapshot)
    return head


def _say(message: str) -> None:
    print(f"job-orchestra: {message}", file=sys.stderr)


# -- snapshots ------------------------------------------------------------------------------------------
def _check_snapshot_target(directory: str) -> None:
    """Refuse, before anything runs, a --snapshot path that is not ours to replace or cannot be made."""
    if not directory:
        raise UsageError("--snapshot needs a directory, got an empty string")
    target = Path(directory).absolute()
    for parent in target.parents:  # the first one that exists must be a directory
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise UsageError(
                    f"--snapshot {directory}: {parent} is not a directory, so nothing can be stored below it"
                )
            break
    here = Path.cwd().resolve()
    if os.path.lexists(target) and (target.resolve() == here or target.resolve() in here.parents):
        raise UsageError(
            f"--snapshot {directory}: that is the current directory (or holds it), which cannot be replaced while "
            "it is in use. Run from another directory, or give another path."
        )
    try:
        check_replaceable(target, True)
    except SnapshotExistsError as exc:
        raise UsageError(f"--snapshot {directory}: {exc}") from None


def _write_snapshot(head: Step, directory: str) -> None:
    """Store the pipeline's results (and the pipeline) at ``directory``, replacing a previous snapshot."""
    contexts = _contexts(head)
    if not contexts:
        _say("--snapshot: no step of this pipeline has a Context: nothing to store")
        return
    if len(contexts) == 1:
        (ctx,) = contexts.values()
    else:  # several Contexts: one snapshot with each step's result
        ctx = Context()
        for name, step in collect(head).steps.items():
            if step.ctx is not None and name in step.ctx:
                ctx._put_result(name, step.ctx[name], step.ctx.fingerprint(name))

    target = Path(os.path.normpath(Path(directory).absolute()))  # out/entries/.. is out
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        store(ctx, target, pipeline=head, replace=True)  # atomic; the old snapshot stays until the new is whole
    except SnapshotExistsError as exc:
        raise UsageError(f"--snapshot {directory}: {exc}") from None
    results = sum(1 for k in ctx if k != "context_meta")
    _say(f"snapshot with {results} result(s) written to {directory}")


# -- commands -------------------------------------------------------------------------------------------
class _FailureWatch(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.failed: list[tuple[str, BaseException]] = []
        self.finished = 0

    def step_finish(self, name: str, seconds: float) -> None:
        self.finished += 1

    def step_fail(self, name: str, error: BaseException) -> None:
        self.failed.append((name, error))


def _executor(args: argparse.Namespace, stack: Any) -> Any:
    kind = args.executor
    if kind == "serial":
        return None
    if kind != "dask":
        return kind
    try:
        from distributed import Client, LocalCluster  # optional: the dask extra
    except ImportError:
        raise UsageError("--executor dask needs dask.distributed: pip install 'job-orchestra[dask]'") from None
    if args.dask_address:
        return stack.enter_context(Client(args.dask_address))
    cluster = stack.enter_context(
        LocalCluster(n_workers=args.max_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    )
    return stack.enter_context(Client(cluster))


def _cmd_run(args: argparse.Namespace) -> int:
    if args.snapshot is not None:
        _check_snapshot_target(args.snapshot)
    head = _resolve_head(args)
    watch = _FailureWatch()
    callbacks: list[Callback] = [watch]
    if args.progress is not False:
        callbacks.append(ProgressBar(disable=None if args.progress is None else False))
    started = time.perf_counter()
    status = EXIT_OK
    try:
        with contextlib.ExitStack() as stack:
            executor = _executor(args, stack)
            output = head.materialize(executor, max_workers=args.max_workers, callbacks=callbacks)
    except KeyboardInterrupt:
        _say(f"interrupted; {watch.finished} step(s) finished")
        status = EXIT_INTERRUPTED
    except Exception as exc:
        if not watch.failed:
            if isinstance(exc, PipelineError):  # the pipeline is declared wrongly: nothing ran
                raise UsageError(str(exc)) from None
            raise
        print_user_traceback(exc)  # the step's own frames, not the scheduler's
        name, error = watch.failed[0]
        _say(f"step {name!r} failed: {type(error).__name__}: {error}")
        status = EXIT_FAILED
    else:
        seconds = time.perf_counter() - started
        _say(f"{head} done: {watch.finished} step(s) run in {seconds:.2f} s")
        print(_readable(output))
    if args.snapshot:
        _write_snapshot(head, args.snapshot)
    return status


_SHOWN_LINES = 200


def _readable(output: Any) -> str:
    """The head's result for the terminal: a string as it is, anything else pretty-printed, in full up to
    200 lines, else those and a line saying how much was left out and how to keep it all."""
    text = output if isinstance(output, str) else pprint.pformat(output, width=100, sort_dicts=False)
    lines = text.splitlines()
    if len(lines) <= _SHOWN_LINES:
        return text
    left = len(lines) - _SHOWN_LINES
    return "\n".join(
        [
            *lines[:_SHOWN_LINES],
            f"... {left} more line(s) of this {type(output).__name__}; use --snapshot DIR to keep it",
        ]
    )


def _cmd_plan(args: argparse.Namespace) -> int:
    print(_resolve_head(args).execution_plan(show=False), end="")
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace) -> int:
    import graphviz  # only `graph -o` draws

    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"-o {args.output} is a directory: give a file name such as {out / 'graph.svg'}")
    if not out.absolute().parent.is_dir():
        raise UsageError(f"-o {args.output}: the directory {out.absolute().parent} does not exist")
    graph = _resolve_head(args).dependency_graph()
    fmt = out.suffix.lstrip(".").lower() or "svg"
    if fmt in ("dot", "gv"):
        out.write_text(graph.source)
    else:
        try:
            out.write_bytes(graph.pipe(format=fmt))
        except graphviz.ExecutableNotFound:
            _say(
                f"cannot draw {out}: Graphviz's 'dot' program is not installed (nothing failed in the pipeline). "
                "Install it (apt-get install graphviz, brew install graphviz, conda install graphviz), "
                "or write the graph as FILE.dot"
            )
            return EXIT_MISSING_PROGRAM
        except (ValueError, graphviz.CalledProcessError) as exc:
            raise UsageError(f"cannot write a {fmt!r} drawing: {exc}") from None
    _say(f"graph of {graph.name} written to {out}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m job_orchestra",
        description="Run, plan or draw a job-orchestra pipeline. HEAD is a Step, or a function returning one.",
        epilog="Exit codes: 0 ok, 1 a step failed, 2 usage error, 3 a needed program is missing, 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("target", nargs="?", metavar="FILE_OR_MODULE:HEAD", help="e.g. pipeline.py:head")
        sub.add_argument("--load", metavar="DIR", help="use the results of this snapshot (and its pipeline)")
        return sub

    run = add("run", "materialize the head step")
    run.add_argument("--executor", choices=["serial", "threads", "processes", "dask"], default="serial")
    run.add_argument("--max-workers", type=_positive, metavar="N", help="at most N steps at once")
    run.add_argument("--snapshot", metavar="DIR", help="store the results here afterwards (also after a failure)")
    run.add_argument("--dask-address", metavar="ADDRESS", help="a Dask scheduler to use instead of a LocalCluster")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="show a progress bar (default: when stderr is a terminal)")  # fmt: skip
    run.set_defaults(handler=_cmd_run)
    add("plan", "print the execution plan").set_defaults(handler=_cmd_plan)
    graph = add("graph", "draw the dependency graph")
    graph.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.svg, .png, .pdf or .dot")
    graph.set_defaults(handler=_cmd_graph)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog} {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # not a step failure: e.g. a snapshot that cannot be written
        traceback.print_exc()
        _say(f"error: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
