"""Known-answer checks wired through a real run (the demo's tiny random models) with a hand-checkable measure:
values land in results, references, gates and the report; an impossible band fails the run's gate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.checks.gate import KnownAnswerGates
from benchmark.checks.known_answers import CHECKS
from benchmark.checks.measure import CallableMeasure
from benchmark.inputs.manifests import KnownAnswers
from benchmark.outputs.results import load_results
from benchmark.plan.request import RunRequest
from benchmark.run.cache import StageCache
from benchmark.run.pipeline import PROPERTIES_FILE, run_plan
from benchmark.run.runner import Runner

pytest.importorskip("models")
pytest.importorskip("metrics")


def _mean_colour(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.mean(dim=(2, 3))


MEASURE = CallableMeasure(_mean_colour, ("red", "green", "blue"), {"red": (-1.0, 1.0), "green": (-1.0, 1.0),
                                                                  "blue": (-1.0, 1.0)}, "mean-colour")


def _band(lower=None, upper=None):
    return {"lower": lower, "upper": upper, "rationale": "test"}


SPEC = {
    "measure": "unused@1", "n_images": 3, "figure_images": 2,
    "targets": {"smiling": {"factor": "red"}, "pixar": {"factor": "blue", "sign": -1}},
    "combination": ["smiling", "pixar"], "combination_coefficients": [0.0, 1.0], "t_edit_sweep": [500, 300],
    "checks": [
        {"check": "reconstruction_psnr", "kind": "known_answer", "band": _band(lower=-1000.0)},
        {"check": "zero_delta_exact", "kind": "known_answer", "band": _band(upper=1e-6)},
        # impossible: must fail
        {"check": "target_shift", "attribute": "smiling", "kind": "known_answer", "band": _band(lower=1e9)},
        {"check": "non_target_shift", "attribute": "smiling", "kind": "claim", "band": _band(upper=-1.0)},  # never holds
        {"check": "linearity_r2", "attribute": "smiling", "kind": "claim", "band": _band(lower=-1e9)},
        {"check": "linearity_monotone", "attribute": "smiling", "kind": "claim", "band": _band()},  # open: reported
        {"check": "homogeneity", "attribute": "smiling", "options": {"space": "pixel"}, "kind": "claim",
         "band": _band(lower=-1.0)},
        {"check": "timestep_consistency", "attribute": "smiling", "options": {"variant": "global"}, "kind": "claim",
         "band": _band(upper=1e9)},
        {"check": "combination_additivity", "kind": "claim", "band": _band(upper=1e9)},
        {"check": "sdir_ci_low", "attribute": "smiling", "kind": "known_answer", "band": _band(lower=-1.0)},
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    from benchmark.plan.demo import build_demo

    tmp = tmp_path_factory.mktemp("ka")
    plan = build_demo(RunRequest(suite="demo"))
    plan.extra_gates = [KnownAnswerGates(KnownAnswers(**SPEC), MEASURE)]
    runner = Runner(StageCache(tmp / "cache"), progress=False)
    run_dir = run_plan(plan, runner, tmp / "runs")
    return plan, runner, run_dir, load_results(run_dir)


def test_every_check_is_registered_and_reported(run):
    plan, _, _, result = run
    assert {c["check"] for c in SPEC["checks"]} <= set(CHECKS.names())
    keys = {(a, k) for a, per in result.metrics.items() for k, v in per.items()
            if v.spec.get("metric", "").startswith("known-answer:")}
    assert keys == {("ddim", "recon_psnr_db"), ("ddim", "zero_delta_max_abs"), ("smiling", "target_shift"),
                    ("smiling", "non_target_shift"), ("smiling", "linearity_r2"), ("smiling", "linearity_monotone"),
                    ("smiling", "homogeneity_pixel"), ("smiling", "consistency_global_relative_distance"),
                    ("smiling+pixar", "combination_additivity_error"), ("smiling", "sdir_ci_low")}
    gates = {g.name: g for g in result.gates}
    assert not gates["target_shift/smiling vs known-answer"].passed  # the impossible band fails
    assert gates["zero_delta_max_abs/ddim vs known-answer"].passed  # Δh = 0 is plain DDIM
    assert {g.name.split(" ")[0] for g in result.known_answers()} == {
        "recon_psnr_db/ddim", "zero_delta_max_abs/ddim", "target_shift/smiling", "sdir_ci_low/smiling"}
    claim = gates["non_target_shift/smiling vs known-answer"]
    assert claim.kind == "claim" and not claim.passed  # a claim that does not hold is a verdict ...
    assert [g.name for g in result.failed_known_answers()] == ["target_shift/smiling vs known-answer"]  # ... not a failure
    assert "linearity_monotone/smiling vs known-answer" not in gates  # an open band: the value, no verdict
    assert not any("not gated" in n for n in result.run.notes)  # verdicts are no longer run notes
    assert all(r.column == "known-answer" for r in result.references)


def test_values_match_independent_computations(run):
    """PSNR (numpy formula, not skimage) and the target shift, recomputed from a fresh inversion and edit."""
    from benchmark.core.images import from_uint8, to_uint8

    plan, runner, _, result = run
    engine = plan.engine
    x0 = torch.stack([it.pixels for it in plan.images])
    with torch.no_grad():
        inv = engine.invert(from_uint8(x0), with_reference=False)
    rec = to_uint8(inv["reconstruction"])
    mse = ((x0.double() - rec.double()) ** 2).mean(dim=(1, 2, 3)).numpy()
    assert result.metrics["ddim"]["recon_psnr_db"].mean == pytest.approx(np.mean(10 * np.log10(255**2 / mse)))
    smiling = next(a for a in plan.attributes if a.name == "smiling")
    ft_entry = runner.cache.load("train", runner_key(runner, "smiling"))
    edited = to_uint8(engine.edit(smiling, ft_entry.output.tensors, inv["x_T"], ids=[it.id for it in plan.images]))
    red = lambda u8: from_uint8(u8)[:, 0].mean(dim=(1, 2)).double().numpy()  # noqa: E731
    assert result.metrics["smiling"]["target_shift"].mean == pytest.approx(np.mean(red(edited) - red(rec)))
    assert result.metrics["smiling"]["sdir_ci_low"].mean == result.metrics["smiling"]["sdir"].ci_low
    assert result.metrics["ddim"]["zero_delta_max_abs"].mean <= 1e-6


def runner_key(runner, label):
    """The cache key of the unit `label` of the train stage (from the run's cache folder)."""
    for meta in (runner.cache.root / "train").glob("*/meta.json"):
        data = json.loads(meta.read_text())
        spec = data.get("spec", {})
        if spec.get("attribute", "").split("@")[0] == label and spec.get("ft") == "conv":
            return data["key"]
    raise AssertionError(f"no cached train unit {label}")


def test_psnr_check_equals_a_hand_computation():
    class Ctx:
        def originals(self):
            return torch.full((2, 3, 4, 4), 100, dtype=torch.uint8)

        def reconstructions(self):
            out = torch.full((2, 3, 4, 4), 100, dtype=torch.uint8)
            out[0] += 1  # MSE 1 -> 48.13 dB
            out[1] += 10  # MSE 100 -> 28.13 dB
            return out

        def seed(self):
            return 0

    value = CHECKS.get("reconstruction_psnr")(Ctx(), None).value
    expected = [10 * np.log10(255**2 / 1), 10 * np.log10(255**2 / 100)]
    assert value.mean == pytest.approx(np.mean(expected))


def test_properties_file_and_report_figures(run):
    _, _, run_dir, result = run
    props = json.loads((run_dir / PROPERTIES_FILE).read_text())
    assert {"linearity/smiling", "consistency/smiling", "combination", "t_edit_sweep/smiling"} <= set(props["curves"])
    grid = props["grids"]["linearity_smiling"]
    assert grid["cols"] == ["-1", "-0.5", "0", "0.5", "1"] and len(grid["cells"]) == 2
    assert all((run_dir / c).is_file() for row in grid["cells"] for c in row)
    html = (run_dir / "report" / "index.html").read_text()
    assert 'id="table-known_answers"' in html and 'id="table-claims"' in html
    known = (run_dir / "report" / "tables" / "known_answers.md").read_text()
    assert "target_shift" in known and "FAIL" in known and "Paper" not in known  # band and verdict, no empty column
    claims = (run_dir / "report" / "tables" / "claims.md").read_text()
    assert "does not hold in this world" in claims and "reported (no band)" in claims
    figs = {p.name for p in (run_dir / "report" / "figures").glob("*.png")}
    assert {"property_linearity_curves.png", "property_t_edit_sweep.png", "property_homogeneity.png",
            "property_consistency_relative_distance.png", "property_linearity_smiling.png"} <= figs


def test_rerun_is_all_cache_hits(run, tmp_path):
    plan, runner, _, result = run
    again = Runner(runner.cache, progress=False)
    run_dir = run_plan(plan, again, tmp_path / "runs2")
    assert again.stats["properties"].misses == 0
    second = load_results(run_dir)
    assert second.metrics == result.metrics


def test_a_change_of_the_property_code_invalidates_every_property_unit(run, tmp_path, monkeypatch):
    """The engine's spec carries its own "code" (the models package); it must not mask the property code's."""
    from benchmark.checks import context

    plan, runner, _, _ = run
    monkeypatch.setattr(context, "property_code_digest", lambda: "another version of the property code")
    again = Runner(runner.cache, progress=False)
    run_plan(plan, again, tmp_path / "runs3")
    assert again.stats["properties"].hits == 0 and again.stats["properties"].misses > 0


def test_the_property_code_digest_covers_every_module_that_computes_property_values(monkeypatch):
    """Every module of benchmark/checks but the gate (it files values) and the CI baseline computes property values,
    as does metrics.aggregate (the CIs): each file is hashed, and a change to any one changes the digest."""
    from pathlib import Path

    from benchmark.checks import context
    from metrics import aggregate

    hashed = {Path(p).resolve() for p in context.property_code_files()}
    checks_dir = Path(context.__file__).resolve().parent
    expected = {p for p in checks_dir.glob("*.py") if p.name not in {"__init__.py", "gate.py", "baseline.py"}}
    assert hashed == expected | {Path(aggregate.__file__).resolve()}
    digest = context.property_code_digest.__wrapped__  # uncached
    before, real = digest(), context.sha256_file
    for path in hashed:
        monkeypatch.setattr(context, "sha256_file", lambda p, path=path: real(p) + ("x" if Path(p).resolve() == path
                                                                                  else ""))
        assert digest() != before, path.name
    monkeypatch.setattr(context, "sha256_file", real)
    assert digest() == before == context.property_code_digest()


def test_the_measure_brings_its_own_factor_ranges():
    from benchmark.checks.measure import factor_measure
    from benchmark.core.errors import ManifestError
    from benchmark.synthetic.backends import OracleFactors
    from benchmark.synthetic.renderer import FACTOR_NAMES, FACTOR_RANGES

    class Loaded:
        factor_names = ("red", "green")

        def measure(self, images):
            return images.float().mean(dim=(2, 3))[:, :2]

    with pytest.raises(ManifestError, match=r"have no ranges"):
        factor_measure(Loaded(), digest="d")
    Loaded.factor_ranges = {"red": (0.0, 1.0)}  # one factor without a range
    with pytest.raises(ManifestError, match=r"have no ranges"):
        factor_measure(Loaded(), digest="d")
    Loaded.factor_ranges = {"red": (0.0, 1.0), "green": (-2.0, 2.0)}
    measure = factor_measure(Loaded(), digest="d")
    assert measure.ranges == {"red": (0.0, 1.0), "green": (-2.0, 2.0)}
    assert measure(torch.full((1, 3, 2, 2), 0.3)).tolist() == [[166.0, 166.0]]  # quantised: round(1.3 · 127.5)
    synthetic = factor_measure(OracleFactors.__new__(OracleFactors), digest="d")  # the class, no weights loaded
    assert synthetic.names == FACTOR_NAMES and synthetic.ranges == FACTOR_RANGES


def test_schema_refuses_unknown_targets_and_unbounded_gates():
    from pydantic import ValidationError

    bad = {**SPEC, "checks": [{"check": "target_shift", "attribute": "angry", "kind": "known_answer",
                               "band": _band(lower=0.1)}]}
    with pytest.raises(ValidationError, match="no entry in `targets`"):
        KnownAnswers(**bad)
    with pytest.raises(ValidationError, match="needs a band with `lower` and/or `upper`"):
        KnownAnswers(**{**SPEC, "checks": [{"check": "zero_delta_exact", "kind": "known_answer", "band": _band()}]})
    with pytest.raises(ValidationError, match="rationale"):
        KnownAnswers(**{**SPEC, "checks": [{"check": "zero_delta_exact", "kind": "known_answer",
                                            "band": {"upper": 1e-6}}]})


def test_unknown_check_name_gets_did_you_mean():
    from benchmark.core.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="linearity_r2"):
        CHECKS.get("linearity_r3")
