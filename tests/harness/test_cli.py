"""The CLI through real subprocesses: resume after SIGKILL and SIGINT, exit codes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.core.paths import REPO_ROOT

STANDIN = REPO_ROOT / "tests" / "harness_cli_standin.py"
N_INVERT_UNITS = 6 + 4  # test images + training images, one per chunk (batch size 1)


def _env(tmp_path, **extra):
    env = {**os.environ, "ASYRP_CACHE": str(tmp_path / "cache"), "TQDM_DISABLE": "1", **extra}
    return env


def _cli(tmp_path, *args, **env):
    return subprocess.run([sys.executable, str(STANDIN), *args], capture_output=True, text=True, timeout=240,
                          env=_env(tmp_path, **env), cwd=tmp_path)


def _complete_entries(tmp_path, stage):
    folder = tmp_path / "cache" / "stages" / stage
    return sorted(p.name for p in folder.glob("*") if (p / "meta.json").is_file()) if folder.is_dir() else []


def _wait_for_lines(path: Path, word: str, count: int, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and sum(w.startswith(word) for w in path.read_text().splitlines()) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the run to make progress")


def _child_signals(inherited_sigint):
    """What the child starts with, whatever this pytest inherited (a background shell ignores SIGINT): the
    default handlers, or an ignored SIGINT as a background shell would hand it down."""
    def setup():
        signal.signal(signal.SIGINT, inherited_sigint)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return setup


STOPS = {"SIGKILL": (signal.SIGKILL, signal.SIG_DFL, -signal.SIGKILL),
         "SIGINT": (signal.SIGINT, signal.SIG_DFL, 130),
         "SIGINT, ignored by inheritance": (signal.SIGINT, signal.SIG_IGN, 130),
         "SIGTERM": (signal.SIGTERM, signal.SIG_DFL, 143)}


@pytest.mark.slow
@pytest.mark.parametrize("stop", list(STOPS), ids=list(STOPS))
def test_killed_run_resumes_without_recomputing(tmp_path, stop):
    sig, inherited_sigint, expected_rc = STOPS[stop]
    log = tmp_path / "computed.log"
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, str(STANDIN), "run", "--suite", "standin", "--out", str(out)],
                            env=_env(tmp_path, STANDIN_SLEEP="0.4", STANDIN_LOG=str(log)), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_child_signals(inherited_sigint))
    _wait_for_lines(log, "invert", 4, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == expected_rc, stderr[-2000:]
    if sig != signal.SIGKILL:
        assert f"interrupted ({signal.Signals(sig).name})" in stderr and "run the same command again to resume" in stderr
        assert "Traceback" not in stderr
    assert not out.exists() or not any(out.rglob("results.json")), "an interrupted run leaves no results file"
    done_before = _complete_entries(tmp_path, "invert")
    assert 3 <= len(done_before) < N_INVERT_UNITS

    log.write_text("")
    rerun = _cli(tmp_path, "run", "--suite", "standin", "--out", str(out), STANDIN_LOG=str(log))
    assert rerun.returncode == 0, rerun.stderr
    recomputed = [w for w in log.read_text().splitlines() if w.startswith("invert")]
    assert len(recomputed) == N_INVERT_UNITS - len(done_before), "finished units must come from the cache"
    assert sum("cache hit invert[" in line for line in rerun.stderr.splitlines()) == len(done_before)
    assert len(_complete_entries(tmp_path, "invert")) == N_INVERT_UNITS
    assert not list((tmp_path / "cache").rglob(".tmp-*")), "leftover temp folders are cleaned up"
    results = list(out.rglob("results.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["metrics"]["smiling"]["shift"]["n"] == 6


def test_main_puts_the_callers_signal_handlers_back():
    """main() installs its stop handlers for the command only: an in-process caller keeps its own."""
    def mine(signum, frame):
        return None

    before = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["ls", "--json"]) == 0
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.slow
def test_json_output_gate_exit_code_and_limit_mark(tmp_path):
    proc = _cli(tmp_path, "--suite", "standin", "--json", "--gate", "--limit", "2", "--out", "runs",
                "--attributes", "smiling", "pixar")
    # pixar's shift is 50/255 ≈ 0.196, outside the stand-in's known-answer band [0.05, 0.15]: exit 1 with --gate ...
    assert proc.returncode == 1 and "gate failed" in proc.stderr and "shift/pixar vs known-answer" in proc.stderr
    assert "1 of 1 known answers failed" in proc.stderr and "smiling vs paper" not in proc.stderr
    payload = json.loads(proc.stdout)  # ... and stdout is still exactly one JSON document
    assert payload["schema_version"] == 1 and set(payload["metrics"]) == {"smiling", "pixar"}
    assert Path(payload["run_dir"]).is_dir() and payload["not_for_reporting"] is True
    assert [(g["kind"], g["passed"]) for g in payload["gates"]] == [("known_answer", False), ("claim", False)]
    assert "NOT FOR REPORTING" in proc.stderr


@pytest.mark.slow
def test_a_claim_that_does_not_hold_never_fails_the_gate(tmp_path):
    proc = _cli(tmp_path, "--suite", "standin", "--gate", "--limit", "2", "--out", "runs", "--attributes", "smiling")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "paper claims under test: 0 of 1 hold" in proc.stdout
    assert "does not hold in this world: shift/smiling vs paper" in proc.stdout


BAD_INPUT = {
    "unknown code suite": (["run", "--suite", "standn"], "Did you mean: standin"),
    "limit not a number": (["run", "--suite", "standin", "--limit", "ten"], "expected a whole number"),
    "unknown option": (["run", "--suite", "standin", "--fast"], "unrecognized arguments"),
    "output folder is a file": (["run", "--suite", "standin", "--out", "afile"], "cannot be written"),
    "output folder under a file": (["run", "--suite", "standin", "--out", "afile/sub"], "cannot be written"),
    "report of a folder with no results": (["report", "."], "no results.json"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_2_with_a_fix_and_no_partial_results(tmp_path, case):
    args, expected = BAD_INPUT[case]
    (tmp_path / "afile").write_text("a file, not a folder")
    proc = _cli(tmp_path, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert expected in proc.stderr
    assert "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 6
    assert not list(tmp_path.rglob("results.json")) and not list(tmp_path.rglob("*.partial*"))


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "python run_all.py run --suite paper-table" in text and "exit codes" in text


def test_bare_invocation_inserts_the_default_command(capsys):
    with pytest.raises(SystemExit):
        main(["--suite", "x", "--help"], default_command="run")
    assert "--attributes" in capsys.readouterr().out


def test_validate_fetch_and_lock_commands(tmp_path, fixtures, monkeypatch, capsys):
    monkeypatch.setenv("ASYRP_LOCK", str(tmp_path / "lock.json"))
    monkeypatch.setenv("ASYRP_WEIGHTS", str(tmp_path / "weights"))
    data = str(fixtures / "celebahq")
    tiny = ["--suite", "paper-table", "--profile", "tiny"]
    assert main(["validate", *tiny, "--device", "cpu", "--data", data, "--out", str(tmp_path / "runs")]) == 0
    assert "OK" in capsys.readouterr().out
    # without --data the tiny profile reads the shared fixtures, exactly where `run` finds them
    assert main(["validate", *tiny, "--device", "cpu", "--out", str(tmp_path / "runs")]) == 0
    capsys.readouterr()
    absent = str(tmp_path / "no-such-folder")
    assert main(["validate", *tiny, "--device", "cpu", "--data", absent, "--json"]) == 2  # listed with its fix
    report = json.loads(capsys.readouterr().out)
    assert [p["code"] for p in report["problems"] if p["severity"] == "error"] == ["data-missing"]
    assert "fix" in report["problems"][0] and "error" not in report["problems"][0]
    assert main(["fetch", *tiny]) == 0  # tiny random models: nothing to download
    assert "0 file(s) present and verified" in capsys.readouterr().out
    assert main(["fetch"]) == 2 and "fetch needs model names or --suite" in capsys.readouterr().err
    assert main(["lock", *tiny, "--data", data]) == 0
    assert "11 digest(s) already pinned or locked" in capsys.readouterr().out


@pytest.mark.parametrize(("given", "expected"), [(None, "FALSE"), ("TRUE", "TRUE")])
def test_the_cli_keeps_mkl_at_its_thread_count_unless_told_otherwise(given, expected):
    """MKL's dynamic threading changes float sums with the machine's load (docs/scale-out.md): the CLI turns it
    off before torch loads, in a fresh interpreter, and keeps a value the user set."""
    env = {k: v for k, v in os.environ.items() if k != "MKL_DYNAMIC"}
    if given is not None:
        env["MKL_DYNAMIC"] = given
    code = "import os, sys, benchmark.cli; print(os.environ['MKL_DYNAMIC'], 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=REPO_ROOT).stdout.split()
    assert out == [expected, "False"]
