"""The quick synthetic suite on 2 local workers (submitit's LocalExecutor: real subprocesses) against an inline run
of the same plan: every score bit-identical, units computed by both workers, and a worker SIGKILLed in the middle of
a training replaced without changing a score. Four quick-profile runs in all (the killed run beside an inline run
of its own selection), each with one torch thread per process, so that the two workers share the CPU instead of
fighting over it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.core.paths import REPO_ROOT

pytest.importorskip("submitit")
QUICK = ["run", "--suite", "synthetic", "--profile", "quick", "--device", "cpu", "--json", "--out", "runs"]
LOCAL = ["--executor", "local", "--workers", "2"]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "ASYRP_CACHE": str(tmp / "cache"), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}


def _start(tmp: Path, *args: str) -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "run_all.py"), *QUICK, *args], cwd=tmp, env=_env(tmp),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(proc: subprocess.Popen, timeout: float = 3600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out)


@pytest.fixture(scope="module")
def inline(tmp_path_factory) -> dict:
    return _results(_start(tmp_path_factory.mktemp("inline")))


@pytest.mark.slow
def test_two_local_workers_give_the_inline_scores(inline, tmp_path):
    scaled = _results(_start(tmp_path, *LOCAL))
    assert scaled["metrics"] == inline["metrics"], "every score must be bit-identical to the inline run's"
    assert [g["passed"] for g in scaled["gates"]] == [g["passed"] for g in inline["gates"]]
    assert scaled["run"]["executor"] == {"name": "local", "workers": 2}
    assert inline["run"]["executor"] == {"name": "inline", "workers": 1}
    computed = [u for u in scaled["run"]["units"] if not u["cached"]]
    assert {u["stage"] for u in computed} >= {"invert", "train", "edit", "measure", "properties"}
    assert len({u["worker"] for u in computed}) >= 2, "units must be computed by at least two workers"
    assert {u["key"] for u in scaled["run"]["units"]} == {u["key"] for u in inline["run"]["units"]}


def _kill_first_training(tmp: Path, proc: subprocess.Popen, timeout: float = 1800) -> int:
    """SIGKILL the worker as soon as its log says it started a training; returns the pid killed."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for log in (tmp / "cache" / "executor").glob("*/*_log.err"):
            match = re.search(r"unit start train\[[^\]]+\] key=\w+ pid=(\d+)", log.read_text(errors="replace"))
            if match:
                pid = int(match.group(1))
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.5)
    raise AssertionError("no worker started a training")


@pytest.mark.slow
def test_a_worker_killed_mid_unit_leaves_the_scores_unchanged(tmp_path):
    """One attribute (half the quick suite): its scores, and those of plain DDIM, are those of an inline run of the
    same selection (not of the two-attribute run: attributes trained and edited together round differently)."""
    reference = _start(tmp_path / "inline", "--attributes", "synthetic-smiling")
    proc = _start(tmp_path / "scaled", *LOCAL, "--attributes", "synthetic-smiling")
    _kill_first_training(tmp_path / "scaled", proc)
    scaled, inline = _results(proc), _results(reference)
    for key in ("synthetic-smiling", "ddim"):
        assert scaled["metrics"][key] == inline["metrics"][key]
    retried = [u for u in scaled["run"]["units"] if u["attempts"] > 1]
    assert retried and retried[0]["stage"] == "train"
