"""The shipped synthetic latent diffusion model (benchmark/synthetic/assets/ldm): digests, loading through the
harness loader, and the cheap known-answer checks on a few test faces. The full checks (100 faces, trained f_t,
oracle shifts) are `python -m benchmark.synthetic.ldm_checks`, whose output is results/synthetic-ldm/."""

import json

import pytest
import torch
from models_helpers import one_thread  # noqa: F401

from benchmark.core.paths import REPO_ROOT
from benchmark.synthetic import ldm_checks


@pytest.fixture(scope="module")
def shipped():
    model, pixels, ids = ldm_checks.load_model_and_images(limit=8)
    return model, pixels


def test_the_shipped_model_is_a_vq_latent_model_with_its_own_scale(shipped):
    model, pixels = shipped
    assert model.codec.spec()["type"] == "vq"
    assert model.latent_shape == (4, 16, 16) and model.image_size == 64
    assert (model.unet.h_channels, model.unet.h_size) == (64, 4)
    # the published scale makes the training latents unit-variance; check it on held-out faces
    with torch.no_grad():
        z = model.codec.encode(pixels)
    assert 0.7 < float(z.std()) < 1.4


def test_autoencoder_and_inversion_psnr_on_eight_test_faces(shipped):
    model, pixels = shipped
    ae = ldm_checks.check_autoencoder(model, pixels)
    inversion, inv = ldm_checks.check_inversion(model, pixels)
    assert ae["mean"] >= ldm_checks.BANDS["autoencoder_psnr_db"]["lower"]
    assert ae["mean"] - inversion["mean"] <= ldm_checks.BANDS["inversion_psnr_gap_db"]["upper"]
    zero = ldm_checks.check_delta_h_zero(model, inv.x_T[:2])
    assert zero["max_abs_diff_latents"] == 0.0 and zero["max_abs_diff_pixels"] == 0.0


def test_psnr_by_hand():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.2)  # mse 0.04 on a peak-to-peak range of 2: 10·log10(4 / 0.04) = 20 dB
    assert float(ldm_checks.psnr_db(a, b)[0]) == pytest.approx(20.0, abs=1e-5)


def test_committed_known_answers_match_the_shipped_model():
    path = REPO_ROOT / "results" / "synthetic-ldm" / "known_answers.json"
    result = json.loads(path.read_text())
    from benchmark.inputs.manifests import ManifestRegistry

    manifest = ManifestRegistry().get("model", "synthetic-ldm@1").manifest
    assert result["model"] == "synthetic-ldm@1"
    assert result["model_spec"]["codec"]["scaling_factor"] == pytest.approx(
        json.loads((REPO_ROOT / [f.path for f in manifest.files if f.path.endswith("vqvae/config.json")][0])
                   .read_text())["scaling_factor"])
    assert len(result["ids"]) == 100
