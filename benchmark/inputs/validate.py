"""`validate`: resolve a suite and check everything a run needs, without computing anything.

Every problem is collected (never just the first) as a `Problem` record with a code, the subject it concerns, a
message and the fix; the CLI prints them (or `--json`) and exits 2 when any is an error. Checks, in order:
manifests (all of them parse; the suite resolves; metric names are registered), data (present, complete, digests
match the manifest or lock), weights (present and matching, else the `fetch` command), device, disk space and
whether the output folder can be written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmark.core.errors import BenchError, DataError, DigestMismatchError
from benchmark.core.paths import cache_dir
from benchmark.inputs.fetch import fetch_command, free_bytes, missing_weights
from benchmark.inputs.lock import LockFile
from benchmark.inputs.manifests import ManifestRegistry, ResolutionErrors, ResolvedSuite, resolve_suite

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing that would stop (error) or weaken (warning) a run, and how to fix it."""

    code: str
    severity: Severity
    subject: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.subject}: {self.message}\n  fix: {self.fix}"


@dataclass
class ValidationReport:
    suite: str
    profile: str | None
    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    manifest_digests: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2

    def add(self, code: str, subject: str, message: str, fix: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(code, severity, subject, message, fix))

    def add_error(self, code: str, subject: str, err: BenchError, severity: Severity = "error") -> None:
        self.add(code, subject, err.message, err.fix or "see the message", severity)

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "profile": self.profile, "ok": self.ok, "checked": self.checked,
                "problems": [asdict(p) for p in self.problems], "manifest_digests": self.manifest_digests}

    def render(self) -> str:
        head = f"validate {self.suite}" + (f" (profile {self.profile})" if self.profile else "")
        if not self.problems:
            return f"{head}: OK ({', '.join(self.checked)} checked)"
        n_err = sum(p.severity == "error" for p in self.problems)
        lines = [f"{head}: {n_err} error(s), {len(self.problems) - n_err} warning(s)"]
        return "\n".join(lines + [str(p) for p in self.problems])


def validate_suite(suite: str, *, profile: str | None = None, data_root: str | Path | None = None,
                   train_data_root: str | Path | None = None, distribution: str | None = None,
                   weights_root: str | Path | None = None, out_dir: str | Path | None = None,
                   device: str = "auto", lock: LockFile | None = None,
                   registry: ManifestRegistry | None = None, known_metrics: Iterable[str] | None = None,
                   verify_digests: bool = True) -> ValidationReport:
    """Check everything a run of `suite` needs; return all problems found (see the module docstring)."""
    report = ValidationReport(suite, profile)
    registry = registry or ManifestRegistry()
    for err in registry.errors:
        report.add_error("manifest-invalid", "manifests", err)
    report.checked.append("manifests")
    try:
        resolved = resolve_suite(suite, profile=profile, registry=registry, known_metrics=known_metrics)
    except ResolutionErrors as e:
        for p in e.problems:
            report.add_error("reference-unknown", f"suite {suite}", p)
        resolved = e.partial  # go on with what resolved, so one run of validate lists everything
    except BenchError as e:
        report.add_error("suite-unknown", "suite", e)
        return report
    report.suite = resolved.ref
    report.manifest_digests = resolved.manifest_digests()
    try:
        lock = lock if lock is not None else LockFile.load()
    except BenchError as e:
        report.add_error("lock-invalid", "lock file", e)
        lock = None
    if resolved.dataset is not None:
        _check_dataset(report, resolved.dataset, data_root, distribution, lock, verify_digests, "dataset", "--data")
    if resolved.train_dataset is not None and resolved.train_dataset.ref != getattr(resolved.dataset, "ref", None):
        _check_dataset(report, resolved.train_dataset, train_data_root, None, lock, verify_digests,
                       "train dataset", "--train-data")
    _check_weights(report, resolved, weights_root, lock, verify_digests)
    _check_device(report, resolved, device)
    _check_disk(report, resolved, weights_root, out_dir)
    _check_out_dir(report, out_dir)
    return report


