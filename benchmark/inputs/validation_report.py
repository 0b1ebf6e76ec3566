"""What `validate` found: one `Problem` per problem (code, subject, message, fix, severity), collected in a
`ValidationReport` with what was checked and what the checks resolved (suite, lock, device, weights, curves), which
the planner reuses instead of resolving again."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from benchmark.core.errors import BenchError
from benchmark.inputs.lock import LockFile
from benchmark.inputs.manifests import ResolvedSuite

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing that would stop (error) or weaken (warning) a run, and how to fix it."""

    code: str
    severity: Severity
    subject: str
    message: str
    fix: str
    error: BenchError | None = field(default=None, compare=False, repr=False)  # what `run` raises for it

    def __str__(self) -> str:
        return f"[{self.severity}] {self.subject}: {self.message}\n  fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "error"}


@dataclass
class ValidationReport:
    suite: str
    profile: str | None
    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    manifest_digests: dict[str, str] = field(default_factory=dict)
    # What the checks established, for the planner to build on (not part of the printed report).
    resolved: ResolvedSuite | None = field(default=None, repr=False)
    lock: LockFile | None = field(default=None, repr=False)
    device: Any = field(default=None, repr=False)
    weights: Any = field(default=None, repr=False)
    curves: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2

    def add(self, code: str, subject: str, message: str, fix: str, severity: Severity = "error",
            error: BenchError | None = None) -> None:
        self.problems.append(Problem(code, severity, subject, message, fix, error))

    def add_error(self, code: str, subject: str, err: BenchError, severity: Severity = "error") -> None:
        self.add(code, subject, err.message, err.fix or "see the message", severity, err)

    def raise_first(self) -> None:
        """Raise the first error as the exception `run` stops with (a `BenchError`, exit 2)."""
        for p in self.problems:
            if p.severity == "error":
                raise p.error if p.error is not None else BenchError(p.message, fix=p.fix)

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "profile": self.profile, "ok": self.ok, "checked": self.checked,
                "problems": [p.to_dict() for p in self.problems], "manifest_digests": self.manifest_digests}

    def render(self) -> str:
        head = f"validate {self.suite}" + (f" (profile {self.profile})" if self.profile else "")
        if not self.problems:
            return f"{head}: OK ({', '.join(self.checked)} checked)"
        n_err = sum(p.severity == "error" for p in self.problems)
        lines = [f"{head}: {n_err} error(s), {len(self.problems) - n_err} warning(s)"]
        return "\n".join(lines + [str(p) for p in self.problems])
