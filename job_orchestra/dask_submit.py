"""Submitting the plan to Dask ahead: the steps as tasks, in batches, with their inputs taken from Contexts.

Part of :class:`job_orchestra.dask_graph.DaskGraphRun` (its state lives there): each scheduled step becomes a
task whose arguments are its inputs' tasks, :data:`BATCH` steps per graph message. A step whose Context
records its result returns ``(value, seconds)``; one whose workers write into a shared cache returns
``(value, reference)``; the value its consumers take is a small ``getitem`` task next to it.
"""

from __future__ import annotations

import operator
import time
import uuid
from typing import Any

from .dask_tasks import read_stored, run_step, run_step_timed, run_step_writing, state_bytes
from .worker_writes import reader_for, writer_for

__all__ = ["BATCH", "GraphSubmission"]

BATCH = 5000
"""Steps per graph message: a 100k-step plan goes to the scheduler in pieces, in plan order."""


class GraphSubmission:
    """The submitting half of a Dask graph run (mixed into :class:`~job_orchestra.dask_graph.DaskGraphRun`)."""

    Task: Any
    TaskRef: Any
    LLGExpr: Any
    client: Any
    steps: dict[str, Any]
    deps: dict[str, tuple[str, ...]]
    head: str
    to_run: list[str]
    scheduled: set[str]
    run_id: str
    position: dict[str, int]
    task_keys: dict[str, tuple]
    shipper: Any
    plan: Any
    events: Any
    inputs: dict[str, tuple[str, ...]]
    unsubmitted: dict[str, int]
    refs: dict[str, Any]
    value_key: dict[str, str]
    futures: dict[Any, Any]
    watch: dict[Any, tuple[str, str]]
    key_name: dict[Any, str]
    consumers: dict[str, list[str]]
    waiting_for: dict[str, int]
    started: dict[str, float]
    from_context: dict[str, Any]
    foreign: dict[str, Any]
    held: list[str]
    done: set[str]
    completed: Any
    lean: bool
    polled: dict[Any, Any]

    def _submit(self, names: list[str]) -> None:
        """Submit ``names`` (plan order) in batches; a step needing a result not known yet is held."""
        blocked = set(self.foreign)
        ready: list[str] = []
        for name in names:
            if any(d in blocked for d in self.inputs[name]):
                blocked.add(name)
            else:
                ready.append(name)
        self.held = [n for n in names if n in blocked]
        for start in range(0, len(ready), BATCH):
            self._submit_batch(ready[start : start + BATCH])

    def _submit_batch(self, names: list[str]) -> None:
        Task, TaskRef = self.Task, self.TaskRef
        graph: dict[Any, Any] = {}
        keys: list[Any] = []
        roles: dict[str, tuple[str, str]] = {}
        self._context_inputs(names, graph, keys)
        shipper, steps, deps, refs, run_id = self.shipper, self.steps, self.deps, self.refs, self.run_id
        position = self.position
        from_context, scheduled, plan = self.from_context, self.scheduled, self.plan
        for name in names:
            step = steps[name]
            args = [refs[d] if d in scheduled else from_context[d] for d in deps[name]]
            cls_bytes, state = shipper.ship(name, step)
            # Keys grouped by class, as Dask names its own (one task group per class, not one per step: the
            # scheduler's bookkeeping grows with the number of groups), unique by the run and plan position.
            kind, at = type(step).__name__, position[name]
            key = (f"{kind}-{run_id}", at)
            writer = None if step.ctx is None else writer_for(step, name, plan.fingerprint(name))
            if writer is not None:
                out, ref = (f"{kind}-out-{run_id}", at), (f"{kind}-ref-{run_id}", at)
                self.task_keys[name] = (key, out, ref)
                graph[out] = Task(out, run_step_writing, cls_bytes, state, name, state_bytes(writer), *args)
                graph[key] = Task(key, operator.getitem, TaskRef(out), 0)
                graph[ref] = Task(ref, operator.getitem, TaskRef(out), 1)
                keys += (out, key, ref)
                roles[ref] = (name, "written")
                self.key_name[out] = self.key_name[ref] = name
            elif step.ctx is not None:
                out = (f"{kind}-out-{run_id}", at)
                self.task_keys[name] = (key, out, None)
                graph[out] = Task(out, run_step_timed, cls_bytes, state, name, *args)
                keys.append(out)
                roles[out] = (name, "timed")
                self.key_name[out] = name
                if self.unsubmitted.get(name):
                    graph[key] = Task(key, operator.getitem, TaskRef(out), 0)
                    keys.append(key)
            else:
                graph[key] = Task(key, run_step, cls_bytes, state, name, *args)
                keys.append(key)
                roles[key] = (name, "plain")
            self.key_name[key] = name
            refs[name], self.value_key[name] = TaskRef(key), key
        # Unique keys already: no need for Dask to hash the whole graph for a name (as client.submit does).
        futures = self.client.get(self.LLGExpr(graph, _determ_token=uuid.uuid4().hex), keys, sync=False)
        held, watch, watched, polled, lean, head = self.futures, self.watch, [], self.polled, self.lean, self.head
        for key, future in zip(keys, futures):
            held[key] = future
            role = roles.get(key)
            if role is not None:
                watch[key] = role
                if lean and role[1] == "plain" and role[0] != head:
                    polled[key] = future
                else:
                    watched.append(future)
        self.completed.update(watched)
        self._note_submitted(names)

    def _note_submitted(self, names: list[str]) -> None:
        """Progress for the steps just submitted; release what no step left to submit needs."""
        now = time.perf_counter()
        events, done, unsubmitted = self.events, self.done, self.unsubmitted
        for name in names:
            inputs = self.inputs[name]
            left = 0
            for d in inputs:
                self.consumers.setdefault(d, []).append(name)
                if d not in done:
                    left += 1
                count = unsubmitted[d] - 1
                unsubmitted[d] = count
                if not count:
                    self._release_value(d)
            self.waiting_for[name] = left
            if not left:
                self.started[name] = now
                if events:
                    events.emit("step_start", name)

    def _release_value(self, name: str) -> None:
        if name in self.done and not self.unsubmitted.get(name):
            key = self.value_key.get(name)
            if key is not None:
                self.futures.pop(key, None)

    def _context_inputs(self, names: list[str], graph: dict[Any, Any], keys: list[Any]) -> None:
        """The inputs of ``names`` taken from a Context: read by a worker from a cache the workers share, or
        scattered from here (all those of a batch in one call)."""
        to_scatter = []
        for name in names:
            for d in self.deps[name]:
                if d in self.scheduled or d in self.from_context:
                    continue
                ctx = self.steps[d].ctx
                reader = reader_for(ctx, d)
                if reader is not None:  # the workers read it from the cache: it never comes here
                    key = (f"stored-{self.run_id}", len(self.from_context))
                    graph[key] = self.Task(key, read_stored, state_bytes(reader))
                    keys.append(key)
                    self.from_context[d] = self.TaskRef(key)
                else:
                    self.from_context[d] = None
                    to_scatter.append((d, ctx[d]))  # type: ignore[index]
                if self.events:
                    self.events.emit("step_cached", d)
        if to_scatter:
            futures = self.client.scatter([v for _, v in to_scatter], hash=False)
            for (d, _), future in zip(to_scatter, futures):
                self.futures[future.key] = future
                self.from_context[d] = self.TaskRef(future.key)
