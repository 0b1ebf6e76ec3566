"""`python run_all.py rehearse --suite NAME`: the real user's journey against forgeries, start to finish.

Forge (or reuse) the suite's weight files in their release formats and a CelebA-HQ stand-in, serve them from a
mirror on 127.0.0.1, then run `fetch`, `validate` and `run --profile smoke` as the user would, each in its own
process with the rehearsal's environment. One line per stage: its wall time and the peak memory of its process.
It succeeds only when every stage exits 0 and the run folder is complete; the mirror is stopped and the temporary
tree removed unless `--keep DIR`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.core.paths import REPO_ROOT

RUN_FOLDER_FILES = ("results.json", "per_image.jsonl", "report/index.html")


@dataclass
class StageLine:
    name: str
    seconds: float
    peak_mb: float | None
    ok: bool
    detail: str = ""

    def render(self) -> str:
        memory = f"{self.peak_mb:8.0f} MB" if self.peak_mb is not None else "       - MB"
        return f"{'ok ' if self.ok else 'FAIL'} {self.name:<14} {self.seconds:8.1f} s {memory}  {self.detail}".rstrip()


@dataclass
class RehearsalReport:
    suite: str
    lines: list[StageLine] = field(default_factory=list)
    run_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.lines) and all(line.ok for line in self.lines)


def run_child(argv: Sequence[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """(exit code, seconds, peak resident MB) of one `run_all.py` command; its output goes to `log`."""
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "run_all.py"), *argv], env=env, cwd=REPO_ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its peak memory, not ours
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024.0


def complete_run_folder(runs: Path) -> tuple[Path | None, list[str]]:
    """The run folder written under `runs`, and the files it lacks (a run that exits 0 but writes a partial
    folder fails the rehearsal)."""
    found = sorted(p.parent for p in runs.rglob("results.json") if not p.parent.name.startswith("."))
    if not found:
        return None, list(RUN_FOLDER_FILES)
    folder = found[-1]
    return folder, [f for f in RUN_FOLDER_FILES if not (folder / f).is_file()]


def rehearse(suite: str, *, device: str = "cpu", keep: Path | None = None, seed: int = 0,
             attributes: Sequence[str] | None = None, echo: Callable[[str], None] = print) -> RehearsalReport:
    from benchmark.rehearsal.api import prepare_rehearsal

    workdir = Path(keep).expanduser() if keep is not None else Path(tempfile.mkdtemp(prefix="asyrp-rehearsal-"))
    report = RehearsalReport(suite)
    try:
        started = time.perf_counter()
        rehearsal = prepare_rehearsal(workdir, suites=[suite], seed=seed)
        for name, seconds in rehearsal.seconds.items():
            report.lines.append(StageLine(name.replace("_", " "), seconds, None, True))
            echo(report.lines[-1].render())
        with rehearsal:
            env = {**os.environ, **rehearsal.env()}
            for argv in rehearsal.journey(suite, device=device, attributes=attributes):
                line = _journey_step(argv, env, workdir)
                report.lines.append(line)
                echo(line.render())
                if not line.ok:
                    break
        if report.ok:
            report.run_dir, missing = complete_run_folder(workdir / "runs")
            report.lines.append(StageLine("run folder", 0.0, None, not missing,
                                          f"missing: {', '.join(missing)}" if missing else str(report.run_dir)))
            echo(report.lines[-1].render())
        echo(f"{'rehearsal passed' if report.ok else 'rehearsal FAILED'}: {suite} in "
             f"{time.perf_counter() - started:.0f} s" + (f"; kept in {workdir}" if keep else ""))
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _journey_step(argv: list[str], env: dict[str, str], workdir: Path) -> StageLine:
    name = argv[0]
    log = workdir / f"{name}.log"
    code, seconds, peak = run_child(argv, env, log)
    detail = f"log {log}" if code else ""
    if code == 0 and name == "run":
        detail = _run_stage_times(workdir / "runs")
    return StageLine(name, seconds, peak, code == 0, detail or (f"exit {code}" if code else ""))


def _run_stage_times(runs: Path) -> str:
    """The run's own stage timings (results.json `run.stage_seconds`), for the `run` line."""
    import json

    folder, _ = complete_run_folder(runs)
    if folder is None or not (folder / "results.json").is_file():
        return ""
    seconds = json.loads((folder / "results.json").read_text(encoding="utf-8")).get("run", {}).get(
        "stage_seconds", {})
    return " ".join(f"{k} {v:.0f}s" for k, v in seconds.items())

