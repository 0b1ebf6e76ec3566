"""The CI regression gate: a suite's scores committed as a baseline, and the check of a new run against it.

A baseline is made from two or more runs of the same suite and profile. It records every score (mean, CI, N), the
spread measured between the runs, and a tolerance per score, with its provenance (git sha, date, package
versions, device). A new run fails the check when a score leaves `baseline ± tolerance`; each violation names
the metric, the baseline value, the new value and the tolerance.

Tolerance of one score: max(`spread_factor` × the measured rerun spread, `ci_fraction` × the baseline's CI
half-width, `floor`). The rerun spread covers nondeterminism on the machine that made the baseline (0 when CPU
reruns are bit-identical); the CI term covers float differences on another machine (other SIMD paths in the
BLAS), which are far smaller than the sampling noise over the images, so a change of a tenth of the CI half-width
is one no statistical comparison could see yet any real code change (a changed loss, step, metric) shows up
as a larger one; the floor covers scores with no CI (a single number such as Δh = 0's max difference).

CPU numerics depend on the intra-op thread count (a reduction split over two threads adds in another order), and
a thread count's difference moves a 4-image ratio by more than a tenth of its CI. So a baseline is made with a
fixed thread count (`BASELINE_THREADS`, pinned while `baseline create` runs) and records it; a check of a run made
with another count is refused with the fix, never reported as a regression. CI runs the check with
`OMP_NUM_THREADS=1`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark.core.atomic import write_json
from benchmark.core.errors import BenchError
from benchmark.outputs.results import RunResult, load_results
from benchmark.outputs.run_folder import require_finished

BASELINE_SCHEMA = 1
BASELINE_THREADS = 1  # torch's intra-op threads for baseline runs and the runs checked against them


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TolerancePolicy(_Frozen):
    spread_factor: float = Field(default=3.0, ge=0)
    ci_fraction: float = Field(default=0.1, ge=0)
    floor: float = Field(default=1e-6, ge=0)


class BaselineScore(_Frozen):
    mean: float
    ci_low: float | None
    ci_high: float | None
    n: int
    spread: float  # max − min of the mean over the baseline's runs
    tolerance: float
    direction: str


class Provenance(_Frozen):
    git_sha: str | None
    git_dirty: bool | None
    created_at: str
    packages: dict[str, str]
    device: dict
    runs: list[str]  # the run folders it was made from (names only)
    bit_identical: bool  # every score equal in every run
    command: str


class Baseline(_Frozen):
    schema_version: int = BASELINE_SCHEMA
    suite: str
    profile: str | None
    threads: int | None = None  # the runs' intra-op thread count (None: a baseline from before it was recorded)
    policy: TolerancePolicy
    scores: dict[str, dict[str, BaselineScore]]  # attribute -> metric key -> score
    provenance: Provenance


class Violation(_Frozen):
    attribute: str
    metric: str
    baseline: float | None
    value: float | None
    tolerance: float | None

    def message(self) -> str:
        if self.value is None:
            return f"{self.attribute}/{self.metric}: missing from the new run (baseline {self.baseline:.6g})"
        if self.baseline is None:
            return f"{self.attribute}/{self.metric}: new score {self.value:.6g} has no baseline"
        return (f"{self.attribute}/{self.metric}: baseline {self.baseline:.6g}, new {self.value:.6g}, "
                f"|Δ| {abs(self.value - self.baseline):.3g} > tolerance {self.tolerance:.3g}")


def tolerance(policy: TolerancePolicy, spread: float, ci_low: float | None, ci_high: float | None) -> float:
    half = 0.0 if ci_low is None or ci_high is None else (ci_high - ci_low) / 2
    return max(policy.spread_factor * spread, policy.ci_fraction * half, policy.floor)


def make_baseline(results: Sequence[RunResult], *, run_names: Sequence[str], command: str,
                  policy: TolerancePolicy | None = None) -> Baseline:
    """A baseline from ≥ 2 runs of one suite and profile (the first run's values; the spread over all)."""
    policy = policy or TolerancePolicy()
    if len(results) < 2:
        raise BenchError(f"a baseline needs at least 2 runs to measure the rerun spread, got {len(results)}",
                         fix="pass --runs 2 (or more)")
    first = results[0]
    for r in results[1:]:
        if (r.suite, r.run.profile) != (first.suite, first.run.profile):
            raise BenchError("the runs are of different suites or profiles", fix="make a baseline from reruns")
    threads = {run_threads(r) for r in results}
    if len(threads) > 1:
        raise BenchError(f"the runs used different thread counts ({sorted(threads, key=str)})",
                         fix=f"rerun them with OMP_NUM_THREADS={BASELINE_THREADS}")
    scores: dict[str, dict[str, BaselineScore]] = {}
    identical = True
    for attr, per in first.metrics.items():
        for key, mv in per.items():
            means = [r.metrics.get(attr, {}).get(key) for r in results]
            if any(m is None for m in means):
                raise BenchError(f"{attr}/{key} is missing from one of the runs", fix="rerun with the same options")
            values = [m.mean for m in means]
            spread = max(values) - min(values)
            identical &= all(m == means[0] for m in means)
            scores.setdefault(attr, {})[key] = BaselineScore(
                mean=mv.mean, ci_low=mv.ci_low, ci_high=mv.ci_high, n=mv.n, spread=spread, direction=mv.direction,
                tolerance=tolerance(policy, spread, mv.ci_low, mv.ci_high))
    prov = Provenance(git_sha=first.run.git_sha, git_dirty=first.run.git_dirty,
                      created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                      packages=first.run.packages, device=first.run.device, runs=list(run_names),
                      bit_identical=identical, command=command)
    return Baseline(suite=first.suite, profile=first.run.profile, threads=run_threads(first), policy=policy,
                    scores=scores, provenance=prov)


def run_threads(result: RunResult) -> int | None:
    """The intra-op thread count a run recorded (`run.device.threads`; CPU runs only)."""
    threads = result.run.device.get("threads")
    return int(threads) if isinstance(threads, int) else None


@contextlib.contextmanager
def pinned_threads(n: int = BASELINE_THREADS) -> Iterator[None]:
    """torch's intra-op thread count fixed to `n` while the baseline's runs compute, the previous one after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def require_runs_of(results: Sequence[RunResult], run_names: Sequence[str], *, suite: str,
                    profile: str | None) -> None:
    """`baseline create --from-runs` names the suite and profile it means: refuse runs of anything else."""
    from benchmark.inputs.manifests import parse_ref

    name, version = parse_ref(suite, "suite")
    for result, run in zip(results, run_names, strict=True):
        got_name, got_version = parse_ref(result.suite)
        if got_name != name or (version is not None and got_version != version) or result.run.profile != profile:
            wanted = f"{suite} (profile {profile})" if profile else f"{suite} (no profile)"
            had = f"--suite {result.suite}" + (f" --profile {result.run.profile}" if result.run.profile else "")
            raise BenchError(f"--suite/--profile ask for a baseline of {wanted}, but {run} is a run of "
                             f"{result.suite} (profile {result.run.profile})",
                             fix=f"pass the options the runs were made with ({had}), or --from-runs of {wanted}")


def check_against(result: RunResult, baseline: Baseline) -> list[Violation]:
    """Every score that left its tolerance, or is missing from either side."""
    if (result.suite, result.run.profile) != (baseline.suite, baseline.profile):
        raise BenchError(f"the run is {result.suite} (profile {result.run.profile}), the baseline is for "
                         f"{baseline.suite} (profile {baseline.profile})", fix="compare runs of the same suite")
    if baseline.threads is not None and run_threads(result) not in (None, baseline.threads):
        raise BenchError(f"the run computed with {run_threads(result)} intra-op threads, the baseline with "
                         f"{baseline.threads}: CPU numerics depend on the thread count, so the scores are not "
                         "comparable", fix=f"rerun with OMP_NUM_THREADS={baseline.threads}")
    out = []
    for attr, per in baseline.scores.items():
        for key, b in per.items():
            mv = result.metrics.get(attr, {}).get(key)
            if mv is None:
                out.append(Violation(attribute=attr, metric=key, baseline=b.mean, value=None, tolerance=b.tolerance))
            elif not abs(mv.mean - b.mean) <= b.tolerance:
                out.append(Violation(attribute=attr, metric=key, baseline=b.mean, value=mv.mean,
                                     tolerance=b.tolerance))
    for attr, per in result.metrics.items():
        for key, mv in per.items():
            if key not in baseline.scores.get(attr, {}):
                out.append(Violation(attribute=attr, metric=key, baseline=None, value=mv.mean, tolerance=None))
    return out


def load_baseline(path: str | Path) -> Baseline:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"no baseline at {path}", fix="make one with `python run_all.py baseline create ...`")
    try:
        return Baseline.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, OSError) as exc:  # ValueError: not UTF-8
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        why = (f"{'.'.join(map(str, first['loc'])) or 'the document'}: {first['msg']}" if first else str(exc))
        raise BenchError(f"{path} is not a baseline file ({why})",
                         fix="pass --baseline with a file written by `python run_all.py baseline create` (e.g. "
                             "results/baselines/synthetic-quick.json)") from None


def refuse_existing(path: str | Path, *, overwrite: bool) -> None:
    """An existing baseline is replaced only on request, never silently."""
    if Path(path).exists() and not overwrite:
        raise BenchError(f"{path} exists; a baseline is never replaced silently",
                         fix="pass --overwrite to replace it (and commit the change with the reason), or pick "
                             "another --out")


def write_baseline(path: str | Path, baseline: Baseline, *, overwrite: bool = False) -> Path:
    """Write atomically; an existing baseline is replaced only with `overwrite`."""
    path = Path(path)
    refuse_existing(path, overwrite=overwrite)
    write_json(path, baseline.model_dump(mode="json"))
    return path


def results_of(run_dirs: Sequence[str | Path]) -> list[RunResult]:
    return [load_results(require_finished(d)) for d in run_dirs]
