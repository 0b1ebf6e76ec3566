"""The results file: one JSON per run, with a typed schema, plus per-image rows beside it.

Stable fields (outside tools read them; changing one means a new `schema_version`):

- `schema_version`; `suite` ("name@version");
- `run.git_sha` (+ `run.git_dirty`), `run.manifest_digests`, `run.weight_digests`, `run.seeds`, `run.packages`,
  `run.device`, `run.stage_seconds`, `run.started_at`, `run.ended_at`;
- `run.executor` (`{name, workers}`) and `run.units` (`{stage, key, worker, seconds, cached, ...}` per unit);
- `metrics[attribute][metric]` with `mean`, `ci_low`, `ci_high`, `n`, `spec` (and `std`, `variants`, `flags`);
- `gates`: a list of `{name, kind, value, band, passed}`; `kind` is `known_answer` (it can fail a run: `run --gate`)
  or `claim` (a paper's claim under test: `passed` says whether it holds in this world; it never fails a run).

A run folder is `<out>/<suite name>/<UTC time>-<short key>/` with `results.json`, `per_image.jsonl` and the report.
It is assembled in a temp folder and renamed into place, so a folder that exists is complete, and a new run
never overwrites an old one (`benchmark.outputs.run_folder`). Every file of a run folder is validated as it is read
back: a damaged one is a `BenchError` that names it (exit 2), never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark.core.bands import Band
from benchmark.core.errors import BenchError
from benchmark.core.paths import REPO_ROOT
from benchmark.outputs.run_folder import staging_exists, staging_path
from metrics.aggregate import Aggregate

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
PER_IMAGE_FILE = "per_image.jsonl"
TRAINING_FILE = "training.json"  # optional: the loss history of every f_t the run trained (for loss curves)

# Versions that can move a number; recorded in every result.
TRACKED_PACKAGES = ("torch", "torchvision", "diffusers", "open_clip_torch", "torch-fidelity", "insightface",
                    "onnxruntime", "transformers", "numpy", "scipy", "pillow", "lpips", "dlib-bin")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricValue(_Frozen):
    """One metric on one attribute: the primary aggregate, other reported forms of it, and its frozen spec."""

    mean: float
    ci_low: float | None
    ci_high: float | None
    n: int
    std: float | None = None
    direction: Literal["higher", "lower"]
    spec: dict[str, Any]
    variants: dict[str, Aggregate] = Field(default_factory=dict)
    flags: dict[str, list[str]] = Field(default_factory=dict)  # caveat code -> the image ids it applies to

    def value(self, variant: str | None = None) -> Aggregate:
        if variant is None:
            return Aggregate(mean=self.mean, ci_low=self.ci_low, ci_high=self.ci_high, n=self.n, std=self.std)
        try:
            return self.variants[variant]
        except KeyError:
            raise BenchError(f"metric has no variant {variant!r}; it has: {', '.join(self.variants) or 'none'}",
                             fix="fix the `variant` of the paper value or gate") from None


VerdictKind = Literal["known_answer", "claim"]
KNOWN_ANSWER: VerdictKind = "known_answer"
CLAIM: VerdictKind = "claim"


class Gate(_Frozen):
    """One verdict. A known answer passes or fails (and fails `run --gate`); a claim holds or does not hold."""

    name: str
    # Results written before verdicts had kinds: every gate could fail a run, as a known answer does now.
    kind: VerdictKind = KNOWN_ANSWER
    value: float | None  # None: the value could not be computed (the gate then fails)
    band: Band
    passed: bool

    @property
    def is_known_answer(self) -> bool:
        return self.kind == KNOWN_ANSWER


# Reference columns that carry a band but no value (benchmark.checks.known_answers): the synthetic world's known answers,
# and the paper's qualitative claims about h-space, measured on real faces.
KNOWN_ANSWER_COLUMN = "known-answer"
PAPER_CLAIM_COLUMN = "paper-claim"
BAND_ONLY_COLUMNS = (KNOWN_ANSWER_COLUMN, PAPER_CLAIM_COLUMN)


class ReferenceValue(_Frozen):
    """One cell a run is compared with; see `benchmark.outputs.gates`."""

    metric: str
    attribute: str  # the attribute's key in `metrics` (e.g. `smiling`, or `smiling_x0.5` for a Δh scale of 0.5)
    column: str
    value: float | None
    provenance: str = ""
    band: Band | None = None
    gated: bool = True  # False: the band is shown in tables only, with no verdict (e.g. an unknown scale)
    kind: VerdictKind = CLAIM  # a paper's or a study's value is a claim; a world's known answer says so
    band_rationale: str = ""
    variant: str | None = None  # None: the metric's primary value
    std: float | None = None
    n: int | None = None
    settings: dict[str, Any] = Field(default_factory=dict)

    def gate_name(self) -> str:
        variant = f"[{self.variant}]" if self.variant else ""
        return f"{self.metric}{variant}/{self.attribute} vs {self.column}"


class AttributeInfo(_Frozen):
    """What a report needs to know of an attribute without its manifest."""

    name: str  # the attribute manifest's name (several keys share it when the suite edits at several scales)
    domain: str  # "in-domain" or "unseen"
    source_prompt: str = ""
    target_prompt: str = ""
    delta_h_scale: float = 1.0


class ExecutorInfo(_Frozen):
    """Who computed a run's units: `inline` (the driver itself), `local` workers or `slurm` jobs."""

    name: str
    workers: int


