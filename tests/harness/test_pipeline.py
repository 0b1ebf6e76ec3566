"""The stage pipeline with stand-in stage functions: results, resume from cache, invalidation, run folders."""

from __future__ import annotations

import json

import harness_standins as standins
import pytest

from benchmark.core.bands import Band
from benchmark.outputs.results import ReferenceValue, load_per_image, load_results
from benchmark.run.cache import StageCache
from benchmark.run.pipeline import run_plan
from benchmark.run.runner import Runner

# shift·127.5 = 25.2 and 50.2: every edited pixel is the original + 25 (+ 50), with no rounding ties.
SHIFTS = {"smiling": 25.2 / 127.5, "pixar": 50.2 / 127.5}


def _run(tmp_path, plan, fresh=False):
    runner = Runner(StageCache(tmp_path / "cache"), fresh=fresh, progress=False)
    return runner, run_plan(plan, runner, tmp_path / "runs", argv=["run", "--suite", "standin"])


def test_run_folder_holds_results_with_hand_computed_values(tmp_path):
    refs = [ReferenceValue(metric="shift", attribute="smiling", column="paper", value=0.1, provenance="hand",
                           band=Band(low=0.09, high=0.11)),
            ReferenceValue(metric="shift", attribute="pixar", column="paper", value=None, provenance="n/a"),
            ReferenceValue(metric="shift", attribute="pixar", column="reproduction-study", value=0.05,
                           band=Band(high=0.1), variant="negated")]
    _, run_dir = _run(tmp_path, standins.plan(shifts=SHIFTS, references=refs))
    result = load_results(run_dir)
    assert result.schema_version == 1 and result.suite == "standin@1" and not result.not_for_reporting
    smiling, pixar = result.metrics["smiling"]["shift"], result.metrics["pixar"]["shift"]
    assert smiling.mean == pytest.approx(25 / 255, abs=1e-12) and smiling.n == 6
    assert pixar.mean == pytest.approx(50 / 255, abs=1e-12)
    assert pixar.variants["negated"].mean == pytest.approx(-50 / 255, abs=1e-12)
    assert smiling.ci_low == pytest.approx(25 / 255) and smiling.ci_high == pytest.approx(25 / 255)
    gates = {g.name: g for g in result.gates}
    assert gates["shift/smiling vs paper"].passed
    assert gates["shift[negated]/pixar vs reproduction-study"].passed  # -0.196 ≤ 0.1
    assert len(gates) == 2  # the null ("not reported") value has no band and makes no gate
    assert set(result.run.stage_seconds) == {"invert", "train", "edit", "measure", "report"}
    assert result.run.seeds == {"global": 0, "bootstrap": 0} and "torch" in result.run.packages
    rows = load_per_image(run_dir)
    assert len(rows) == 2 * 6 and {r["metric"] for r in rows} == {"shift"}
    assert all(r["value"] == pytest.approx(25 / 255) for r in rows if r["attribute"] == "smiling")
    # Stable field names, read as plain JSON the way outside tools do.
    raw = json.loads((run_dir / "results.json").read_text())
    assert {"schema_version", "suite", "run", "metrics", "gates"} <= set(raw)
    assert {"git_sha", "manifest_digests", "seeds", "packages", "device", "stage_seconds"} <= set(raw["run"])
    assert {"mean", "ci_low", "ci_high", "n", "spec"} <= set(raw["metrics"]["smiling"]["shift"])
    assert set(raw["gates"][0]) == {"name", "kind", "value", "band", "passed"} and raw["gates"][0]["kind"] == "claim"
    assert (run_dir / "report" / "index.html").is_file()
    assert not list(run_dir.parent.glob(".*partial*"))


def test_second_run_is_all_cache_hits_and_a_new_folder(tmp_path):
    log = tmp_path / "computed.log"
    engine = standins.ShiftEngine(log_file=str(log))
    runner1, first = _run(tmp_path, standins.plan(shifts=SHIFTS, engine=engine))
    computed_once = log.read_text().splitlines()
    runner2, second = _run(tmp_path, standins.plan(shifts=SHIFTS, engine=engine))
    assert log.read_text().splitlines() == computed_once, "nothing may be recomputed"
    assert all(s.misses == 0 for s in runner2.stats.values())
    assert first != second and first.is_dir() and second.is_dir()
    assert load_results(first).metrics == load_results(second).metrics


def test_changed_setting_recomputes_only_what_depends_on_it(tmp_path):
    log = tmp_path / "computed.log"
    engine = standins.ShiftEngine(log_file=str(log))
    _run(tmp_path, standins.plan(shifts=SHIFTS, engine=engine))
    log.write_text("")
    runner, run_dir = _run(tmp_path, standins.plan(shifts={**SHIFTS, "smiling": 10.2 / 127.5}, engine=engine))
    assert sorted(line.split()[0] + " " + line.split()[1] for line in log.read_text().splitlines()) == [
        "edit smiling"] * 3 + ["train smiling"]  # one edit unit per inversion chunk (3 of 2 images)
    assert runner.stats["invert"].misses == 0 and runner.stats["measure"].misses == 1
    assert load_results(run_dir).metrics["smiling"]["shift"].mean == pytest.approx(10 / 255)


def test_fresh_recomputes_everything(tmp_path):
    _run(tmp_path, standins.plan(shifts=SHIFTS))
    runner, _ = _run(tmp_path, standins.plan(shifts=SHIFTS), fresh=True)
    assert all(s.hits == 0 for s in runner.stats.values())


def test_limit_is_marked_not_for_reporting(tmp_path):
    _, run_dir = _run(tmp_path, standins.plan(3, shifts=SHIFTS, limit=3))
    result = load_results(run_dir)
    assert result.not_for_reporting and result.run.limit == 3
    assert "NOT FOR REPORTING" in (run_dir / "report" / "tables" / "shift.md").read_text()


def test_each_delta_h_scale_is_its_own_edit_and_reuses_the_trained_ft(tmp_path):
    log = tmp_path / "computed.log"
    engine = standins.ShiftEngine(log_file=str(log))
    runner, run_dir = _run(tmp_path, standins.plan(shifts=SHIFTS, engine=engine, delta_h_scales=(1.0, 0.5)))
    result = load_results(run_dir)
    assert set(result.metrics) == {"smiling", "smiling_x0.5", "pixar", "pixar_x0.5"}
    # 0.5 · 25.2 = 12.6 → every pixel moves by 13.
    assert result.metrics["smiling_x0.5"]["shift"].mean == pytest.approx(13 / 255, abs=1e-12)
    assert result.attributes["smiling_x0.5"].delta_h_scale == 0.5
    assert result.attributes["smiling_x0.5"].name == "smiling"
    assert sum(line.startswith("train") for line in log.read_text().splitlines()) == 2  # once per attribute
    assert runner.stats["edit"].misses == 4 * 3  # (2 attributes × 2 scales) × 3 chunks of 2 images
