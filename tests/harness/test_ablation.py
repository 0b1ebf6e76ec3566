"""The f_t ablation (`ablation-ft@1`): the suite schema's arms, the plan's expansion into one attribute per arm, the
engine's per-arm f_t, optimiser and cache keys, and the report's ablation table and loss curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from models_helpers import micro_model, one_thread, smooth_images, tiny_clip  # noqa: F401

import models as M
from benchmark.core.errors import ManifestError, UnknownNameError
from benchmark.core.paths import manifests_dir
from benchmark.inputs.manifests import ManifestRegistry, Steps, manifest_from_dict, resolve_suite
from benchmark.inputs.validate import check_ft_names
from benchmark.outputs.ablation import arm_name, split_arm
from benchmark.outputs.report import build_report
from benchmark.outputs.report.figures import rollout_means
from benchmark.outputs.results import (
    AttributeInfo,
    MetricValue,
    RunInfo,
    RunResult,
    write_results,
    write_training,
)
from benchmark.plan.planner import ablation_arms
from benchmark.run.stages.asyrp import AsyrpEngine, TrainSettings
from benchmark.run.suite_plan import AttributePlan

SUITE_FILE = manifests_dir() / "suites" / "ablation-ft.yaml"
ARMS = ["conv", "pixel", "channel", "pixel-channel", "channel-pixel"]


def _suite_doc():
    return yaml.safe_load(SUITE_FILE.read_text())


@pytest.mark.parametrize("profile", [None, "quick", "celebahq", "tiny"])
def test_the_suite_resolves_with_every_variant_as_an_arm(profile):
    rs = resolve_suite("ablation-ft@1", profile=profile, registry=ManifestRegistry())
    arms = rs.suite.ft_variants
    assert [a.key for a in arms] == ARMS
    assert {a.name for a in arms} == {"conv", *M.TRANSFORMER_VARIANTS}
    assert all(a.optimizer == ("sgd" if a.name == "conv" else "adam") for a in arms)
    assert all(a.options.get("time_conditioning") == "adagn" for a in arms if a.name != "conv")
    assert rs.suite.requires == ("cuda" if profile == "celebahq" else "cpu-ok")
    assert rs.base_model.ref == {None: "synthetic-ddpm@1", "quick": "synthetic-ddpm@1", "celebahq": "sdedit-celebahq@1",
                                 "tiny": "tiny-ddpm-deep-random@1"}[profile]
    if profile in (None, "quick"):  # the synthetic world has an oracle: the ablation reports its attribute shift
        assert "shift_mouth_up" in rs.metric_backends
    check_ft_names(rs.suite)


def test_arm_keys_must_be_unique_and_arms_must_train():
    doc = _suite_doc()
    doc["ft_variants"].append(dict(doc["ft_variants"][0]))
    with pytest.raises(ManifestError, match="ft_variants keys must be unique"):
        manifest_from_dict(doc)
    doc = _suite_doc()
    doc["ft"]["checkpoints"] = {"smiling": "asyrp-ft-smiling@1"}
    with pytest.raises(ManifestError, match="needs `train` and no `ft.checkpoints`"):
        manifest_from_dict(doc)


def test_an_unknown_f_t_name_gets_did_you_mean_before_any_data_is_loaded():
    doc = _suite_doc()
    doc["ft_variants"][1]["name"] = "transformer-pixle"
    with pytest.raises(UnknownNameError, match="Did you mean: transformer-pixel"):
        check_ft_names(manifest_from_dict(doc))


def test_arm_names_round_trip():
    assert arm_name("smiling", "pixel-channel") == "smiling[pixel-channel]"
    assert split_arm("smiling[pixel-channel]") == ("smiling", "pixel-channel")
    assert split_arm("smiling") == ("smiling", None)


# --- the engine, per arm, on a micro UNet ------------------------------------------------------------------------

T0, T_EDIT, STEPS = 299, 100, 4
SETTINGS = {"t_edit": T_EDIT, "t_boost": 0, "lambda_clip": 1.0, "lambda_recon": 3.0,
            "lambda_recon_times_text_cosine": True}
TRANSFORMER_OPTIONS = {"time_conditioning": "adagn", "norm_groups": 8, "heads": 2, "depth": 1, "dim_feedforward": 32}


def _arms():
    doc = _suite_doc()
    doc["ft_variants"] = [
        {"key": "conv", "name": "conv", "options": {"norm_groups": 8}, "optimizer": "sgd", "lr": 0.5},
        {"key": "pixel-channel", "name": "transformer-pixel-channel", "options": TRANSFORMER_OPTIONS,
         "optimizer": "adam"},  # no lr: Adam's default, not the suite's SGD lr
        {"key": "pc-lr", "name": "transformer-pixel-channel", "options": TRANSFORMER_OPTIONS, "lr": 3e-3},
        {"key": "pc-wide", "name": "transformer-pixel-channel", "options": {**TRANSFORMER_OPTIONS, "heads": 4},
         "optimizer": "adam"},
    ]
    suite = manifest_from_dict(doc)
    base = AttributePlan("smiling", "smiling@1", "in-domain", "face", "smiling face", SETTINGS)
    return ablation_arms([base], suite.ft_variants)


@pytest.fixture(scope="module")
def engine_setup():
    model = micro_model()
    clip, tokenizer = tiny_clip()
    engine = AsyrpEngine(
        model=model, steps=Steps(STEPS, STEPS, STEPS, t0=T0), digests={"base_model": "x"},
        train_settings=TrainSettings(optimizer="sgd", lr=0.5),
        clip_loss=lambda s, t: M.DirectionalClipLoss(clip, tokenizer, s, t), seeds={"train": 1234},
        reference_min_t=T_EDIT)
    images = smooth_images(2, size=16)
    return engine, images, engine.invert(images, with_reference=True)


def test_each_arm_has_its_own_f_t_optimiser_and_cache_key(engine_setup):
    engine, _, _ = engine_setup
    plans = _arms()
    assert [p.name for p in plans] == ["smiling[conv]", "smiling[pixel-channel]", "smiling[pc-lr]",
                                       "smiling[pc-wide]"]
    configs = [engine.train_config(p) for p in plans]
    assert [(c.optimizer, c.lr) for c in configs] == [("sgd", 0.5), ("adam", M.trainer.DEFAULT_LR["adam"]),
                                                      ("sgd", 3e-3), ("adam", M.trainer.DEFAULT_LR["adam"])]
    train_specs = [json.dumps(engine.spec_for("train", p), sort_keys=True, default=str) for p in plans]
    edit_specs = [json.dumps(engine.spec_for("edit", p), sort_keys=True, default=str) for p in plans]
    assert len(set(train_specs)) == 4  # the lr alone, or the options alone (heads), change the key
    assert len(set(edit_specs)) == 3  # an edit's key also holds its trained f_t's key (upstream), not the lr
    assert engine.spec_for("train", plans[3])["ft_options"]["heads"] == 4
    assert isinstance(engine.new_ft(plans[1]), M.TransformerFt) and isinstance(engine.new_ft(plans[0]), M.DeltaBlock)


def test_a_transformer_arm_trains_and_edits_through_the_engine(engine_setup):
    engine, images, inversions = engine_setup
    plan = _arms()[1]
    state, info = engine.train(plan, images, inversions)
    assert info["ft"] == {"name": "transformer-pixel-channel", "options": TRANSFORMER_OPTIONS}
    assert info["config"]["optimizer"] == "adam" and len(info["history"]["loss"]) == 2 * len(M.training_steps(STEPS, T_EDIT, T0))
    assert np.isfinite(info["history"]["loss"]).all()
    edited = engine.edit(plan, state, inversions["x_T"], ids=["a", "b"])  # loads the state strictly
    assert edited.shape == images.shape and edited.isfinite().all()
    with pytest.raises(RuntimeError, match="Missing key|Unexpected key|size mismatch"):
        engine.edit(_arms()[0], state, inversions["x_T"])  # the conv arm cannot take these weights


# --- the report -----------------------------------------------------------------------------------------------

def test_rollout_means_split_where_t_restarts():
    t = [9, 5, 1, 9, 5, 1, 9, 1]
    loss = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 9.0]
    assert rollout_means(t, loss).tolist() == [2.0, 5.0, 8.0]


def _mv(mean, direction):
    return MetricValue(mean=mean, ci_low=mean - 0.1, ci_high=mean + 0.1, n=4, std=0.1, direction=direction,
                       spec={"metric": "x@1"})


def test_report_has_the_ablation_table_in_arm_order_and_the_loss_curves(tmp_path):
    keys = [arm_name(a, arm) for a in ("smiling", "pixar") for arm in ARMS]
    metrics = {k: {"sdir": _mv(0.1 + i / 100, "higher"), "fid_orig": _mv(50.0 + i, "lower")}
               for i, k in enumerate(keys)}
    result = RunResult(
        suite="ablation-ft@1", not_for_reporting=False,
        run=RunInfo(git_sha="0" * 40, git_dirty=False, manifest_digests={}, seeds={}, packages={},
                    device={"type": "cpu"}, stage_seconds={}, started_at="2026-01-01T00:00:00Z",
                    ended_at="2026-01-01T00:01:00Z"),
        metrics=metrics, gates=[],
        attributes={k: AttributeInfo(name=k, domain="in-domain") for k in keys})
    folder = tmp_path / "run"
    folder.mkdir()
    write_results(folder, result, [])
    rng = np.random.default_rng(0)
    write_training(folder, {k: {"t": [9, 5, 1] * 12, "loss": (3 - np.linspace(0, 1, 36) + rng.random(36)).tolist()}
                            for k in keys})
    report = build_report(folder)
    ablation = (report.folder / "tables" / "ablation.md").read_text()
    rows = [line for line in ablation.splitlines() if line.startswith("| smiling") or line.startswith("| pixar")]
    assert [r.split("|")[2].strip() for r in rows] == ARMS * 2
    # smiling[channel]: i = 2; rounded to what the CI supports (half-widths 0.1 and 0.1)
    assert "0.12 [0.02, 0.22]" in rows[2] and "52.0 [51.9, 52.1]" in rows[2]
    assert (report.folder / "figures" / "loss_curves.png").is_file()
    assert "ablation.csv" in {p.name for p in report.tables}
