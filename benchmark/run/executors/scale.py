"""`scale_out`: compute every unit of a plan with an executor, so that `run_plan` afterwards finds them all in the
cache and only writes the run folder (and the report) in the driver.

The units are learnt by replaying the pipeline without computing (`graph.record`); the ones the cache lacks go out
as jobs (`driver.Driver`). Some units can only be met once others are computed (a check that reads a value before
it asks for its next experiment), so the replay repeats until it meets nothing new. The driver's own runner then
learns who computed what, for `run.units` in the results.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError
from benchmark.outputs.results import ExecutorInfo
from benchmark.run.executors.backends import Backend, make_backend
from benchmark.run.executors.config import ExecutorConfig
from benchmark.run.executors.driver import Driver, signals_interrupt, written_meta
from benchmark.run.executors.graph import GraphRunner, Node, UnitGraph, record
from benchmark.run.executors.job import JobSpec
from benchmark.run.executors.probe import probe, remove, reply_seen, write_token
from benchmark.run.runner import Runner

log = logging.getLogger("benchmark.run.executors")

MAX_ROUNDS = 20  # replays; each one after the first meets only units that waited for a value


def trainings_per_job(plan, config: ExecutorConfig) -> int:
    """All trainings in one job when the engine trains attributes in one pass: a worker then trains the pass an
    inline run trains (attribute batching is exact per attribute only up to float rounding across passes)."""
    if config.train_per_job is not None:
        return config.train_per_job
    return max(1, len(plan.attributes)) if getattr(plan.engine, "attribute_batching", False) else 1


def scale_out(plan, runner: Runner, config: ExecutorConfig, recipe: Callable[[], Any], *,
              resume_command: str = "", backend: Backend | None = None) -> UnitGraph:
    """Fill the cache with every unit of `plan` (see the module docstring); returns the unit graph."""
    import torch

    from benchmark.outputs.results import utc_now

    runner.started_at = runner.started_at or utc_now()
    cache_root = runner.cache.root
    cache_root.mkdir(parents=True, exist_ok=True)
    backend = backend or make_backend(config, job_folder(config, cache_root), visible_gpus(plan))
    check_workers_see(backend, cache_root, config.poll_s)
    threads = config.threads or torch.get_num_threads()
    started = time.time()
    graph = UnitGraph()

    def make_spec(nodes: list[Node], worker: str) -> JobSpec:
        return JobSpec(recipe=recipe, cache_root=str(cache_root), targets=tuple(n.key for n in nodes),
                       names=tuple(n.name for n in nodes), environment=dict(runner.environment),
                       fresh=runner.fresh, threads=threads, worker=worker)

    driver = Driver(graph, backend, make_spec, max_tries=config.max_tries, train_per_job=trainings_per_job(plan, config),
                    poll_s=config.poll_s, resume_command=resume_command,
                    is_written=written_meta(cache_root, started), progress=runner.progress)
    for _ in range(MAX_ROUNDS):
        record(plan, GraphRunner(runner.cache, fresh=runner.fresh, environment=runner.environment, graph=graph))
        if not graph.todo():
            break
        log.info("%d unit(s) to compute on %d %s worker(s), %d already cached", len(graph.todo()),
                 backend.slots, backend.name, graph.count("cached"))
        driver.run()
    if driver.setup_seconds:
        log.info("worker start-up (imports, plan): %.1f s on average over %d job(s)",
                 sum(driver.setup_seconds) / len(driver.setup_seconds), len(driver.setup_seconds))
    runner.executor = ExecutorInfo(name=backend.name, workers=backend.slots)
    runner.computed_elsewhere = dict(driver.results)
    runner.fresh = False  # what the workers wrote this run is what the run folder reads
    return graph


def job_folder(config: ExecutorConfig, cache_root: Path) -> Path:
    """Job pickles and logs: `log_dir`, else `<cache root>/executor/<UTC time>/` (on the shared filesystem)."""
    if config.log_dir is not None:
        return Path(config.log_dir).expanduser().resolve()
    return cache_root.parent / "executor" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def visible_gpus(plan) -> int:
    import torch

    if torch.device(plan.device).type != "cuda":
        return 0
    return torch.cuda.device_count()


def check_workers_see(backend: Backend, cache_root: Path, poll_s: float = 0.5) -> None:
    """The first job: a worker must see a token the driver wrote into the cache root, and the driver its reply."""
    token = write_token(cache_root)
    job = backend.submit(probe, str(token), 0)
    try:
        with signals_interrupt():
            while not job.done():
                time.sleep(poll_s)
        try:
            answer = job.result()
        except Exception as exc:  # submitit's job errors carry the worker's traceback
            raise BenchError(f"the first {backend.name} job (a check that workers see the cache) failed: "
                             f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
                             fix=f"read its log {job.paths.stderr}; the workers need this checkout's Python "
                                 "environment") from None
        if not answer.get("seen") or not reply_seen(token):
            raise BenchError(f"{backend.name} workers cannot see the cache root {cache_root} "
                             f"(the worker on {answer.get('host')} found no file the driver wrote there)",
                             fix="set ASYRP_CACHE to a folder on a filesystem every worker mounts at the same "
                                 "path (not /tmp or a node-local disk)")
    except BaseException:
        if not job.done():
            job.cancel(check=False)
        raise
    finally:
        remove(token)
