"""The release extensions end to end on the CPU, through the real CLI: editing and training from seeded noise
(`synthetic-noise`), the h-space layer ablation (`ablation-layer`) and the f_t transfer arm (`ablation-ft@2`),
each at its `quick` profile with a fresh stage cache. What each test asserts follows from the suite's manifest
(its arms, layers, CLIP sources, noise seed, bands), never from numbers of an earlier run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.inputs.manifests import ManifestRegistry, resolve_suite
from benchmark.outputs.ablation import arm_name
from benchmark.outputs.results import load_per_image, load_results, load_training


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ASYRP_CACHE", str(tmp_path / "cache"))


def _run(tmp_path: Path, suite: str, *extra: str) -> Path:
    out = tmp_path / "runs"
    assert main(["run", "--suite", suite, "--profile", "quick", "--device", "cpu", "--out", str(out), *extra]) == 0
    (folder,) = (out / suite.split("@")[0]).iterdir()
    return folder


def _resolved(suite: str):
    return resolve_suite(suite, profile="quick", registry=ManifestRegistry())


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _all_finite(result) -> bool:
    values = [v for metrics in result.metrics.values() for m in metrics.values()
              for v in (m.mean, *(a.mean for a in m.variants.values()))]
    return bool(values) and all(math.isfinite(v) for v in values)


@pytest.mark.slow
def test_noise_suite_edits_seeded_noise_with_both_clip_sources(tmp_path):
    from models.noise_source import noise_id

    rs = _resolved("synthetic-noise")
    suite = rs.suite
    (attribute,) = rs.attributes
    folder = _run(tmp_path, "synthetic-noise")
    result, training = load_results(folder), load_training(folder)

    # the test images are the first n items of the suite's noise source, not dataset images
    expected_ids = {noise_id(suite.source.seed, i) for i in range(suite.source.n)}
    arms = {arm_name(attribute, v.key): v for v in suite.ft_variants}
    assert set(result.metrics) == set(training) == set(arms)
    for key in arms:
        assert {r["id"] for r in load_per_image(folder) if r["attribute"] == key} == expected_ids
    assert {p.name for p in (folder / "images").iterdir()} == expected_ids

    # each arm trained with the CLIP source its manifest names (the authors' all-zero default, else its own)
    for key, arm in arms.items():
        assert training[key]["clip_source"] == (arm.clip_source or suite.train.source.clip_source)
    assert {h["clip_source"] for h in training.values()} == {"zeros", "sample"}
    first = [h["loss"][0] for h in training.values()]
    assert first[0] != first[1]  # same seeds, noise and init: only the CLIP source differs, so must the loss

    assert _all_finite(result)
    assert all(math.isfinite(x) for h in training.values() for x in h["loss"])
    # an edit happened: every edited image differs from the plain DDIM sample of its x_T
    for image_id in expected_ids:
        sample = np.asarray(Image.open(folder / result.grid_images[image_id]["reconstruction"]), dtype=np.int16)
        for key in arms:
            name = result.grid_images[image_id][key]
            edited = np.asarray(Image.open(folder / name), dtype=np.int16)
            assert edited.shape == sample.shape and np.abs(edited - sample).max() > 0, (image_id, key)
    assert not result.gates  # the suite gates nothing: Δh = 0 exactness is checked by ablation-layer's test


@pytest.mark.slow
def test_layer_ablation_trains_edits_and_checks_zero_delta_at_every_layer(tmp_path):
    rs = _resolved("ablation-layer")
    suite = rs.suite
    (attribute,) = rs.attributes
    layers = {arm_name(attribute, v.key): v.hspace_layer or suite.hspace.layer for v in suite.ft_variants}
    assert len(set(layers.values())) == len(layers)  # the manifest names one arm per layer
    folder = _run(tmp_path, "ablation-layer")
    result, training = load_results(folder), load_training(folder)

    assert set(result.metrics) == set(training) == set(layers)
    assert {k: h["hspace_layer"] for k, h in training.items()} == layers
    assert _all_finite(result)

    # Δh = 0 is plain DDIM at every layer: one gated known answer per arm, within the manifest's band
    bands = {c.options["attribute_ft"]: c.band for c in suite.known_answers.checks if c.check == "zero_delta_exact"}
    assert set(bands) == set(layers)
    gates = {g.name.split("/", 1)[1].split(" ")[0]: g for g in result.gates if g.name.startswith("zero_delta")}
    assert set(gates) == set(layers)
    for key, gate in gates.items():
        assert gate.is_known_answer and gate.passed and gate.value is not None
        assert gate.band.high == bands[key].high and 0.0 <= gate.value <= bands[key].high

    # the report lists target shift, non-target change and FID for every arm, as results.json has them
    tables = folder / "report" / "tables"
    ablation = {r["arm"]: r for r in _csv_rows(tables / "ablation.csv")}
    shifts = {r["attribute"]: r for r in _csv_rows(tables / "shift_targets.csv")}
    assert set(ablation) == {v.key for v in suite.ft_variants} and set(shifts) == set(layers)
    for v in suite.ft_variants:
        key, metrics = arm_name(attribute, v.key), result.metrics[arm_name(attribute, v.key)]
        assert float(ablation[v.key]["fid_orig_mean"]) == pytest.approx(metrics["fid_orig"].mean, rel=1e-9)
        assert float(ablation[v.key]["shift_mouth_up_mean"]) == pytest.approx(metrics["shift_mouth_up"].mean)
        assert float(shifts[key]["shift_mouth_up_non_target_change"]) == pytest.approx(
            metrics["shift_mouth_up"].variants["non_target_change"].mean)


@pytest.mark.slow
def test_transfer_arm_starts_from_the_trained_source_f_t(tmp_path):
    rs = _resolved("ablation-ft@2")
    (transfer,) = [v for v in rs.suite.ft_variants if v.init_from is not None]
    (target,) = transfer.attributes
    key, scratch = arm_name(target, transfer.key), arm_name(target, "conv")
    source = arm_name(transfer.init_from.attribute, transfer.init_from.arm)
    folder = _run(tmp_path, "ablation-ft@2", "--limit", "4")
    result, training = load_results(folder), load_training(folder)

    assert {key, scratch, source} <= set(training) and result.run.limit == 4
    assert training[key]["init_from"]["label"] == source and "init_from" not in training[scratch]
    assert training[key]["ft"] == training[scratch]["ft"] and training[key]["config"] == training[scratch]["config"]
    # same f_t, settings, images and seeds as the scratch arm: only the starting weights differ, so must the
    # first step's loss (computed before any update)
    assert training[key]["loss"][0] != training[scratch]["loss"][0]
    assert _all_finite(result)

    speed = {(r["attribute"], r["arm"]): r for r in _csv_rows(folder / "report" / "tables" / "training_speed.csv")}
    assert {(target, transfer.key), (target, "conv")} <= set(speed)
    assert speed[(target, transfer.key)]["init_from"] == source and speed[(target, "conv")]["init_from"] == ""
    # the reference arm reaches its own final loss by its last step at the latest (training_speed's definition)
    assert 1 <= float(speed[(target, "conv")]["steps_to_target"]) <= len(training[scratch]["loss"])
    assert "steps to target" in (folder / "report" / "tables" / "training_speed.md").read_text()
