"""What runs inside a worker: rebuild the plan, compute the units it was sent, report what it wrote.

A job carries no tensor and no model: only the recipe of the plan (what the user asked for, rebuilt by the worker
exactly as the driver built it), the cache root and the keys to compute. Inputs are read from the stage cache by
key, outputs written there with the cache's atomic writes under its per-key file lock; the report holds names,
keys and seconds.

SIGTERM (what SLURM sends before it kills or preempts a job) stops the unit in flight the way Ctrl-C does: the
cache removes its half-written entry, the lock is released, and the job ends as failed, so the driver resubmits
what it had not finished.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError
from benchmark.run.executors.graph import GraphRunner, UnitDone, compute_targets


@dataclass(frozen=True)
class JobSpec:
    recipe: Callable[[], Any]  # rebuilds the SuitePlan (benchmark.plan.recipe.PlanRecipe in a real run)
    cache_root: str  # the stage cache (absolute; every worker must see it)
    targets: tuple[str, ...]  # keys to compute, in pipeline order
    names: tuple[str, ...]  # their stage[label], for the log
    environment: dict[str, Any]  # the driver's: library versions and device type (part of every key)
    fresh: bool = False
    threads: int | None = None  # torch threads; the driver's count, so CPU numerics match an inline run
    worker: str = "worker"


@dataclass
class JobReport:
    worker: str
    job: str | None
    host: str
    units: list[UnitDone] = field(default_factory=list)
    error: tuple[str, str | None] | None = None  # a BenchError (message, fix): bad input, never retried
    setup_seconds: float = 0.0  # rebuilding the plan (imports, models): the per-job overhead


class WorkerStopped(Exception):
    """SIGTERM reached the worker."""


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """SIGTERM raises `WorkerStopped` (like SIGINT raises KeyboardInterrupt) while the job computes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise WorkerStopped(f"stopped by signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def job_id() -> str | None:
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except (ImportError, RuntimeError, KeyError):
        return None


def _log_to_stderr() -> None:
    """The job's log file (submitit captures stderr) gets the harness's INFO lines, "unit start ..." included."""
    root = logging.getLogger("benchmark")
    if not any(getattr(h, "_asyrp_worker", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._asyrp_worker = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def run_job(spec: JobSpec) -> JobReport:
    """The worker's entry point (what the executor pickles by reference and calls)."""
    _log_to_stderr()
    report = JobReport(spec.worker, job_id(), socket.gethostname())
    log = logging.getLogger("benchmark.run.executors")
    log.info("job %s on %s (pid %d): %s", report.job, report.host, os.getpid(), ", ".join(spec.names))
    with sigterm_stops():
        try:
            report.units = _compute(spec, report)
        except BenchError as exc:  # bad input: the same on every try, so the driver stops at once
            report.error = (exc.message, exc.fix)
    return report


def _compute(spec: JobSpec, report: JobReport) -> list[UnitDone]:
    import torch

    from benchmark.run.cache import StageCache
    from benchmark.run.runner import run_environment

    root = Path(spec.cache_root)
    if not root.is_dir():
        raise BenchError(f"worker {spec.worker} on {report.host} cannot see the stage cache at {root}",
                         fix="put ASYRP_CACHE on a filesystem every worker mounts at the same path")
    if spec.threads:
        torch.set_num_threads(spec.threads)
    start = time.perf_counter()
    plan = spec.recipe()
    environment = run_environment(plan)
    check_environment(spec.environment, environment, spec.worker)
    report.setup_seconds = round(time.perf_counter() - start, 3)
    runner = GraphRunner(StageCache(root), fresh=spec.fresh, environment=environment, targets=spec.targets)
    return compute_targets(plan, runner)


def check_environment(driver: dict[str, Any], worker: dict[str, Any], name: str) -> None:
    """Library versions and the device type are part of every key: a worker with others would compute other
    units (and write them under keys the driver never reads)."""
    differ = sorted(k for k in set(driver) | set(worker) if driver.get(k) != worker.get(k))
    if differ:
        what = ", ".join(f"{k}: driver {driver.get(k)!r}, worker {worker.get(k)!r}" for k in differ)
        raise BenchError(f"worker {name} does not have the driver's environment ({what})",
                         fix="install the same package versions on the workers, and run the driver where it "
                             "sees the workers' device type (e.g. inside an allocation with a GPU)")
