"""The dress rehearsal of paper-table through the real CLI: forged weights in their release formats at full size,
served on 127.0.0.1, then `fetch → validate → run --profile smoke` in their own processes. It proves formats,
shapes, loaders and wiring at full size, never the real weights' values (docs/rehearsal.md)."""

import os
import subprocess
import sys

import pytest

from benchmark.core.paths import REPO_ROOT


@pytest.mark.slow
def test_rehearse_paper_table_end_to_end(tmp_path):
    env = {**os.environ, "ASYRP_CACHE": os.environ.get("ASYRP_CACHE", str(tmp_path / "cache"))}
    keep = tmp_path / "rehearsal"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), "rehearse", "--suite", "paper-table",
                           "--keep", str(keep)], capture_output=True, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    stages = [line.split()[1] for line in lines if line.startswith("ok ")]
    assert {"fetch", "validate", "run"} <= set(stages), proc.stdout
    assert any(line.startswith("ok ") and " MB" in line and "run " in line for line in lines)
    assert "rehearsal passed: paper-table" in proc.stdout
    run_dirs = list((keep / "runs").rglob("results.json"))
    assert len(run_dirs) == 1 and (run_dirs[0].parent / "report" / "index.html").is_file()
    # the forgeries' digests are what the run recorded; the shipped manifests would refuse them
    assert '"sdedit-celebahq@1/celeba_hq.ckpt"' in run_dirs[0].read_text(encoding="utf-8")


def test_rehearse_refuses_an_unknown_suite_before_forging_anything(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), "rehearse", "--suite", "papertable",
                           "--keep", str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Did you mean: paper-table" in proc.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