class UnitInfo(_Frozen):
    """One unit of a run: which worker computed it (`cache` when it was served from the cache) and in how many
    seconds (0 for a cached one)."""

    stage: str
    key: str
    label: str = ""
    worker: str
    seconds: float
    cached: bool
    job: str | None = None  # the executor's job id, when a job computed it
    attempts: int = 1  # how many jobs it took (more than 1 after a worker was lost)


class RunInfo(_Frozen):
    git_sha: str | None
    git_dirty: bool | None
    manifest_digests: dict[str, str]
    weight_digests: dict[str, str] = Field(default_factory=dict)
    seeds: dict[str, int]
    packages: dict[str, str]
    device: dict[str, Any]
    stage_seconds: dict[str, float]
    started_at: str
    ended_at: str
    argv: list[str] = Field(default_factory=list)
    profile: str | None = None
    limit: int | None = None
    attributes: list[str] = Field(default_factory=list)
    cache: dict[str, dict[str, int]] = Field(default_factory=dict)  # stage -> {hits, misses}
    notes: list[str] = Field(default_factory=list)
    # how it computed: fast-path options (precision, TF32, ...), attribute batching, each f_t's training pass
    execution: dict[str, Any] = Field(default_factory=dict)
    executor: ExecutorInfo | None = None  # None: a result written before executors were recorded
    units: list[UnitInfo] = Field(default_factory=list)


