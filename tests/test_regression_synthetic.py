"""The CI regression gate (issue #5 item 7): the synthetic suite's quick profile, run from scratch, must reproduce
the committed baseline's scores within their tolerances (results/baselines/synthetic-quick.json). A failure names
the metric, the baseline value, the new value and the tolerance. Regenerate the baseline only on purpose:
`python run_all.py baseline create --suite synthetic --profile quick --out results/baselines/synthetic-quick.json
--overwrite`, and say why in the commit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "results" / "baselines" / "synthetic-quick.json"


def _run_all(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASYRP_CACHE": str(tmp_path / "cache"), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], capture_output=True, text=True,
                          timeout=900, env=env, cwd=tmp_path)


@pytest.mark.slow
def test_quick_profile_reproduces_the_committed_baseline(tmp_path):
    assert BASELINE.is_file(), f"no committed baseline at {BASELINE}; see this module's docstring"
    run = _run_all(tmp_path, "run", "--suite", "synthetic", "--profile", "quick", "--device", "cpu", "--json",
                   "--out", "runs")
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = json.loads(run.stdout)["run_dir"]
    check = _run_all(tmp_path, "baseline", "check", run_dir, "--baseline", str(BASELINE))
    assert check.returncode == 0, "scores left their baseline tolerance:\n" + check.stdout + check.stderr[-2000:]
