"""End to end through the real CLI in a subprocess, with the real stages, models and metrics on tiny models:
the default command (the demo until `synthetic` lands) and the paper-table suite definition under its `tiny`
profile on the shared fixture images, h-space properties included, and the blog figures made from that run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.core.paths import REPO_ROOT
from benchmark.outputs.figures import make_figures

pytest.importorskip("models", reason="needs the Asyrp core (models/), not in this checkout")
pytest.importorskip("metrics", reason="needs the metrics package, not in this checkout")

REPO = REPO_ROOT
STAGES = {"invert", "train", "edit", "measure", "report"}


def _run(tmp_path, *args, timeout=900):
    env = {**os.environ, "ASYRP_CACHE": str(tmp_path / "cache"), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tmp_path)


@pytest.mark.slow
def test_bare_run_all_runs_the_demo_through_every_stage_and_resumes(tmp_path):
    from benchmark.inputs.manifests import ManifestRegistry
    from benchmark.plan.suite import default_suite

    if default_suite(ManifestRegistry()) != "demo":  # decided before running: the full synthetic suite takes minutes
        pytest.skip("the default suite is now `synthetic`; its own tests cover it")
    first = _run(tmp_path, "--json", "--out", "runs")
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout)
    assert result["suite"] in ("demo@1", "synthetic@1")
    if result["suite"] != "demo@1":
        pytest.skip("the default suite is now `synthetic`; its own tests cover it")
    assert any("DEMO" in note and "meaningless" in note for note in result["run"]["notes"])
    assert set(result["run"]["stage_seconds"]) == STAGES
    assert set(result["metrics"]) == {"smiling", "pixar"}
    for per_metric in result["metrics"].values():
        assert set(per_metric) == {"sdir", "sc", "kid"}
        assert all(m["n"] == 6 for m in per_metric.values())
    assert (Path(result["run_dir"]) / "report" / "index.html").is_file()
    # Run it again: every unit comes from the cache, into a new run folder with the same numbers.
    second = _run(tmp_path, "--json", "--out", "runs")
    again = json.loads(second.stdout)
    assert all(s["misses"] == 0 for s in again["run"]["cache"].values())
    assert again["run_dir"] != result["run_dir"] and again["metrics"] == result["metrics"]


@pytest.fixture(scope="module")
def tiny_paper_table(tmp_path_factory, fixtures):
    """One run of the paper-table suite's `tiny` profile on two fixture faces, shared by the tests below (each
    such run takes minutes on the CI machine)."""
    folder = tmp_path_factory.mktemp("tiny-paper-table")
    proc = _run(folder, "run", "--suite", "paper-table", "--profile", "tiny", "--device", "cpu",
                "--attributes", "smiling", "tanned", "pixar", "--limit", "2", "--json", "--out", "runs", timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_paper_table_tiny_profile_end_to_end(tiny_paper_table):
    result = tiny_paper_table
    assert result["suite"] == "paper-table@1" and result["not_for_reporting"] is True
    assert result["run"]["profile"] == "tiny"
    assert "suite:paper-table@1" in result["run"]["manifest_digests"]
    assert "paper_values:paper-table@1" in result["run"]["manifest_digests"]
    # both Δh scales of each attribute, the combination of the two in-domain ones, the plain-DDIM checks
    assert set(result["metrics"]) == {"smiling", "smiling_x0.5", "tanned", "tanned_x0.5", "pixar", "pixar_x0.5",
                                      "smiling+tanned", "ddim"}
    sdir = result["metrics"]["smiling"]["sdir"]
    assert sdir["n"] == 2 and "one_minus_cos" in sdir["variants"]
    assert sdir["variants"]["one_minus_cos"]["mean"] == pytest.approx(1 - sdir["mean"], abs=1e-9)
    # The paper and reproduction-study values travel with the result (null stays "not reported").
    refs = {(r["metric"], r["attribute"], r["column"]): r for r in result["references"]}
    assert refs[("sdir", "smiling", "paper")]["value"] == pytest.approx(0.921)
    md = (Path(result["run_dir"]) / "report" / "tables" / "sdir.md").read_text()
    assert "S_dir scale caveat" in md and "NOT FOR REPORTING" in md
    # h-space properties on real faces: measured by CLIP projection, reported against the paper's claims; only
    # Δh = 0 (a property of the code) gates.
    claims = {(r["metric"], r["attribute"]): r for r in result["references"] if r["column"] == "paper-claim"}
    assert {("linearity_r2", "smiling"), ("homogeneity_factor", "smiling"), ("target_shift", "smiling"),
            ("consistency_global_shift_ratio", "smiling"), ("zero_delta_max_abs", "ddim")} <= set(claims)
    known = [g["name"] for g in result["gates"] if g["kind"] == "known_answer"]
    assert known == ["zero_delta_max_abs/ddim vs paper-claim"]  # every other check is a claim: it never fails a run
    assert {g["name"]: g["passed"] for g in result["gates"]}["zero_delta_max_abs/ddim vs paper-claim"] is True
    linearity = result["metrics"]["smiling"]["linearity_r2"]
    assert linearity["spec"]["metric"] == "paper-claim:linearity_r2" and linearity["n"] == 2
    assert (Path(result["run_dir"]) / "properties.json").is_file()


@pytest.mark.slow
def test_a_tiny_paper_table_run_keeps_its_label_maps_and_gives_every_figure(tiny_paper_table, tmp_path):
    """The real pipeline (paper-table, tiny profile): the run keeps the parser's label maps of its grid images, and
    they are the maps SC measured (their pixel agreement is each image's SC); then every blog figure and Table 2
    is made."""
    run = Path(tiny_paper_table["run_dir"])
    seg = json.loads((run / "segmentation.json").read_text())["sc"]
    assert seg["reference"] == "reconstruction" and len(seg["classes"]) == 19
    first = next(iter(seg["maps"]))
    assert set(seg["maps"][first]) == {"original", "reconstruction", "smiling", "smiling_x0.5", "tanned",
                                       "tanned_x0.5", "pixar", "pixar_x0.5"}
    rows = [json.loads(line) for line in (run / "per_image.jsonl").read_text().splitlines()]
    for image_id, maps in seg["maps"].items():
        reference = np.asarray(Image.open(run / maps["reconstruction"]))
        for edit in ("smiling", "tanned", "pixar"):
            agreement = float((np.asarray(Image.open(run / maps[edit])) == reference).mean())
            sc = next(r["value"] for r in rows if (r["attribute"], r["metric"], r["id"]) == (edit, "sc", image_id))
            assert agreement == pytest.approx(sc, abs=1e-6), (image_id, edit)
    made = make_figures(run, tmp_path / "blog", "png")
    assert not made.skipped, made.lines()
