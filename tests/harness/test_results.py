"""The results file: schema validation on read, run folders that never overwrite, writability checks."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from benchmark.core.bands import Band
from benchmark.core.errors import BenchError
from benchmark.outputs.gates import evaluate_gates
from benchmark.outputs.results import (
    MetricValue,
    ReferenceValue,
    RunFolder,
    load_results,
    new_run_dir,
)


def test_run_dirs_are_unique_even_within_one_second(tmp_path):
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    first = new_run_dir(tmp_path, "suite", "abcd1234", now=now)
    assert first.name == "20260102T030405Z-abcd1234"
    with RunFolder(first) as folder:
        (folder.staging / "results.json").write_text("{}")
        folder.commit()
    second = new_run_dir(tmp_path, "suite", "abcd1234", now=now)
    assert second != first and second.name == "20260102T030405Z-abcd1234-2"


def test_failed_run_leaves_no_folder_and_commit_never_overwrites(tmp_path):
    target = tmp_path / "suite" / "run"
    with pytest.raises(RuntimeError), RunFolder(target) as folder:
        (folder.staging / "results.json").write_text("{}")
        raise RuntimeError("crash mid-run")
    assert not target.exists() and not list(target.parent.iterdir())
    target.mkdir(parents=True)
    folder = RunFolder(target)
    with pytest.raises(BenchError, match="refusing to overwrite"):
        folder.commit()


def test_load_results_names_what_is_wrong(tmp_path):
    f = tmp_path / "results.json"
    f.write_text("{not json")
    with pytest.raises(BenchError, match="not valid JSON"):
        load_results(f)
    f.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(BenchError, match="schema_version 99"):
        load_results(tmp_path)
    f.write_text(json.dumps({"schema_version": 1, "suite": "x@1", "metrics": {}}))
    with pytest.raises(BenchError, match="does not match the results schema at run"):
        load_results(f)
    with pytest.raises(BenchError, match="no results.json"):
        load_results(tmp_path / "elsewhere")


def test_check_writable(tmp_path):
    from benchmark.core.paths import check_writable_dir as check_writable

    check_writable(tmp_path / "new" / "folder")
    assert not (tmp_path / "new").exists()  # checked, never created: bad input leaves no empty folder
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BenchError, match="cannot be written") as exc:
        check_writable(blocker / "sub")
    assert "--out" in exc.value.fix


def test_gates_follow_bands_variants_and_the_gating_flag():
    mv = MetricValue(mean=0.05, ci_low=0.04, ci_high=0.06, n=100, direction="higher", spec={},
                     variants={"one_minus_cos": {"mean": 0.95, "ci_low": 0.94, "ci_high": 0.96, "n": 100}})
    metrics = {"smiling": {"sdir": mv}}
    refs = [ReferenceValue(metric="sdir", attribute="smiling", column="paper", value=0.921,
                           band=Band(low=0.8), gated=False),
            ReferenceValue(metric="sdir", attribute="smiling", column="reproduction-study", value=0.955,
                           band=Band(low=0.9, high=1.0), variant="one_minus_cos"),
            ReferenceValue(metric="sdir", attribute="smiling", column="baseline", value=0.06,
                           band=Band(low=0.055)),
            ReferenceValue(metric="sdir", attribute="sad", column="paper", value=0.9, band=Band(low=0.0))]
    gates = evaluate_gates(metrics, refs)
    assert [(g.name, g.value, g.passed) for g in gates] == [
        ("sdir[one_minus_cos]/smiling vs reproduction-study", 0.95, True),
        ("sdir/smiling vs baseline", 0.05, False),
    ]
    with pytest.raises(BenchError, match="no variant 'nope'"):
        mv.value("nope")
    assert Band(low=1.0, high=2.0).contains(1.0) and Band(low=1.0, high=2.0).contains(2.0)
    assert not Band(high=2.0).contains(2.0001) and Band(high=2.0).describe() == "≤ 2"
