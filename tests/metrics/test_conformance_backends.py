"""Conformance of every registered metric back-end (`metrics.backends.BACKENDS`, plugins included), per kind and name.

Every entry is reachable: found under its own kind and name, of a kind some metric measures with, and named after
the model manifest `fetch` gets its weights by (docs/metrics.md, "Back-ends and how to add one"). An entry that
needs weights nobody passed either finds them itself (shipped in the repository or installed with a package) or
refuses with the fetch command. Every offline entry (random weights built in-process, or weights it finds itself)
loads into an object of its kind's protocol (`metrics.backends.protocols`) whose methods give the documented shapes.
"""

from __future__ import annotations

import json

import pytest
import torch
from metrics_helpers import random_images

from benchmark.core.errors import MissingWeightsError
from benchmark.core.hashing import canonical_json
from benchmark.inputs.manifests import ManifestRegistry, parse_ref
from benchmark.plan.plugins import load_plugins
from metrics import METRICS
from metrics.backends import (
    BACKENDS,
    KINDS,
    ClipEmbedder,
    FaceParser,
    FactorOracle,
    FeatureExtractor,
    IdentityEmbedder,
    get_backend,
    load_backend,
)
from metrics.backends.registry import resolve_weights

load_plugins()  # the synthetic world registers its CLIP, segmenter and oracle
ENTRIES = [(kind, name) for kind in KINDS for name in BACKENDS[kind].names()]
PROTOCOLS = {"clip": ClipEmbedder, "face-parser": FaceParser, "fid-features": FeatureExtractor,
             "identity": IdentityEmbedder, "factor-oracle": FactorOracle}
# Back-ends that take any file of their format, so no one model manifest names them (the caller's manifest does).
ANY_FILE = {("identity", "arcface-onnx")}
# Loader options a metric would pass, where the loader's defaults do not fit a small CPU test.
LOAD_OPTIONS = {("fid-features", "tiny-inception-random"): {"layer": "64"},
                ("fid-features", "synthetic-oracle"): {"layer": "trunk"},
                ("face-parser", "bisenet-random"): {"input_size": 64},
                ("face-parser", "tiny-faceparser-random"): {"input_size": 64}}
N = 2


def found_weights(entry):
    """The weights an entry finds without being given any (None for in-process random weights)."""
    return entry.default_weights() if entry.default_weights is not None else None


def is_offline(entry) -> bool:
    if not entry.needs_weights:
        return True
    path = found_weights(entry)
    return path is not None and path.exists()


OFFLINE = [(k, n) for k, n in ENTRIES if is_offline(get_backend(k, n))]


@pytest.fixture(scope="module")
def manifest_names() -> set[str]:
    return {parse_ref(ref)[0] for ref in ManifestRegistry().names("model")}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_kind_has_a_metric_and_the_built_in_offline_back_ends_exist():
    assert set(PROTOCOLS) == set(KINDS) == set(BACKENDS)
    assert {c.backend_kind for _, c in METRICS.items()} == set(KINDS)  # no kind without a metric that uses it
    assert {("clip", "tiny-clip-random"), ("face-parser", "bisenet-random"), ("fid-features", "tiny-inception-random"),
            ("identity", "tiny-arcface-random"), ("factor-oracle", "synthetic-oracle")} <= set(OFFLINE)


@pytest.mark.parametrize(("kind", "name"), ENTRIES)
def test_reachable_by_kind_and_name_and_by_its_model_manifest(kind, name, manifest_names):
    entry = get_backend(kind, name)
    assert (entry.kind, entry.name) == (kind, name) and entry.model_id and callable(entry.loader)
    if (kind, name) not in ANY_FILE:
        assert name in manifest_names, f"no model manifest manifests/models/{name}.yaml names back-end {kind}/{name}"
    if entry.needs_weights and not is_offline(entry):
        with pytest.raises(MissingWeightsError, match=f"fetch {name}"):
            resolve_weights(entry, None, None)


@pytest.mark.parametrize(("kind", "name"), OFFLINE)
def test_offline_back_end_loads_into_its_protocol(kind, name):
    backend = load_backend(kind, name, weights=found_weights(get_backend(kind, name)), device="cpu",
                           **LOAD_OPTIONS.get((kind, name), {}))
    assert isinstance(backend, PROTOCOLS[kind]), f"{kind}/{name} does not provide {PROTOCOLS[kind].__name__}"
    images = random_images(N, 64, seed=7)
    with torch.no_grad():
        check_outputs(kind, backend, images)


def check_outputs(kind: str, backend, images: torch.Tensor) -> None:
    if kind == "clip":
        im, txt = backend.encode_images(images), backend.encode_texts(["a face", "a smiling face", "a sad face"])
        assert im.ndim == 2 and im.shape[0] == N and txt.shape == (3, im.shape[1]) and im.is_floating_point()
    elif kind == "face-parser":
        labels = backend.parse(images)
        assert labels.dtype == torch.int64 and labels.ndim == 3 and labels.shape[0] == N
        assert int(labels.min()) >= 0 and int(labels.max()) < len(backend.label_set)
    elif kind == "fid-features":
        features = backend.features(images)
        assert features.dtype == torch.float64 and features.device.type == "cpu" and features.shape[0] == N
        assert json.loads(canonical_json(backend.identity())) == backend.identity()
    elif kind == "identity":
        embeddings, flags = backend.embed(images)
        assert embeddings.ndim == 2 and embeddings.shape[0] == N and isinstance(flags, dict)
        assert all(0 <= i < N for ids in flags.values() for i in ids)
    else:
        factors = backend.measure(images)
        assert factors.shape == (N, len(backend.factor_names))
        assert set(backend.factor_ranges) == set(backend.factor_names)
