"""The driver's loop: submit the units whose inputs are computed, wait, record, resubmit what a lost worker left.

Units go out in dependency order: a unit is submitted only once every unit it consumes is in the cache (the
training of an attribute after the inversions it reads, its edits after its f_t, metrics after their edit). A job
holds a group of units, computed one after the other by one worker, so a worker's start-up (imports, models) is
paid once per group, not once per unit:

- each training is its own job (`train_per_job` may put several in one: attribute batching trains them together),
  and so is each h-space property experiment: these are the long units, spread over the workers;
- inversion chunks, edit chunks (the settings of one chunk together) and metric units are split evenly over the
  workers, and the metric units of an edit ride in the job of its chunks (they wait for nothing else, and cost
  little);
- when there are more groups than free workers, those that more units wait for (directly or not) go first.

A job that ends without writing its units (worker killed, timed out, preempted, SIGTERM) has its unfinished units
resubmitted, up to `max_tries`; then the run stops with exit 2, naming the unit, its log and the command that
resumes. Ctrl-C (or SIGTERM) in the driver cancels every job in flight and ends the run with exit 130.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from benchmark.core.errors import BenchError
from benchmark.outputs.results import UnitInfo
from benchmark.run.executors.backends import Backend
from benchmark.run.executors.graph import Node, UnitGraph
from benchmark.run.executors.job import JobReport, JobSpec, run_job

log = logging.getLogger("benchmark.run.executors")

LONG_STAGES = ("train", "properties")  # one unit per job: these are what the workers share
RIDERS = ("measure",)  # units that ride in the job of the unit they wait for


@dataclass
class Flight:
    job: Any
    nodes: list[Node]
    slot: int
    submitted: float


@dataclass
class Driver:
    graph: UnitGraph
    backend: Backend
    make_spec: Callable[[list[Node], str], JobSpec]
    max_tries: int = 3
    train_per_job: int = 1
    poll_s: float = 1.0
    resume_command: str = ""
    is_written: Callable[[Node], dict[str, Any] | None] = lambda node: None  # meta of an entry this run wrote
    progress: bool | None = None
    results: dict[str, UnitInfo] = field(default_factory=dict)  # key -> who computed it
    setup_seconds: list[float] = field(default_factory=list)
    _flights: dict[str, Flight] = field(default_factory=dict)
    _free: list[int] = field(default_factory=list)
    _failed: int = 0
    _bar: Any = None

    def run(self) -> None:
        """Until every unit of the graph is computed (or the run has to stop)."""
        if not self._free and not self._flights:
            self._free = list(range(self.backend.slots))
        self._bar = tqdm(total=len(self.graph.todo()), desc="units", unit="unit", file=sys.stderr, leave=False,
                         disable=self.progress is False if self.progress is not None else None, dynamic_ncols=True)
        try:
            with signals_interrupt():
                self._loop()
        except BaseException:
            self.cancel_all()
            raise
        finally:
            self._bar.close()

    def _loop(self) -> None:
        while True:
            for nodes in plan_jobs(self.graph, len(self._free), self.backend.slots, self.train_per_job):
                self._submit(nodes)
            if not self._flights:
                left = self.graph.todo()
                if left:  # nothing runs and nothing can start: a unit waits for one that is not in the graph
                    raise BenchError(f"{len(left)} unit(s) wait for units no job computes (first: {left[0].name})",
                                     fix="report this as a bug, with the run's command line")
                return
            finished = [f for f in list(self._flights.values()) if f.job.done()]
            for flight in finished:
                self._finish(flight)
            self._show()
            if not finished:
                time.sleep(self.poll_s)

    def _submit(self, nodes: list[Node]) -> None:
        slot = self._free.pop(0)
        spec = self.make_spec(nodes, self.backend.worker_name(slot))
        job = self.backend.submit(run_job, spec, slot)
        for node in nodes:
            node.state = "running"
        self._flights[str(job.job_id)] = Flight(job, nodes, slot, time.time())
        log.info("job %s on %s: %s", job.job_id, self.backend.worker_name(slot), ", ".join(n.name for n in nodes))

    def _finish(self, flight: Flight) -> None:
        del self._flights[str(flight.job.job_id)]
        self._free.append(flight.slot)
        report, reason = _outcome(flight.job)
        reason = reason or "the job ended without writing it"
        if report is not None and report.error is not None:
            message, fix = report.error
            raise BenchError(message, fix=fix)
        if report is not None:
            self.setup_seconds.append(report.setup_seconds)
        reported = {u.key: u for u in (report.units if report else [])}
        worker = self.backend.worker_name(flight.slot)
        for node in flight.nodes:
            unit = reported.get(node.key)
            meta = None if unit else self.is_written(node)
            if unit is None and meta is None:
                self._retry(node, flight, reason)
                continue
            seconds = unit.seconds if unit else float(meta.get("seconds", 0.0))
            node.state = "done"
            self.results[node.key] = UnitInfo(stage=node.stage, key=node.key, label=node.label, worker=worker,
                                              seconds=seconds, cached=False, job=str(flight.job.job_id),
                                              attempts=node.tries + 1)
            self._bar.update(1)

    def _retry(self, node: Node, flight: Flight, reason: str) -> None:
        node.tries += 1
        self._failed += 1
        logs = _log_files(flight.job)
        if node.tries >= self.max_tries:
            raise BenchError(f"unit {node.name} (key {node.key[:12]}) was lost {node.tries} time(s); last job "
                             f"{flight.job.job_id}: {reason}; its log: {logs}",
                             fix=f"read the log, fix the cause, then resume (finished units are cached): "
                                 f"{self.resume_command}")
        log.warning("job %s ended without %s (%s); resubmitting it (try %d of %d); log: %s", flight.job.job_id,
                    node.name, reason, node.tries + 1, self.max_tries, logs)
        node.state = "todo"

    def _show(self) -> None:
        running = sum(len(f.nodes) for f in self._flights.values())
        self._bar.set_postfix_str(f"running {running} done {len(self.results)} failed {self._failed}",
                                  refresh=False)

    def cancel_all(self) -> None:
        for flight in list(self._flights.values()):
            with contextlib.suppress(Exception):
                flight.job.cancel(check=False)
            for node in flight.nodes:
                node.state = "todo"
        if self._flights:
            log.warning("cancelled %d job(s) in flight", len(self._flights))
        self._free += [f.slot for f in self._flights.values()]
        self._flights.clear()


def plan_jobs(graph: UnitGraph, free: int, slots: int, train_per_job: int = 1) -> list[list[Node]]:
    """Groups of ready units for up to `free` new jobs (see the module docstring)."""
    if free <= 0:
        return []
    ready = sorted(graph.ready(), key=lambda n: n.order)
    groups: list[list[Node]] = []
    trains = [n for n in ready if n.stage == "train"]
    groups += [trains[i:i + train_per_job] for i in range(0, len(trains), train_per_job)]
    groups += [[n] for n in ready if n.stage in LONG_STAGES and n.stage != "train"]
    for stage in dict.fromkeys(n.stage for n in ready if n.stage not in LONG_STAGES):
        bundles = _by_chunk(graph, [n for n in ready if n.stage == stage])
        size = math.ceil(len(bundles) / slots)
        groups += [[n for b in bundles[i:i + size] for n in b] for i in range(0, len(bundles), size)]
    waiting = graph.dependents()  # the groups that more units wait for go first (the critical path)
    groups = sorted(groups, key=lambda g: (-sum(waiting.get(n.key, 0) for n in g), g[0].order))[:free]
    claimed = {n.key for g in groups for n in g}
    for group in groups:
        _add_riders(graph, group, claimed)
    return groups


def _by_chunk(graph: UnitGraph, nodes: list[Node]) -> list[list[Node]]:
    """Edit units of one inversion chunk stay in one job: an engine that edits several settings together batches
    the missing settings of a chunk, so a job must hold the chunk's settings that an inline run batches (the
    batch's composition moves the floats). Other units go one by one."""
    if not nodes or nodes[0].stage != "edit":
        return [[n] for n in nodes]
    bundles: dict[tuple, list[Node]] = {}
    for n in nodes:
        chunk = tuple(d for d in n.deps if d in graph.nodes and graph.nodes[d].stage == "invert")
        bundles.setdefault(chunk or (n.key,), []).append(n)
    return list(bundles.values())


