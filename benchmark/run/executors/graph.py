"""A run's units as a dependency graph, learnt by replaying its pipeline, and the replay that computes chosen units.

The stages call `Runner.unit(...)` in pipeline order, each with the entries it consumes (`upstream`), whose keys
are part of its own key. `GraphRunner` is a runner that computes nothing it was not asked to:

- **record** (the driver): every unit it meets becomes a `Node` (stage, key, label, the keys it waits for), done
  when the cache already holds it; the pipeline gets `LazyEntry`s back, so it goes on to meet later units.
- **compute** (a worker): the units named in `targets` are computed through the cache (its file lock keeps two
  workers from computing one key); every other unit is a `LazyEntry` read from the cache when a computation needs
  it. The replay stops once the last target is written.

The replay is the run's own pipeline (`replay`): the stages, then each extra gate's `discover` (the known-answer
gate: benchmark.checks.gate), so a worker computes exactly what an inline run would, under the same key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.executors.lazy import LazyEntry, MissingUpstream, Pending, is_complete
from benchmark.run.runner import Runner, Stage

log = logging.getLogger("benchmark.run.executors")


@dataclass
class Node:
    stage: str
    key: str
    label: str
    deps: tuple[str, ...]
    order: int  # when the pipeline met it: a topological order (a unit comes after what it consumes)
    state: str = "todo"  # todo | running | done (this run computed it) | cached (it was there already)
    tries: int = 0

    @property
    def name(self) -> str:
        return f"{self.stage}[{self.label}]"


@dataclass
class UnitGraph:
    nodes: dict[str, Node] = field(default_factory=dict)

    def add(self, stage: str, key: str, label: str, deps: tuple[str, ...], *, complete: bool) -> None:
        if key not in self.nodes:
            self.nodes[key] = Node(stage, key, label, deps, len(self.nodes), "cached" if complete else "todo")

    def satisfied(self, key: str) -> bool:
        node = self.nodes.get(key)
        return node is None or node.state in ("done", "cached")

    def todo(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.state == "todo"]

    def ready(self) -> list[Node]:
        """Units not yet computed whose inputs all are."""
        return [n for n in self.todo() if all(self.satisfied(d) for d in n.deps)]

    def finished_keys(self) -> set[str]:
        return {k for k, n in self.nodes.items() if n.state in ("done", "cached")}

    def dependents(self) -> dict[str, int]:
        """For each unit not yet computed, how many others wait for it, directly or not (those go first)."""
        todo = sorted(self.todo(), key=lambda n: -n.order)  # a unit's dependents come later in the pipeline
        children: dict[str, list[str]] = {}
        for node in todo:
            for dep in node.deps:
                children.setdefault(dep, []).append(node.key)
        below: dict[str, set[str]] = {}
        for node in todo:
            waiting: set[str] = set()
            for child in children.get(node.key, ()):
                waiting |= {child} | below.get(child, set())
            below[node.key] = waiting
        return {key: len(keys) for key, keys in below.items()}

    def count(self, state: str) -> int:
        return sum(n.state == state for n in self.nodes.values())


class AllDone(Exception):
    """Ends a worker's replay once its last target is written."""


@dataclass
class UnitDone:
    """What a worker reports of a unit it was asked for: written now (`hit` False) or found written."""

    stage: str
    key: str
    label: str
    seconds: float
    hit: bool


