"""Every byte read back from a cache is checked: the stage cache (meta.json included) and FID's feature cache.

A damaged, malformed or edited entry is reported with a warning that names it, recomputed, and never used; a run
with --fresh reads neither cache.
"""

from __future__ import annotations

import json
import logging

import harness_standins as standins
import pytest
import torch
from metrics_helpers import random_images

from benchmark.outputs.results import load_results
from benchmark.run.cache import StageCache
from benchmark.run.pipeline import run_plan
from benchmark.run.runner import Runner

SHIFTS = {"smiling": 25.2 / 127.5, "pixar": 50.2 / 127.5}


def _run(tmp_path, plan=None, fresh=False):
    runner = Runner(StageCache(tmp_path / "cache"), fresh=fresh, progress=False)
    run_dir = run_plan(plan or standins.plan(shifts=SHIFTS), runner, tmp_path / "runs", argv=["run"])
    return runner, load_results(run_dir)


def _entries(tmp_path, stage):
    return sorted((tmp_path / "cache" / stage).glob("*/meta.json"))


def test_an_edited_meta_json_is_reported_recomputed_and_never_used(tmp_path, caplog):
    _, first = _run(tmp_path)
    truth = first.metrics["smiling"]["shift"].mean
    metas = _entries(tmp_path, "measure")
    assert len(metas) == 2
    for meta_path in metas:  # one digit of the stored result changed, as a bit flip or a hand edit would
        meta = json.loads(meta_path.read_text())
        meta["data"]["primary"]["mean"] += 0.1
        meta_path.write_text(json.dumps(meta, indent=1))
    with caplog.at_level(logging.WARNING, logger="benchmark.run.cache"):
        runner, second = _run(tmp_path)
    assert second.metrics["smiling"]["shift"].mean == truth
    assert runner.stats["measure"].misses == 2 and runner.stats["measure"].hits == 0
    warned = [r.getMessage() for r in caplog.records if "does not match its own digest" in r.getMessage()]
    assert len(warned) == 2 and str(metas[0].parent) in "\n".join(warned)
    _, third = _run(tmp_path)  # the recomputed entries replaced the edited ones
    assert third.run.cache["measure"] == {"hits": 2, "misses": 0}


@pytest.mark.parametrize("content", ["[]", "{}", "null", '{"cache_format": 2}', "\xff\xfe not json"],
                         ids=["list", "empty object", "null", "no key", "not UTF-8"])
def test_a_malformed_meta_json_is_recomputed_not_a_traceback(tmp_path, caplog, content):
    _run(tmp_path)
    meta_path = _entries(tmp_path, "invert")[0]
    meta_path.write_bytes(content.encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="benchmark.run.cache"):
        runner, _ = _run(tmp_path)
    assert runner.stats["invert"].misses == 1
    assert any(str(meta_path.parent) in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)


# -- FID's feature cache ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sets():
    from metrics import EditSet

    return EditSet(edited=random_images(16, 48, seed=10), original=random_images(16, 48, seed=11, high=160))


def _fid(cache):
    from metrics import get_metric

    return get_metric("fid@1", backend="tiny-inception-random", device="cpu", feature_layer="64", cache_dir=cache,
                      bootstrap_resamples=0)


def _feature_files(cache):
    files = sorted((cache / "metrics" / "features").glob("*.safetensors"))
    assert len(files) == 2  # the edited and the reference set
    return files


def test_constant_or_truncated_feature_files_are_recomputed_not_used(tmp_path, sets, caplog):
    from safetensors import safe_open
    from safetensors.torch import save_file

    truth = _fid(tmp_path).compute(sets).primary.mean
    assert truth > 0
    for path in _feature_files(tmp_path):  # constant features under the very identity the metric looks for
        with safe_open(str(path), framework="pt") as f:
            identity, shape = f.metadata()["identity"], f.get_tensor("features").shape
        save_file({"features": torch.ones(shape)}, str(path), metadata={"identity": identity})
    with caplog.at_level(logging.WARNING, logger="metrics.fid"):
        again = _fid(tmp_path).compute(sets)
    assert again.primary.mean == truth  # not the 0.0 that two identical constant sets give
    assert again.provenance["feature_cache_hits"] == {"edited": False, "reference": False}
    assert sum("is damaged" in r.getMessage() for r in caplog.records) == 2
    for path in _feature_files(tmp_path):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert _fid(tmp_path).compute(sets).primary.mean == truth  # truncated: recomputed, no crash
    hits = _fid(tmp_path).compute(sets).provenance["feature_cache_hits"]
    assert hits == {"edited": True, "reference": True}  # the rewritten files are intact again


def test_fresh_skips_the_feature_cache(tmp_path, sets):
    _fid(tmp_path).compute(sets)
    metric = _fid(tmp_path)
    metric.reuse_cache = False  # what the measure stage sets for a run with --fresh
    assert metric.compute(sets).provenance["feature_cache_hits"] == {"edited": False, "reference": False}


class _RecordingMetric(standins.MeanAbsShift):
    """A metric with its own cache, recording whether the stage let it read that cache."""

    def __init__(self):
        super().__init__()
        self.reuse_cache = True
        self.seen: list[bool] = []

    def compute(self, es):
        self.seen.append(self.reuse_cache)
        return super().compute(es)


@pytest.mark.parametrize("fresh", [False, True])
def test_the_measure_stage_passes_fresh_to_the_metric(tmp_path, fresh):
    from benchmark.run.suite_plan import MetricPlan

    metric = _RecordingMetric()
    plan = standins.plan(shifts=SHIFTS)
    plan.metrics = [MetricPlan("shift", metric)]
    _run(tmp_path, plan, fresh=fresh)
    assert metric.seen == [not fresh, not fresh]
