"""Conformance of every registered metric (`metrics.METRICS`, plugins included): the contract of docs/metrics.md,
checked per entry so a newly registered metric is held to it without a test of its own.

Every metric has a versioned name (`x@N`), a direction and a frozen, JSON-serialisable spec; built on an offline
back-end (`OFFLINE_BUILDS`: random weights built in-process, or weights shipped in the repository) it returns a
`MetricResult` of the documented shape on a tiny EditSet: a per-image metric lists one value per id for its primary
and each of its variants; a set metric (FID, KID) lists none and keeps its two feature sets instead.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from metrics_helpers import random_images
from pydantic import ValidationError

from benchmark.core.hashing import canonical_json
from benchmark.plan.plugins import load_plugins
from metrics import METRICS, Aggregate, EditSet, MetricResult, MetricSpec, build_spec, get_metric
from metrics.backends import get_backend

load_plugins()  # the synthetic world registers attribute-shift@1 and its back-ends
METRIC_NAMES = METRICS.names()
N_IMAGES = 4

# How to build each metric offline, on a CPU, in seconds: (back-end, spec fields). A metric registered without an
# entry here fails `test_every_metric_has_an_offline_build`.
OFFLINE_BUILDS: dict[str, tuple[str, dict]] = {
    "sdir@1": ("tiny-clip-random", {}),
    "sc@1": ("tiny-faceparser-random", {"input_size": 64}),
    "fid@1": ("tiny-inception-random", {"feature_layer": "64"}),
    "kid@1": ("tiny-inception-random", {"feature_layer": "64"}),
    "id@1": ("tiny-arcface-random", {}),
    "attribute-shift@1": ("synthetic-oracle", {}),  # weights shipped in benchmark/synthetic/assets/
}


@pytest.fixture(scope="module")
def edits() -> EditSet:
    """64² (the synthetic oracle's size) seeded images with a reconstruction, texts and non-default ids."""
    return EditSet(edited=random_images(N_IMAGES, 64, seed=1), original=random_images(N_IMAGES, 64, seed=2),
                   reconstruction=random_images(N_IMAGES, 64, seed=3), source_text="face",
                   target_text="smiling face", ids=tuple(f"img{i}" for i in range(N_IMAGES)))


pytestmark = pytest.mark.usefixtures("one_thread")


def offline_metric(name: str, cache_dir):
    backend, fields = OFFLINE_BUILDS[name]
    return get_metric(name, backend=backend, device="cpu", bootstrap_resamples=50, cache_dir=cache_dir, **fields)


def assert_aggregate(agg, n: int, what: str) -> None:
    assert isinstance(agg, Aggregate), what
    assert agg.n == n and math.isfinite(agg.mean), what
    assert agg.ci_low is not None and agg.ci_high is not None and agg.ci_low <= agg.ci_high, what


def test_every_metric_has_an_offline_build():
    assert set(METRIC_NAMES) >= {"sdir@1", "sc@1", "fid@1", "kid@1", "id@1", "attribute-shift@1"}
    assert sorted(set(METRIC_NAMES) - set(OFFLINE_BUILDS)) == []
    assert sorted(set(OFFLINE_BUILDS) - set(METRIC_NAMES)) == []


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_name_direction_and_default_spec(name):
    cls = METRICS.get(name)
    assert re.fullmatch(r"[a-z][a-z0-9-]*@[1-9][0-9]*", name) and cls.name == name
    assert cls.direction in ("higher", "lower")
    assert (cls.__doc__ or "").strip(), f"{name} has no docstring (`ls` prints its first line)"
    spec = build_spec(name)  # the defaults validate without loading anything
    assert isinstance(spec, cls.Spec) and issubclass(cls.Spec, MetricSpec)
    doc = spec.model_dump(mode="json")
    assert json.loads(canonical_json(doc)) == doc
    assert get_backend(cls.backend_kind, spec.backend).kind == cls.backend_kind  # the default back-end exists
    with pytest.raises(ValidationError):
        spec.reference = "reconstruction"  # frozen
    with pytest.raises(Exception, match="valid fields are"):
        build_spec(name, no_such_field=1)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_offline_result_has_the_documented_shape(name, edits, tmp_path):
    metric = offline_metric(name, tmp_path)
    with pytest.raises(ValidationError):
        metric.spec.backend = "other"  # the built metric's spec is frozen too
    result = metric.compute(edits)
    assert isinstance(result, MetricResult)
    assert result.name == name and result.direction == METRICS.get(name).direction
    assert result.ids == list(edits.ids)
    assert_aggregate(result.primary, N_IMAGES, f"{name} primary")
    for key, agg in result.variants.items():
        assert_aggregate(agg, N_IMAGES, f"{name} variant {key}")
    if result.per_image:  # a per-image metric: the primary and every variant, one value per id
        assert set(result.per_image) == {"value", *result.variants}
        assert all(len(v) == N_IMAGES and all(isinstance(x, float) for x in v) for v in result.per_image.values())
        assert result.primary.mean == pytest.approx(sum(result.per_image["value"]) / N_IMAGES)
    else:  # a set metric: its two feature sets, one row per image, for per-group recomputation
        assert set(result.feature_sets) == {"edited", "reference"}
        assert all(len(f) == N_IMAGES for f in result.feature_sets.values())
    assert all(set(ids) <= set(edits.ids) for ids in result.flags.values())
    backend, _ = OFFLINE_BUILDS[name]
    entry = get_backend(METRICS.get(name).backend_kind, backend)
    spec = result.spec
    assert spec["metric"] == name and spec["direction"] == result.direction and spec["backend"] == backend
    assert spec["backend_model_id"] == entry.model_id and "weights_sha256" in spec
    assert spec["reference"] in ("original", "reconstruction")
    doc = result.to_dict()
    assert json.loads(canonical_json(doc)) == json.loads(json.dumps(doc)) and "feature_sets" not in doc


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_offline_result_is_reproducible(name, edits, tmp_path):
    first = offline_metric(name, tmp_path / "a").compute(edits)
    again = offline_metric(name, tmp_path / "b").compute(edits)  # another feature cache: computed afresh
    assert again.primary == first.primary and again.per_image == first.per_image and again.spec == first.spec
