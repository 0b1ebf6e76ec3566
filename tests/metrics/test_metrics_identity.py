"""ID: real dlib embeddings of real faces, and the insightface ArcFace path with a tiny ONNX exported here."""

from __future__ import annotations

import pytest
import torch
from metrics_helpers import load_fixture_images

from benchmark.core.errors import DigestMismatchError
from metrics import EditSet, get_metric
from metrics.backends.identity import DCLIP_BOX_256, dclip_box, dclip_crop, export_tiny_arcface
from metrics.backends.registry import clear_loaded_backends


@pytest.fixture(scope="module")
def faces(fixtures):
    return load_fixture_images(fixtures, ["celebamaskhq_0.jpg", "celebamaskhq_1.jpg", "000121.jpg"], size=256)


def test_dlib_mirror_is_more_similar_than_another_person(faces):
    a, b, c = faces[0], faces[1], faces[2]
    edits = EditSet(edited=torch.stack([a.flip(-1), b, c, b.flip(-1)]), original=torch.stack([a, a, a, b]))
    result = get_metric("id@1", backend="dlib-resnet", device="cpu", bootstrap_resamples=100).compute(edits)
    same_a, other_b, other_c, same_b = result.per_image["value"]
    assert result.flags == {}  # HOG found every face at 256²
    assert same_a > max(other_b, other_c) and same_b > max(other_b, other_c)
    assert result.spec["weights_sha256"] == "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"


@pytest.fixture(scope="module")
def tiny_arcface_onnx(tmp_path_factory):
    return export_tiny_arcface(tmp_path_factory.mktemp("onnx") / "tiny_arcface.onnx")


def arcface(weights, **kw):
    return get_metric("id@1", backend="arcface-onnx", weights=weights, device="cpu", bootstrap_resamples=50, **kw)


def test_dclip_crop_box_is_the_diffusionclip_rule():
    assert dclip_box(256, 256) == DCLIP_BOX_256 == (35, 223, 32, 220)
    x = torch.zeros(1, 3, 256, 256, dtype=torch.uint8)
    x[:, :, 35:223, 32:220] = 200
    crop = dclip_crop(x)
    assert crop.shape == (1, 3, 112, 112) and torch.all(crop == 200)  # the pooled box sees only the inside


def test_arcface_onnx_path_on_real_faces(faces, tiny_arcface_onnx):
    a, b = faces[0], faces[1]
    outside_changed = a.clone()
    outside_changed[:, :30] = 0  # rows 0:30 lie above the crop box
    inside_changed = a.clone()
    inside_changed[:, 100:150, 100:150] = 0
    edits = EditSet(edited=torch.stack([a, outside_changed, inside_changed, b]), original=torch.stack([a, a, a, a]))
    result = arcface(tiny_arcface_onnx).compute(edits)
    same, outside, inside, other = result.per_image["value"]
    assert same == pytest.approx(1.0, abs=1e-6) and outside == pytest.approx(1.0, abs=1e-6)
    assert inside < 1 - 1e-4 and other < 1 - 1e-4
    assert result.spec["alignment"] == "dclip-crop" and len(result.spec["weights_sha256"]) == 64
    per_image = arcface(tiny_arcface_onnx).compute(EditSet(edited=edits.edited[2:3], original=edits.original[2:3]))
    assert per_image.per_image["value"][0] == pytest.approx(inside, abs=1e-5)  # batching does not change values


def test_arcface_with_dlib_landmark_alignment(faces, tiny_arcface_onnx):
    edits = EditSet(edited=faces[[1, 2]], original=faces[[0, 0]])
    crop = arcface(tiny_arcface_onnx).compute(edits)
    aligned = arcface(tiny_arcface_onnx, alignment="dlib-landmarks").compute(edits)
    assert aligned.flags == {}  # every face found, none fell back to the crop
    assert aligned.per_image["value"] != crop.per_image["value"]


def test_tiny_random_arcface_backend_needs_no_file(faces, tmp_path, monkeypatch):
    monkeypatch.setenv("ASYRP_CACHE", str(tmp_path))
    clear_loaded_backends()  # an earlier test may have loaded it under another cache root
    edits = EditSet(edited=faces[[0, 1]], original=faces[[0, 0]])
    result = get_metric("id@1", backend="tiny-arcface-random", device="cpu", bootstrap_resamples=10).compute(edits)
    assert result.per_image["value"][0] == pytest.approx(1.0, abs=1e-6) and result.per_image["value"][1] < 1.0
    assert (tmp_path / "metrics" / "random-weights" / "tiny-arcface-seed0.onnx").is_file()


def test_pinned_buffalo_l_refuses_other_weights(tiny_arcface_onnx):
    with pytest.raises(DigestMismatchError, match="4c06341c"):
        get_metric("id@1", backend="arcface-buffalo-l", weights=tiny_arcface_onnx)
