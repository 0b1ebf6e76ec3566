"""The engines that run jobs, all through submitit: its LocalExecutor (subprocesses on this machine) and its SLURM
executor. Nothing here schedules; it builds the submitit executor, the parameters each job asks for, and the checks
that must pass before anything is submitted.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError
from benchmark.run.executors.config import ExecutorConfig

SUBMITIT_PIN = "submitit==1.5.4"
#: Folders that are private to one machine on every cluster we know: a cache there is invisible to other nodes.
NODE_LOCAL_PREFIXES = ("/tmp", "/var/tmp", "/dev/shm", "/run")
NODE_LOCAL_FILESYSTEMS = ("tmpfs", "ramfs", "devtmpfs")


@dataclass
class Backend:
    """A submitit executor, how many jobs may be in flight (`slots`), and the parameters of a slot's job."""

    name: str
    executor: Any
    slots: int
    folder: Path
    slot_parameters: Callable[[int], dict[str, Any]] = field(default=lambda slot: {})

    def submit(self, fn: Callable[..., Any], arg: Any, slot: int):
        params = self.slot_parameters(slot)
        if params:
            self.executor.update_parameters(**params)
        return self.executor.submit(fn, arg)

    def worker_name(self, slot: int) -> str:
        return f"{self.name}-{slot}"


# -- checks before anything is submitted -----------------------------------------------------------------------

def preflight(config: ExecutorConfig, cache_root: Path) -> None:
    """Bad input for an executor stops here (exit 2), before the plan is built and long before a job is sent."""
    if config.executor == "inline":
        return
    if importlib.util.find_spec("submitit") is None:
        raise BenchError(f"--executor {config.executor} needs submitit, which is not installed",
                         fix=f"pip install {SUBMITIT_PIN} (a dependency of asyrp-bench), or use --executor inline")
    if config.executor != "slurm":
        return
    reason = node_local_reason(cache_root)
    if reason and not config.slurm.assume_shared_cache:
        raise BenchError(f"the cache root {cache_root} is not on a filesystem the SLURM jobs can see ({reason})",
                         fix="set ASYRP_CACHE to a folder on a shared filesystem (home, NFS, Lustre, GPFS) that "
                             "every node mounts at the same path; on a one-node cluster set "
                             "`slurm: {assume_shared_cache: true}` in --executor-config")
    if shutil.which("sbatch") is None:
        raise BenchError("--executor slurm needs SLURM's `sbatch`, which is not on PATH",
                         fix="run the driver on a SLURM login node (or load the slurm module), or use "
                             "--executor local on one machine")


def node_local_reason(path: Path) -> str | None:
    """Why `path` is private to this machine (under /tmp, on a tmpfs, ...), or None."""
    path = Path(path).resolve()
    for prefix in NODE_LOCAL_PREFIXES:
        if path == Path(prefix) or Path(prefix) in path.parents:
            return f"it is under {prefix}, which is local to each node"
    fs = mount_type(path)
    if fs in NODE_LOCAL_FILESYSTEMS:
        return f"it is on a {fs}, which lives in one node's memory"
    return None


def mount_type(path: Path) -> str | None:
    """The filesystem type of the mount that holds `path` (Linux /proc/mounts), or None when unknown."""
    try:
        lines = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


# -- the executors -----------------------------------------------------------------------------------------------

def local_backend(config: ExecutorConfig, folder: Path, n_gpus: int) -> Backend:
    """Workers as subprocesses (submitit's LocalExecutor); with GPUs, one visible device per worker."""
    import submitit

    executor = submitit.LocalExecutor(folder)
    executor.update_parameters(timeout_min=config.timeout_min, gpus_per_node=0)
    workers = config.resolved_workers(n_gpus)

    def per_slot(slot: int) -> dict[str, Any]:
        # CUDA_VISIBLE_DEVICES is set by submitit from these; no GPU: an empty list, so none is visible
        return {"visible_gpus": (slot % n_gpus,), "gpus_per_node": 1} if n_gpus else {}

    return Backend("local", executor, workers, folder, per_slot)


def slurm_parameters(config: ExecutorConfig) -> dict[str, Any]:
    """The parameters of every SLURM job, named as submitit's SLURM executor names them (`time`, `partition`,
    `gpus_per_node`, `additional_parameters`, ...)."""
    s = config.slurm
    params: dict[str, Any] = {"job_name": "asyrp-bench", "time": s.time_min, "nodes": 1, "ntasks_per_node": 1,
                              "gpus_per_node": s.gpus_per_job, "signal_delay_s": 120}
    optional = {"partition": s.partition, "account": s.account, "qos": s.qos, "cpus_per_task": s.cpus_per_job,
                "mem": f"{s.mem_gb:g}GB" if s.mem_gb else None, "setup": list(s.setup) or None,
                "additional_parameters": dict(s.additional) or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def slurm_backend(config: ExecutorConfig, folder: Path, *, cluster: str = "slurm") -> Backend:
    """One SLURM job per submitted group of units. `cluster="debug"` runs the same executor setup through
    submitit's in-process debug executor (the tests' way to run the SLURM path without a cluster)."""
    import submitit

    executor = submitit.AutoExecutor(folder, cluster=cluster, slurm_max_num_timeout=config.max_tries)
    executor.update_parameters(**{f"slurm_{k}": v for k, v in slurm_parameters(config).items()})
    return Backend("slurm" if cluster == "slurm" else cluster, executor, config.resolved_workers(0), folder)


def make_backend(config: ExecutorConfig, folder: Path, n_gpus: int) -> Backend:
    if config.executor == "local":
        return local_backend(config, folder, n_gpus)
    if config.executor == "slurm":
        return slurm_backend(config, folder)
    raise ValueError(f"no backend for executor {config.executor!r}")
