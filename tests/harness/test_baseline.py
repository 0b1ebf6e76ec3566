"""The regression baseline: tolerances from the measured spread, violations that name the numbers, no silent
overwrite, and the CLI's exit codes."""

from __future__ import annotations

import pytest

from benchmark.checks import baseline as bl
from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.outputs.results import MetricValue, RunInfo, RunResult, write_results


def _result(values: dict[str, dict[str, tuple[float, float | None, float | None]]], profile="quick",
            threads=1) -> RunResult:
    info = RunInfo(git_sha="abc", git_dirty=False, manifest_digests={}, seeds={"global": 0}, packages={"torch": "x"},
                   device={"type": "cpu", "threads": threads}, stage_seconds={}, started_at="t0", ended_at="t1",
                   profile=profile)
    metrics = {a: {k: MetricValue(mean=m, ci_low=lo, ci_high=hi, n=10, direction="higher", spec={})
                   for k, (m, lo, hi) in per.items()} for a, per in values.items()}
    return RunResult(suite="synthetic@1", run=info, metrics=metrics)


BASE = {"smiling": {"sdir": (0.10, 0.08, 0.12), "target_shift": (0.40, 0.30, 0.50)},
        "ddim": {"zero_delta_max_abs": (0.0, None, None)}}


def test_identical_reruns_give_zero_spread_and_ci_based_tolerances():
    b = bl.make_baseline([_result(BASE), _result(BASE)], run_names=["a", "b"], command="test")
    assert b.provenance.bit_identical
    sdir = b.scores["smiling"]["sdir"]
    assert sdir.spread == 0.0 and sdir.tolerance == pytest.approx(0.1 * 0.02)  # a tenth of the CI half-width
    assert b.scores["smiling"]["target_shift"].tolerance == pytest.approx(0.1 * 0.10)
    assert b.scores["ddim"]["zero_delta_max_abs"].tolerance == 1e-6  # no CI: the floor


def test_measured_spread_widens_the_tolerance():
    moved = {**BASE, "smiling": {**BASE["smiling"], "sdir": (0.11, 0.09, 0.13)}}
    b = bl.make_baseline([_result(BASE), _result(moved)], run_names=["a", "b"], command="test")
    assert not b.provenance.bit_identical
    assert b.scores["smiling"]["sdir"].spread == pytest.approx(0.01)
    assert b.scores["smiling"]["sdir"].tolerance == pytest.approx(0.03)


def test_violations_name_metric_baseline_new_value_and_tolerance():
    b = bl.make_baseline([_result(BASE), _result(BASE)], run_names=["a", "b"], command="test")
    assert bl.check_against(_result(BASE), b) == []
    inside = {**BASE, "smiling": {**BASE["smiling"], "sdir": (0.1015, 0.08, 0.12)}}
    assert bl.check_against(_result(inside), b) == []
    outside = {**BASE, "smiling": {**BASE["smiling"], "sdir": (0.1025, 0.08, 0.12)}}
    (v,) = bl.check_against(_result(outside), b)
    assert (v.attribute, v.metric, v.baseline, v.value, v.tolerance) == ("smiling", "sdir", 0.10, 0.1025,
                                                                          pytest.approx(0.002))
    assert "smiling/sdir: baseline 0.1, new 0.1025" in v.message() and "tolerance 0.002" in v.message()
    missing = {"smiling": BASE["smiling"]}
    (v,) = bl.check_against(_result(missing), b)
    assert v.metric == "zero_delta_max_abs" and "missing" in v.message()
    with pytest.raises(BenchError, match="profile"):
        bl.check_against(_result(BASE, profile=None), b)


def test_a_baseline_needs_reruns_and_is_never_overwritten_silently(tmp_path):
    with pytest.raises(BenchError, match="at least 2 runs"):
        bl.make_baseline([_result(BASE)], run_names=["a"], command="test")
    b = bl.make_baseline([_result(BASE), _result(BASE)], run_names=["a", "b"], command="test")
    path = bl.write_baseline(tmp_path / "b.json", b)
    assert bl.load_baseline(path) == b
    with pytest.raises(BenchError, match="never replaced silently"):
        bl.write_baseline(path, b)
    bl.write_baseline(path, b, overwrite=True)


def test_cli_create_from_runs_and_check(tmp_path, capsys):
    runs = []
    for name, values in (("r1", BASE), ("r2", BASE)):
        (tmp_path / name).mkdir()
        write_results(tmp_path / name, _result(values), [])
        runs.append(str(tmp_path / name))
    out = tmp_path / "baseline.json"
    assert main(["baseline", "create", "--suite", "synthetic", "--profile", "quick", "--from-runs", *runs,
                 "--out", str(out)]) == 0
    assert "bit-identical: True" in capsys.readouterr().out
    # exists: refused (exit 2) without --overwrite
    assert main(["baseline", "create", "--suite", "synthetic", "--from-runs", *runs, "--out", str(out)]) == 2
    assert "never replaced silently" in capsys.readouterr().err
    assert main(["baseline", "check", runs[0], "--baseline", str(out)]) == 0
    (tmp_path / "r3").mkdir()
    write_results(tmp_path / "r3", _result({**BASE, "ddim": {"zero_delta_max_abs": (1e-3, None, None)}}), [])
    assert main(["baseline", "check", str(tmp_path / "r3"), "--baseline", str(out)]) == 1
    captured = capsys.readouterr()
    assert "REGRESSION ddim/zero_delta_max_abs: baseline 0, new 0.001" in captured.out


def test_the_thread_count_is_recorded_and_a_run_with_another_is_refused():
    """CPU numerics depend on the intra-op thread count: a check across counts would report noise as a regression."""
    b = bl.make_baseline([_result(BASE), _result(BASE)], run_names=["a", "b"], command="test")
    assert b.threads == 1
    assert bl.check_against(_result(BASE, threads=1), b) == []
    with pytest.raises(BenchError, match="2 intra-op threads, the baseline with 1") as err:
        bl.check_against(_result(BASE, threads=2), b)
    assert "OMP_NUM_THREADS=1" in err.value.fix
    with pytest.raises(BenchError, match="different thread counts"):
        bl.make_baseline([_result(BASE, threads=1), _result(BASE, threads=2)], run_names=["a", "b"], command="t")
    old = b.model_copy(update={"threads": None})  # a baseline from before the count was recorded
    assert bl.check_against(_result(BASE, threads=2), old) == []


def test_pinned_threads_fixes_the_count_and_puts_it_back():
    import torch

    before = torch.get_num_threads()
    with bl.pinned_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