def _check_dataset(report: ValidationReport, ds, root, distribution, lock, verify, label, flag) -> None:
    from benchmark.inputs.data import read_verified

    report.checked.append(label)
    m = ds.manifest
    subject = f"{label} {ds.ref}"
    if not m.pinned:
        report.add("dataset-unpinned", subject,
                   f"the manifest defines the membership by a rule only ({m.selection.rule}); no source available "
                   "to this project lists it, so it is taken from your copy on first use and recorded in the lock "
                   "file (docs/data.md)",
                   "with the StyleMapGAN raw images, run `python scripts/make_celebahq_manifests.py --raw PATH` to "
                   "pin it, or let the first run lock it", severity="warning")
    if root is None and any(d == "in-repo" for d in m.distributions):
        from benchmark.core.paths import REPO_ROOT

        root = REPO_ROOT  # shipped with the code (the synthetic world's splits), as `run` finds it
    if root is None:
        report.add("data-missing", subject, "no data folder was given",
                   f"pass {flag} PATH (a folder, zip or LMDB of one of: {', '.join(m.distributions)}; "
                   "docs/data.md says where to get them)")
        return
    if not verify:
        if not Path(root).exists():
            report.add("data-missing", subject, f"{root} does not exist", "pass the folder that holds the dataset")
        return
    try:
        _, _, _, _, states = read_verified(m, root, distribution=distribution, lock=lock, record=False)
    except DigestMismatchError as e:
        report.add_error("data-digest", subject, e)
        return
    except DataError as e:
        report.add_error("data-missing", subject, e)
        return
    unknown = [i for i, s in states.items() if s == "unknown"]
    if unknown:
        report.add("data-unlocked", subject,
                   f"{len(unknown)} of {len(states)} images have no pinned or locked digest yet (e.g. {unknown[0]})",
                   "run `python run_all.py lock --suite ...` (or any run) to record them; later runs check them",
                   severity="warning")


def _check_weights(report: ValidationReport, resolved: ResolvedSuite, root, lock, verify) -> None:
    report.checked.append("weights")
    weights = missing_weights(resolved, root=Path(root) if root else None, lock=lock, verify=verify)
    for f in weights.files:
        subject = f"model {f.model}"
        if f.state == "missing":
            report.add("weights-missing", subject, f"{f.path} is missing",
                       f"run `{fetch_command([f.model])}` (or `{fetch_command(suite=resolved.suite.name, profile=resolved.profile)}`)")
        elif f.state == "mismatch":
            report.add("weights-digest", subject, f"{f.path} has sha256 {f.actual}, expected {f.expected}",
                       f"delete it and run `{fetch_command([f.model])}`")
        elif f.state == "unverified":
            report.add("weights-unlocked", subject, f"{f.path} has no pinned or locked digest yet",
                       "run `python run_all.py lock --suite ...` to record it", severity="warning")


def _check_device(report: ValidationReport, resolved: ResolvedSuite, device: str) -> None:
    import torch

    report.checked.append("device")
    wants_cuda = device == "cuda" or str(device).startswith("cuda:")
    if (resolved.suite.requires == "cuda" and device != "cpu") or wants_cuda:
        if not torch.cuda.is_available():
            tiny = "tiny" in resolved.suite.profiles or "tiny" in (resolved.profile or "")
            report.add("device-no-cuda", f"suite {resolved.ref}",
                       "this suite needs a CUDA GPU and torch sees none",
                       "run it on a GPU machine" + (", or use `--profile tiny` for a CPU wiring check" if tiny else ""))
    elif resolved.suite.requires == "cuda" and device == "cpu":
        report.add("device-cpu", f"suite {resolved.ref}", "this suite is meant for a GPU; on the CPU it takes days",
                   "use a GPU, or a profile that allows the CPU", severity="warning")


def _check_disk(report: ValidationReport, resolved: ResolvedSuite, weights_root, out_dir) -> None:
    report.checked.append("disk")
    need = int(resolved.suite.resources.disk_gb * 1e9)
    for r in resolved.models().values():
        need += sum(f.size or 0 for f in r.manifest.files)
    where = Path(out_dir) if out_dir else cache_dir()
    free = free_bytes(where)
    if free < need:
        report.add("disk-space", str(where), f"{free / 1e9:.1f} GB free, the suite needs about {need / 1e9:.1f} GB "
                   "(weights, cache and outputs)", "free disk space or point ASYRP_CACHE / --out elsewhere")


def _check_out_dir(report: ValidationReport, out_dir) -> None:
    report.checked.append("output folder")
    if out_dir is None:
        return
    path = Path(out_dir)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        report.add("out-not-writable", str(path), f"{probe} is not a writable folder",
                   "pass --out to a folder you can write to")
        return
    if probe == path:
        try:  # access() can be wrong (e.g. read-only mounts, root on some file systems): really try
            with tempfile.NamedTemporaryFile(dir=path, prefix=".asyrp-write-test-"):
                pass
        except OSError as e:
            report.add("out-not-writable", str(path), f"cannot create files there ({e.strerror})",
                       "pass --out to a folder you can write to")