def _add_riders(graph: UnitGraph, group: list[Node], claimed: set[str]) -> None:
    inside = {n.key for n in group}
    for node in sorted(graph.todo(), key=lambda n: n.order):
        if node.stage not in RIDERS or node.key in claimed or not any(d in inside for d in node.deps):
            continue
        if all(d in inside or graph.satisfied(d) for d in node.deps):
            group.append(node)
            inside.add(node.key)
            claimed.add(node.key)


def _outcome(job) -> tuple[JobReport | None, str]:
    """The job's report, or None and why there is none (killed, timed out, raised)."""
    try:
        report = job.result()
    except Exception as exc:  # submitit: UncompletedJobError / FailedJobError, with the job's own traceback
        lines = [line for line in str(exc).splitlines() if line.strip()]
        return None, (lines[-1] if lines else type(exc).__name__)[:300]
    if not isinstance(report, JobReport):
        return None, f"the job returned {type(report).__name__}, not a report"
    return report, ""


def _log_files(job) -> str:
    try:
        return str(job.paths.stderr)
    except Exception:  # a job class without paths (never for submitit's own)
        return "(no log file)"


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM in the driver acts as Ctrl-C: the wait loop ends with KeyboardInterrupt (exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def written_meta(cache_root: Path, since: float) -> Callable[[Node], dict[str, Any] | None]:
    """`Driver.is_written`: the meta of `node`'s entry when this run wrote it (a job may write a unit and be
    lost before it reports)."""
    def check(node: Node) -> dict[str, Any] | None:
        meta_path = cache_root / node.stage / node.key / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta if float(meta.get("created", 0.0)) >= since else None
    return check