def upstream_keys(upstream: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The keys a unit waits for: its upstream entries' (a combined entry stands for its parts)."""
    keys: list[str] = []
    for entry in (upstream or {}).values():
        parts = getattr(entry, "parts", None)
        keys += [p.key for p in parts] if parts else [entry.key]
    return tuple(dict.fromkeys(keys))


@dataclass
class GraphRunner(Runner):
    graph: UnitGraph | None = None  # record mode: where the met units go
    targets: tuple[str, ...] = ()  # compute mode: the keys to compute
    done: list[UnitDone] = field(default_factory=list)
    _todo: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.progress = False  # the driver shows one bar over units; replays show none
        self._todo = set(self.targets)

    def unit(self, stage: Stage, label: str, spec: Mapping[str, Any], compute: Callable[[], StageOutput], *,
             digests: Mapping[str, str] | None = None,
             upstream: Mapping[str, CacheEntry] | None = None) -> CacheEntry:
        key = self.key_for(stage, spec, digests=digests, upstream=upstream)
        if key in self._todo:
            return self._compute(stage, key, label, spec, compute)
        if self.graph is not None and key not in self.graph.nodes:
            # --fresh: nothing found in the cache counts; only what this run computes
            complete = not self.fresh and is_complete(self.cache, stage.name, key)
            self.graph.add(stage.name, key, label, upstream_keys(upstream), complete=complete)
        return LazyEntry(self.cache, stage.name, key, label)  # type: ignore[return-value]

    def is_cached(self, stage: Stage, spec: Mapping[str, Any], *, digests: Mapping[str, str] | None = None,
                  upstream: Mapping[str, CacheEntry] | None = None) -> bool:
        """A worker's stage that computes its missing units together (attribute batching) must count only this
        job's targets as missing: another job computes the rest."""
        if self.graph is None and self.key_for(stage, spec, digests=digests, upstream=upstream) not in self._todo:
            return True
        return super().is_cached(stage, spec, digests=digests, upstream=upstream)

    def _compute(self, stage: Stage, key: str, label: str, spec, compute) -> CacheEntry:
        name = f"{stage.name}[{label}]"

        def guarded() -> StageOutput:
            try:
                return compute()
            except Pending as p:  # not a wait: the unit read something its key does not name as upstream
                raise MissingUpstream(f"{name} read {p.stage}[{p.label}] ({p.key[:12]}), which is not in the cache",
                                      fix="a stage passes every entry its computation reads as `upstream`; "
                                          "report this as a bug") from None

        log.info("unit start %s key=%s pid=%d", name, key[:12], os.getpid())
        start = time.perf_counter()
        entry = self.cache.get_or_compute(stage.name, key, guarded, spec=spec, fresh=self.fresh, label=label)
        seconds = entry.seconds if not entry.hit else time.perf_counter() - start
        log.info("unit done %s key=%s in %.2f s%s", name, key[:12], seconds, " (found written)" if entry.hit else "")
        self.done.append(UnitDone(stage.name, key, label, round(seconds, 3), entry.hit))
        self._todo.discard(key)
        if not self._todo:
            raise AllDone
        return entry


class WaitingMetrics(dict):
    """`RunState.metrics` while the measure units are not all computed: reading one raises `Pending`."""

    def __missing__(self, key):
        raise Pending("measure", "", f"metrics of {key}")


def replay(plan, runner: Runner):
    """The run's pipeline as `run_plan` runs it (stages, then the extra gates), skipping what waits for a unit
    that is not computed yet; returns the run state."""
    from benchmark.run.pipeline import collect_metrics, schedule_units

    state = schedule_units(plan, runner)
    try:
        collect_metrics(state)
    except Pending:
        state.metrics = WaitingMetrics()  # a check that reads a metric waits for the measure units
    for gate in plan.extra_gates:
        discover = getattr(gate, "discover", None)
        with contextlib.suppress(Pending):
            discover(state) if discover is not None else gate(state)
    return state


def record(plan, runner: GraphRunner) -> None:
    """Add every unit the pipeline meets now to `runner.graph`."""
    replay(plan, runner)


def compute_targets(plan, runner: GraphRunner) -> list[UnitDone]:
    """Compute `runner.targets` by replaying the pipeline; every target must be met."""
    if runner.targets:
        try:
            replay(plan, runner)
        except AllDone:
            return runner.done
        raise MissingUpstream(f"{len(runner._todo)} unit(s) sent to this worker are not in its plan "
                              f"(first: {sorted(runner._todo)[0][:12]})",
                              fix="the worker rebuilt another plan than the driver's: run driver and workers "
                                  "from one checkout, with the same packages, manifests and data")
    return runner.done
