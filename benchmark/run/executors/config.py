"""The executor's settings: from `run` flags and an optional YAML profile (`--executor-config FILE`).

The file is read with `yaml.safe_load` and validated by pydantic with unknown keys refused (as the manifests are),
so a typo such as `partiton:` stops the run before anything is submitted, with did-you-mean. Flags win over the
file. Example (docs/scale-out.md has more):

```yaml
workers: 5              # jobs in flight at once
max_tries: 3            # a unit whose job is lost this often stops the run (exit 2)
slurm:
  partition: gpu
  account: my-project
  time_min: 240
  gpus_per_job: 1
  cpus_per_job: 8
  mem_gb: 64
  setup: ["module load cuda/12.4"]
  additional: {constraint: a100}   # any other sbatch option, as submitit passes it
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark.core.errors import BenchError
from benchmark.core.registry import suggest

EXECUTOR_NAMES = ("inline", "local", "slurm")
CONFIG_DOC = "docs/scale-out.md"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlurmOptions(_Strict):
    """What each SLURM job asks for. `additional` goes to submitit's `additional_parameters` (`#SBATCH --k=v`)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = Field(240, ge=1)
    gpus_per_job: int = Field(1, ge=0)
    cpus_per_job: int | None = Field(None, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    setup: list[str] = Field(default_factory=list)  # shell lines before the job starts (module load ...)
    additional: dict[str, Any] = Field(default_factory=dict)
    #: the cache root lies under /tmp or on a tmpfs but every job sees it anyway (a one-node cluster)
    assume_shared_cache: bool = False


class ExecutorConfig(_Strict):
    executor: Literal["inline", "local", "slurm"] = "inline"
    workers: int | None = Field(None, ge=1)  # None: 2 local workers (one per GPU when there are several), 8 jobs
    max_tries: int = Field(3, ge=1)
    timeout_min: float = Field(24 * 60, gt=0)  # a local job running longer is stopped and its units retried
    threads: int | None = Field(None, ge=1)  # torch threads per worker; None: the driver's (bit-identical results)
    # trainings one job holds; None: all of them when the engine trains attributes together (so a job trains the
    # pass an inline run would, bit for bit), else one per job
    train_per_job: int | None = Field(None, ge=1)
    log_dir: Path | None = None  # job scripts and logs; None: <cache root>/executor/<run>/
    poll_s: float = Field(1.0, gt=0)
    slurm: SlurmOptions = Field(default_factory=SlurmOptions)

    def resolved_workers(self, n_gpus: int) -> int:
        if self.workers is not None:
            return self.workers
        if self.executor == "slurm":
            return 8
        return n_gpus if n_gpus > 1 else 2


def load_executor_config(path: str | Path) -> dict[str, Any]:
    """The YAML profile as a validated dict (keys the file sets only, so flags can override them)."""
    from benchmark.inputs.manifests.io import parse_yaml

    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read the executor config {path}: {exc.strerror or exc}",
                         fix="pass --executor-config with a readable YAML file") from None
    doc = parse_yaml(text, path)
    _validate(doc, str(path))
    return doc


def build_config(file_doc: dict[str, Any] | None, flags: dict[str, Any]) -> ExecutorConfig:
    """Flags (those given, not None) over the file's keys over the defaults."""
    doc = dict(file_doc or {})
    slurm = dict(doc.get("slurm") or {})
    for key, value in flags.items():
        if value is None:
            continue
        if key.startswith("slurm_"):
            slurm[key.removeprefix("slurm_")] = value
        else:
            doc[key] = value
    if slurm:
        doc["slurm"] = slurm
    config = _validate(doc, "the executor flags")
    if config.executor == "inline" and (config.workers or 1) > 1:
        raise BenchError(f"--workers {config.workers} needs an executor that runs workers",
                         fix="add --executor local (this machine) or --executor slurm")
    return config


def _validate(doc: dict[str, Any], where: str) -> ExecutorConfig:
    try:
        return ExecutorConfig.model_validate(doc)
    except ValidationError as err:
        raise BenchError(f"{where}: not a valid executor config:\n" + "\n".join(_describe(e) for e in err.errors()),
                         fix=f"correct the keys listed above; {CONFIG_DOC} lists every key") from None


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(str(p) for p in error["loc"])
    where = ".".join(loc) or "(top level)"
    if error["type"] != "extra_forbidden":
        return f"  - {where}: {error['msg']} (got {error.get('input')!r})"
    model = SlurmOptions if loc[:1] == ("slurm",) else ExecutorConfig
    hint = suggest(loc[-1], list(model.model_fields))
    return f"  - {where}: unknown key" + (f" (did you mean {hint[0]}?)" if hint else "") + \
        f"; known: {', '.join(model.model_fields)}"
