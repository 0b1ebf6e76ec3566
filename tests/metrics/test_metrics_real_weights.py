"""Real back-ends with their real weights. Skipped unless the weights were fetched; each skip names the command.

Weights are looked up where `fetch` puts a model manifest's files: `<weights_dir>/<name>@1/<file>`.
"""

from __future__ import annotations

import pytest
import torch
from metrics_helpers import load_fixture_images

from benchmark.core.paths import weights_dir
from metrics import EditSet, get_metric

pytestmark = pytest.mark.weights


def fetched(name: str, file: str):
    """The fetched file of model manifest `name@1`, or a skip naming the command that fetches it."""
    path = weights_dir() / f"{name}@1" / file
    if not path.exists():
        pytest.skip(f"needs {path}; run `python run_all.py fetch {name}@1`")
    return path


@pytest.fixture(scope="module")
def faces(fixtures):
    images = load_fixture_images(fixtures, ["celebamaskhq_0.jpg", "celebamaskhq_1.jpg", "000121.jpg"], size=256)
    return EditSet(edited=images.flip(-1), original=images, reconstruction=images, source_text="face",
                   target_text="smiling face")


@pytest.mark.parametrize("name, file", [("clip-vit-b32-openai", "ViT-B-32.pt"), ("clip-vit-b16-openai", "ViT-B-16.pt"),
                                        ("clip-vit-l14-openai", "ViT-L-14.pt")])
def test_real_clip_sdir(faces, name, file):
    result = get_metric("sdir@1", backend=name, weights=fetched(name, file)).compute(faces)
    assert -1 <= result.primary.mean <= 1


def test_real_bisenet_parses_a_face(faces):
    result = get_metric("sc@1", weights=fetched("bisenet-79999", "79999_iter.pth")).compute(faces)
    assert result.primary.mean > 0.8  # a mirrored aligned face keeps most labels


def test_real_segformer(faces):
    result = get_metric("sc@1", backend="segformer-face-parsing", input_size=512,
                        weights=fetched("segformer-face-parsing", "model.safetensors").parent).compute(faces)
    assert result.primary.mean > 0.8


def test_real_inception_fid(faces):
    path = fetched("inception-v3-compat", "weights-inception-2015-12-05-6726825d.pth")
    result = get_metric("fid@1", weights=path, bootstrap_resamples=0).compute(faces)
    assert result.primary.mean > 0


def test_real_arcface_mirror_beats_other_person(faces):
    path = fetched("arcface-buffalo-l", "w600k_r50.onnx")  # unzipped from buffalo_l.zip
    a, b = faces.original[0], faces.original[1]
    edits = EditSet(edited=torch.stack([a.flip(-1), b]), original=torch.stack([a, a]))
    same, other = get_metric("id@1", weights=path).compute(edits).per_image["value"]
    assert same > other