class RunResult(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    suite: str
    not_for_reporting: bool = False
    run: RunInfo
    metrics: dict[str, dict[str, MetricValue]]
    gates: list[Gate] = Field(default_factory=list)
    per_image_file: str = PER_IMAGE_FILE
    attributes: dict[str, AttributeInfo] = Field(default_factory=dict)
    references: list[ReferenceValue] = Field(default_factory=list)
    grid_images: dict[str, dict[str, str]] = Field(default_factory=dict)  # image id -> column -> PNG (relative)

    def failed_gates(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def known_answers(self) -> list[Gate]:
        return [g for g in self.gates if g.kind == KNOWN_ANSWER]

    def claims(self) -> list[Gate]:
        return [g for g in self.gates if g.kind == CLAIM]

    def failed_known_answers(self) -> list[Gate]:
        """What `run --gate` fails on: a claim that does not hold is a finding, never a failed run."""
        return [g for g in self.known_answers() if not g.passed]


# -- identity of a run ----------------------------------------------------------------------------------------

def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def git_state(repo: Path = REPO_ROOT) -> tuple[str | None, bool | None]:
    """(sha, dirty) of the checkout; (None, None) outside a git checkout (e.g. an unpacked sdist)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True, timeout=20).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, check=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha, bool(status.strip())


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import platform

    out["python"] = platform.python_version()
    return out


# -- the run folder -------------------------------------------------------------------------------------------

def new_run_dir(out: Path, suite_name: str, short_key: str, *, now: dt.datetime | None = None) -> Path:
    """A fresh, not yet existing path `<out>/<suite>/<UTC time>-<short key>[-n]`; never an existing run."""
    now = now or dt.datetime.now(dt.UTC)
    base = out / suite_name / f"{now.strftime('%Y%m%dT%H%M%SZ')}-{short_key}"
    candidate, n = base, 1
    while candidate.exists() or staging_exists(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


class RunFolder:
    """Stage the files of a run in a hidden temp folder; `commit()` renames it into place in one step."""

    def __init__(self, final: Path):
        self.final = final
        self.staging = staging_path(final)
        self.staging.mkdir(parents=True, exist_ok=False)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self) -> Path:
        if self.final.exists():
            raise BenchError(f"refusing to overwrite the existing run {self.final}")
        os.replace(self.staging, self.final)
        return self.final


def write_results(folder: Path, result: RunResult, per_image: Iterable[Mapping[str, Any]]) -> None:
    """`results.json` and `per_image.jsonl` into `folder` (a staging folder; see `RunFolder`)."""
    from benchmark.core.atomic import atomic_open, write_text

    with atomic_open(folder / PER_IMAGE_FILE, "w", encoding="utf-8") as f:
        for row in per_image:
            f.write(json.dumps(row, allow_nan=False, sort_keys=True) + "\n")
    write_text(folder / RESULTS_FILE, result.model_dump_json(indent=2) + "\n")


def find_results_file(path: str | Path) -> Path:
    path = Path(path)
    candidate = path / RESULTS_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise BenchError(f"no {RESULTS_FILE} found at {path}",
                         fix="pass a run folder written by `run_all.py run` (it holds results.json)")
    return candidate


def load_results(path: str | Path) -> RunResult:
    """Read and validate a results file (or a run folder holding one)."""
    file = find_results_file(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise BenchError(f"{file} is not valid JSON: {exc}", fix="rerun the suite to regenerate it") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise BenchError(f"{file} has schema_version {version!r}; this version reads {SCHEMA_VERSION}",
                         fix="read it with the asyrp-bench version that wrote it, or rerun the suite")
    try:
        return RunResult.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BenchError(f"{file} does not match the results schema at {where}: {first['msg']}",
                         fix="rerun the suite to regenerate it") from None


PER_IMAGE_FIELDS = ("attribute", "metric", "id", "value")


def load_per_image(path: str | Path) -> list[dict[str, Any]]:
    file = find_results_file(path)
    rows_file = file.parent / PER_IMAGE_FILE
    if not rows_file.is_file():
        return []
    rows = []
    for n, line in enumerate(_read_text(rows_file).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise _damaged(rows_file, f"line {n} is not JSON ({exc})") from None
        if not isinstance(row, dict) or any(k not in row for k in PER_IMAGE_FIELDS):
            raise _damaged(rows_file, f"line {n} is not a row with {', '.join(PER_IMAGE_FIELDS)}")
        rows.append(row)
    return rows


def read_run_json(file: Path) -> Any:
    """A JSON file of a run folder; a damaged one is a `BenchError` naming it."""
    try:
        return json.loads(_read_text(file))
    except ValueError as exc:
        raise _damaged(file, f"not JSON ({exc})") from None


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(file, f"not UTF-8 text ({exc.reason})") from None


def _damaged(file: Path, why: str) -> BenchError:
    return BenchError(f"{file} is damaged: {why}",
                      fix="copy the run folder again from where it was made, or rerun the suite to regenerate it")


def write_training(folder: Path, histories: Mapping[str, Mapping[str, Any]]) -> None:
    """`training.json`: attribute key -> {"ft", "config", "t", "loss"} (one entry per optimiser step)."""
    from benchmark.core.atomic import write_text

    write_text(folder / TRAINING_FILE, json.dumps(dict(histories), allow_nan=False) + "\n")


def load_training(path: str | Path) -> dict[str, Any]:
    """The run's training histories, or {} for a run that trained nothing (or predates the file)."""
    file = find_results_file(path).parent / TRAINING_FILE
    if not file.is_file():
        return {}
    histories = read_run_json(file)
    if not isinstance(histories, dict):
        raise _damaged(file, "not an object of training histories")
    return histories
