"""The model manifests of the metric back-ends agree with the back-end registry (names, kinds, pinned digests)."""

from __future__ import annotations

import pytest
import yaml

from benchmark.core.paths import MANIFESTS_DIR
from metrics.backends import BACKENDS, get_backend
from metrics.backends.identity import DLIB_MODEL_SHA256, W600K_R50_SHA256

METRIC_MANIFESTS = ["clip-vit-b32-openai", "clip-vit-b16-openai", "clip-vit-l14-openai", "bisenet-79999",
                    "segformer-face-parsing", "inception-v3-compat", "arcface-buffalo-l", "dlib-resnet",
                    "bisenet-random", "tiny-clip-random", "tiny-faceparser-random", "tiny-inception-random",
                    "tiny-arcface-random"]


def test_every_model_manifest_validates():
    from benchmark.inputs.manifests import ManifestRegistry

    registry = ManifestRegistry()
    assert registry.errors == []
    for name in METRIC_MANIFESTS:
        assert f"{name}@1" in registry.names("model")


def manifest(name: str) -> dict:
    with open(MANIFESTS_DIR / "models" / f"{name}.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def kind_of(name: str) -> str:
    kinds = [k for k, reg in BACKENDS.items() if name in reg]
    assert len(kinds) == 1, f"{name} is registered under {kinds}"
    return kinds[0]


@pytest.mark.parametrize("name", METRIC_MANIFESTS)
def test_manifest_matches_its_backend(name):
    doc = manifest(name)
    assert doc["schema_version"] == 1 and doc["kind"] == "model" and doc["name"] == name
    assert isinstance(doc["version"], int)
    entry = get_backend(kind_of(name), name)
    if doc["loader"] == "metric-backend":
        assert doc["loader_args"]["kind"] == entry.kind
    if doc["source"]["type"] == "random":
        assert not entry.needs_weights
        return
    assert entry.needs_weights
    source = doc["source"]
    if source["type"] == "hub":
        assert len(source["revision"]) == 40 and int(source["revision"], 16) >= 0
    files = {f["path"].split("/")[-1]: f for f in source["files"]}
    if entry.sha256:  # one digest, in code and manifest alike (a file, or a member of a fetched archive)
        members = {m["path"]: m["sha256"] for m in doc["loader_args"].get("unzip_members", [])}
        pinned = files[entry.weights_file]["sha256"] if entry.weights_file in files else members[entry.weights_file]
        assert pinned == entry.sha256
    for f in source["files"]:
        assert f["sha256"] is None or len(f["sha256"]) == 64


def test_member_and_package_digests_match_the_code():
    members = {m["path"]: m["sha256"] for m in manifest("arcface-buffalo-l")["loader_args"]["unzip_members"]}
    assert members["w600k_r50.onnx"] == W600K_R50_SHA256
    files = {f["path"].split("/")[-1]: f["sha256"] for f in manifest("dlib-resnet")["source"]["files"]}
    assert files == DLIB_MODEL_SHA256
    assert manifest("inception-v3-compat")["source"]["files"][0]["path"].endswith(
        get_backend("fid-features", "inception-v3-compat").sha256_prefix + ".pth")


@pytest.mark.parametrize("suite", ["paper-table", "official-checkpoints@1", "official-checkpoints@2",
                                   "lsun-church-released", "lsun-bedroom-released", "afhq-dog-released",
                                   "metfaces-released"])
@pytest.mark.parametrize("profile", [None, "tiny"])
def test_every_suite_metric_names_a_backend_of_the_kind_its_metric_needs(suite, profile):
    from benchmark.inputs.manifests import ManifestRegistry, resolve_suite
    from metrics import METRICS

    resolved = resolve_suite(suite, profile=profile, registry=ManifestRegistry(), known_metrics=METRICS.names())
    for entry in resolved.suite.metrics:
        backend = entry.backend.split("@")[0]
        get_backend(METRICS.get(entry.name).backend_kind, backend)  # raises with did-you-mean if absent
