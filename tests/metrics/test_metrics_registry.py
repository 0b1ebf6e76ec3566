"""Metric registry, specs, the EditSet contract, back-end weights resolution and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from metrics_helpers import random_images
from pydantic import ValidationError

from benchmark.core.errors import (
    BenchError,
    DataError,
    DigestMismatchError,
    MissingWeightsError,
    UnknownNameError,
)
from benchmark.core.hashing import canonical_json
from metrics import METRICS, EditSet, build_spec, get_metric
from metrics.backends import load_backend, register_backend


def edit_set(n=4, size=32, **kw):
    return EditSet(edited=random_images(n, size, seed=1), original=random_images(n, size, seed=2),
                   reconstruction=random_images(n, size, seed=3), source_text="face", target_text="smiling face", **kw)


def test_every_metric_is_versioned_with_a_direction_and_a_json_spec():
    assert set(METRICS.names()) >= {"sdir@1", "sc@1", "fid@1", "kid@1", "id@1"}
    for name, cls in METRICS.items():
        assert "@" in name and cls.direction in ("higher", "lower")
        spec = build_spec(name)
        assert json.loads(canonical_json(spec.model_dump(mode="json")))["backend"] == spec.backend
        with pytest.raises(ValidationError):  # frozen
            spec.backend = "other"


def test_defaults_are_the_documented_ones():
    assert build_spec("sdir@1").backend == "clip-vit-b32-openai" and build_spec("sdir@1").templates is True
    assert build_spec("sc@1").reference == "reconstruction" and build_spec("sc@1").backend == "bisenet-79999"
    assert build_spec("fid@1").feature_layer == "2048"
    assert build_spec("id@1").alignment == "dclip-crop"


def test_unknown_metric_and_backend_names_get_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean: sdir@1"):
        get_metric("sdir@2")
    with pytest.raises(UnknownNameError, match="clip-vit-b32-openai"):
        get_metric("sdir@1", backend="clip-vit-b32-opena")


def test_bad_spec_field_names_the_valid_fields():
    with pytest.raises(BenchError, match="valid fields are: .*templates"):
        build_spec("sdir@1", template=True)
    with pytest.raises(BenchError, match="reference"):
        build_spec("sc@1", reference="recon")


def test_real_backend_without_weights_names_the_fetch_command(tmp_path):
    with pytest.raises(MissingWeightsError, match="fetch clip-vit-b32-openai"):
        get_metric("sdir@1")
    with pytest.raises(MissingWeightsError, match="not found"):
        get_metric("fid@1", weights=tmp_path / "missing.pth")


def test_digest_mismatch_stops_before_loading(tmp_path):
    bogus = tmp_path / "79999_iter.pth"
    bogus.write_bytes(b"not the checkpoint")
    with pytest.raises(DigestMismatchError, match="468e13ca"):  # bisenet-79999 pins the real digest
        get_metric("sc@1", weights=bogus)
    with pytest.raises(DigestMismatchError, match="6726825d"):  # inception: torch.hub prefix from the file name
        get_metric("fid@1", weights=bogus)
    with pytest.raises(DigestMismatchError):
        get_metric("fid@1", weights=bogus, weights_sha256="0" * 64)


def test_digest_is_recorded_when_not_pinned(tmp_path):
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"abc")
    register_backend("clip", "test-clip-with-file", lambda w, d: None, model_id="test:file", replace=True)
    metric = get_metric("sdir@1", backend="test-clip-with-file", weights=weights, device="cpu")
    assert metric.spec.weights_sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert metric.spec.backend_model_id == "test:file"


def test_random_backend_refuses_weights(tmp_path):
    with pytest.raises(BenchError, match="takes no weights"):
        get_metric("sdir@1", backend="tiny-clip-random", weights=tmp_path)


def test_backends_load_once_per_process():
    calls = []
    register_backend("clip", "test-counting", lambda w, d, **o: calls.append(o) or object(), model_id="t",
                     needs_weights=False, replace=True)
    a = load_backend("clip", "test-counting", device="cpu", seed=1)
    b = load_backend("clip", "test-counting", device="cpu", seed=1)
    c = load_backend("clip", "test-counting", device="cpu", seed=2)
    assert a is b and a is not c and len(calls) == 2


@pytest.mark.parametrize("bad, message", [
    (lambda: EditSet(edited=random_images(2).float(), original=random_images(2)), "uint8"),
    (lambda: EditSet(edited=random_images(2).float() / 127.5 - 1, original=random_images(2)), "to_uint8"),
    (lambda: EditSet(edited=random_images(2)[:, :1], original=random_images(2)[:, :1]), "grayscale"),
    (lambda: EditSet(edited=random_images(2)[0], original=random_images(2)[0]), "N×3×H×W"),
    (lambda: EditSet(edited=random_images(3), original=random_images(2)), "counts must match"),
    (lambda: EditSet(edited=random_images(2, 32), original=random_images(2, 64)), "same size"),
    (lambda: EditSet(edited=random_images(2), original=random_images(2), ids=("a", "a")), "unique"),
    (lambda: EditSet(edited=random_images(2), original=random_images(2), ids=("a",)), "one id per image"),
])
def test_bad_edit_sets_say_what_was_expected(bad, message):
    with pytest.raises(DataError, match=message):
        bad()


def test_missing_reconstruction_and_texts_are_clear_errors():
    no_recon = EditSet(edited=random_images(2, 32), original=random_images(2, 32))
    with pytest.raises(DataError, match="reconstruction"):
        get_metric("sc@1", backend="bisenet-random", device="cpu", input_size=32).compute(no_recon)
    with pytest.raises(DataError, match="source_text"):
        get_metric("sdir@1", backend="tiny-clip-random", device="cpu").compute(no_recon)


def test_fid_needs_at_least_two_images():
    one = edit_set(n=1)
    with pytest.raises(DataError, match="at least 2 images"):
        get_metric("fid@1", backend="tiny-inception-random", device="cpu").compute(one)


def test_result_is_json_serialisable_and_carries_the_spec():
    result = get_metric("sdir@1", backend="tiny-clip-random", device="cpu", bootstrap_resamples=100).compute(edit_set())
    d = json.loads(canonical_json(result.to_dict()))
    assert d["spec"]["metric"] == "sdir@1" and d["spec"]["backend_model_id"] == "open_clip:tiny-random"
    assert d["primary"]["n"] == 4 and len(d["per_image"]["value"]) == 4 and d["ids"] == ["0", "1", "2", "3"]
    assert set(d["variants"]) == {"one_minus_cos"}
    assert any("unknown" in note for note in d["notes"])


def test_cuda_device_without_cuda_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(BenchError, match="CUDA"):
        get_metric("sdir@1", backend="tiny-clip-random", device="cuda")
