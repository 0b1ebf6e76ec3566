"""Asyrp on a latent diffusion model, with tiny random VQModel / AutoencoderKL + UNet (no weights, CPU).

References are independent of the code under test: diffusers' own schedulers and autoencoder calls, a hand-rolled
DDIM loop over `UNet2DModel.forward`, and the decoder evaluated on the quantised latent as a leaf.
"""

import functools

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from models_helpers import one_thread, smiling_training_setup, smooth_images  # noqa: F401

import models as M
from benchmark.core.errors import BenchError, DataError, MissingWeightsError

T0, T_EDIT, STEPS = 299, 100, 10


@functools.cache
def vq_model() -> M.DiffusionModel:
    return M.random_latent_diffusion_model(M.TINY_VQ_LDM_CONFIG, seed=0)


@functools.cache
def kl_model() -> M.DiffusionModel:
    return M.random_latent_diffusion_model(M.TINY_KL_LDM_CONFIG, seed=0)


def _ft(model, seed=0):
    u = model.unet
    return M.build_ft("conv", h_channels=u.h_channels, temb_dim=u.temb_dim, h_size=u.h_size, seed=seed,
                      norm_groups=8)


# ---------------------------------------------------------------------------------------------------- schedule
def test_scaled_linear_alphas_match_diffusers_and_are_float64():
    config = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.0015,
              "beta_end": 0.0195, "prediction_type": "epsilon"}
    ours = M.alphas_cumprod_from_scheduler_config(config)
    theirs = DDIMScheduler(**config).alphas_cumprod.double()  # built in float32 by diffusers
    assert ours.dtype == torch.float64 and ours.shape == (1000,)
    assert torch.allclose(ours, theirs, rtol=2e-6, atol=0)
    # the closed form at the ends: beta_t = (sqrt(b0) + t/(T-1) (sqrt(b1) - sqrt(b0)))^2
    assert float(ours[0]) == pytest.approx(1 - 0.0015, abs=1e-15)
    betas = np.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, 1000) ** 2
    assert float(ours[-1]) == pytest.approx(float(np.prod(1 - betas)), rel=1e-12)


def test_linear_scheduler_config_is_the_authors_schedule():
    ours = M.alphas_cumprod_from_scheduler_config({"beta_schedule": "linear", "beta_start": 1e-4,
                                                   "beta_end": 0.02, "num_train_timesteps": 1000})
    assert torch.equal(ours, M.linear_alphas_cumprod())


@pytest.mark.parametrize("bad", [{"beta_schedule": "squaredcos_cap_v2"}, {"prediction_type": "v_prediction"},
                                 {"rescale_betas_zero_snr": True}, {"trained_betas": [0.1, 0.2]}])
def test_unsupported_scheduler_configs_are_refused(bad):
    with pytest.raises(BenchError, match="unsupported scheduler config"):
        M.alphas_cumprod_from_scheduler_config({"beta_schedule": "linear", **bad})


def test_snr_matched_timestep_by_hand():
    from models.t_select import snr_matched_t

    src = M.linear_alphas_cumprod()
    dst = M.alphas_cumprod_from_scheduler_config({"beta_schedule": "scaled_linear", "beta_start": 0.0015,
                                                  "beta_end": 0.0195})
    t = snr_matched_t(513, src, dst)
    assert dst[t] <= src[513] < dst[t - 1]
    assert snr_matched_t(0, src, src) == 0


# ---------------------------------------------------------------------------------------------------- codecs
def test_vq_codec_encodes_before_the_quantiser_and_decodes_through_it():
    model = vq_model()
    vq, sf = model.codec.model, 0.7
    codec = M.VQCodec(vq, sf)
    x = smooth_images(2, size=32)
    with torch.no_grad():
        pre = vq.quant_conv(vq.encoder(x))  # the LDM's first-stage encoding: no quantisation
        assert torch.allclose(codec.encode(x), pre * sf, atol=1e-6)
        z = torch.randn(2, 3, 16, 16)
        quantised, _, _ = vq.quantize(z / sf)
        expected = vq.decoder(vq.post_quant_conv(quantised))  # what LDMPipeline decodes
        assert torch.allclose(codec.decode(z), expected, atol=1e-6)
    assert model.image_size == 32 and model.latent_shape == (3, 16, 16) and model.codec.spec()["type"] == "vq"


def test_vq_decode_passes_gradients_straight_through_the_quantiser():
    vq = vq_model().codec.model
    codec = M.VQCodec(vq, 1.0)
    z = torch.randn(1, 3, 16, 16, requires_grad=True)
    codec.decode(z).square().sum().backward()
    with torch.no_grad():
        quantised, _, _ = vq.quantize(z)
    leaf = quantised.clone().requires_grad_(True)
    vq.decoder(vq.post_quant_conv(leaf)).square().sum().backward()
    assert z.grad.abs().sum() > 0
    assert torch.allclose(z.grad, leaf.grad, atol=1e-6)  # d decode / dz = the decoder's gradient at z_q
    assert all(p.grad is None for p in vq.parameters())  # the codec's weights stay frozen


def test_kl_codec_uses_the_posterior_mode_and_the_scaling_factor():
    model = kl_model()
    vae = model.codec.model
    x = smooth_images(2, size=32)
    with torch.no_grad():
        moments = vae.quant_conv(vae.encoder(x))
        mean = moments.chunk(2, dim=1)[0]
        assert torch.allclose(model.codec.encode(x), mean * 0.5, atol=1e-6)
        assert torch.equal(model.codec.encode(x), model.codec.encode(x))  # deterministic: no sampling
        z = torch.randn(2, 3, 16, 16)
        assert torch.allclose(model.codec.decode(z), vae.decoder(vae.post_quant_conv(z / 0.5)), atol=1e-6)


# ---------------------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("make", [vq_model, kl_model], ids=["vq", "kl"])
def test_zero_delta_h_is_plain_ddim_in_latent_space(make):
    model = make()
    x = smooth_images(2, size=32)
    inv = M.invert(model, x, STEPS, t0=T0, reconstruct=True)

    # an independent DDIM over UNet2DModel.forward, on the latent
    with torch.no_grad():
        z = model.codec.encode(x)
        for t, t_next in M.inversion_steps(STEPS, T0):
            eps = model.unet.unet(z, t).sample
            a, an = model.alpha(t), model.alpha(t_next)
            z = an ** 0.5 * (z - (1 - a) ** 0.5 * eps) / a ** 0.5 + (1 - an) ** 0.5 * eps
        assert torch.allclose(inv.x_T, z, atol=1e-4)
        for t, t_next in M.reverse_steps(STEPS, T0):
            eps = model.unet.unet(z, t).sample
            a, an = model.alpha(t), model.alpha(t_next)
            z = an ** 0.5 * (z - (1 - a) ** 0.5 * eps) / a ** 0.5 + (1 - an) ** 0.5 * eps
        reference_pixels = model.codec.decode(z)

    zero = lambda h, temb: torch.zeros_like(h)  # noqa: E731
    schedule = M.EditSchedule(n_steps=STEPS, t0=T0, t_edit=0)
    edited = M.generate(model, inv.x_T, [(zero, 1.0)], schedule)
    plain = M.generate(model, inv.x_T, (), schedule)
    assert torch.equal(edited.latents, plain.latents) and torch.equal(edited.images, plain.images)
    assert torch.allclose(plain.latents, z, atol=1e-4)
    assert torch.allclose(plain.images, reference_pixels, atol=1e-3)
    assert torch.allclose(inv.reconstruction, plain.images)


def test_h_space_is_the_latent_unets_mid_block():
    model = vq_model()
    assert (model.unet.h_channels, model.unet.h_size) == (32, 8)
    enc = model.unet.encode(torch.randn(1, 3, 16, 16), 500)
    assert enc.h.shape == (1, 32, 8, 8)


# ---------------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained():
    return smiling_training_setup(vq_model(), 4, 32, steps=STEPS, t0=T0, t_edit=T_EDIT)


def test_the_clip_loss_on_decoded_p_t_reaches_f_t(trained):
    model, loss, images, inv = trained
    ft = _ft(model)
    before = {k: v.clone() for k, v in ft.state_dict().items()}
    # λ_recon = 0: the only path from the loss to f_t runs through the VQ decoder
    config = M.TrainConfig(t_edit=T_EDIT, n_train_steps=STEPS, t0=T0, lambda_recon=0.0)
    M.train_ft(model, ft, loss, images[:1], inv.select([0]), config, progress=False)
    moved = [k for k, v in ft.state_dict().items() if not torch.equal(v, before[k])]
    assert {"conv1.weight", "conv2.weight", "temb_proj.weight"} <= set(moved)


def test_one_epoch_on_four_images_lowers_the_directional_loss(trained):
    model, loss, images, inv = trained
    ft = _ft(model)
    config = M.TrainConfig(t_edit=T_EDIT, n_train_steps=STEPS, t0=T0)
    before = M.evaluate_losses(model, ft, loss, images, inv, config)
    M.train_ft(model, ft, loss, images, inv, config, progress=False)
    after = M.evaluate_losses(model, ft, loss, images, inv, config)
    old, new = before.per_image("clip"), after.per_image("clip")
    assert old.keys() == new.keys()
    # evaluation is deterministic, so compare the same (image, t) pairs: nearly all of them, and every image's
    # mean, must be lower after the epoch (measured: all 40 pairs, each image by 0.020-0.029)
    assert np.mean([new[k] < old[k] for k in old]) >= 0.9
    for image in range(4):
        mine = [k for k in old if k[1] == image]
        assert np.mean([new[k] for k in mine]) < np.mean([old[k] for k in mine]) - 0.01


# ---------------------------------------------------------------------------------------------------- loading
def test_snapshot_folder_round_trip(tmp_path):
    from diffusers import DDIMScheduler as Scheduler

    model = vq_model()
    model.unet.unet.save_pretrained(tmp_path / "unet")
    model.codec.model.save_pretrained(tmp_path / "vqvae")
    Scheduler(**M.TINY_VQ_LDM_CONFIG["scheduler"]).save_pretrained(tmp_path / "scheduler")
    loaded = M.load_latent_diffusion(tmp_path, scaling_factor=1.0)
    assert torch.equal(loaded.alphas_cumprod, model.alphas_cumprod)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded.unet(x, 400), model.unet(x, 400), atol=1e-6)
        assert torch.allclose(loaded.codec.decode(x), model.codec.decode(x), atol=1e-6)
    # without an explicit scale the config's is used (diffusers' default 0.18215 for a config without one)
    assert M.load_latent_diffusion(tmp_path).codec.scaling_factor == pytest.approx(0.18215)


def test_missing_snapshot_names_the_fetch_command(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(MissingWeightsError, match="lacks") as e:
        M.load_latent_diffusion(tmp_path, fetch_hint="run `python run_all.py fetch ldm-celebahq-256@1`")
    assert "fetch ldm-celebahq-256@1" in e.value.fix


def test_latent_channels_must_match_the_unet():
    from diffusers import VQModel

    cfg = M.TINY_VQ_LDM_CONFIG
    vq = VQModel(**{**cfg["vqvae"], "latent_channels": 4, "vq_embed_dim": 4})
    with pytest.raises(DataError, match="channels"):
        M.latent_diffusion_model(M.random_unet(cfg["unet"]), vq, cfg["scheduler"])


# ---------------------------------------------------------------------------------------------------- t_select
def test_curves_round_trip_and_select(tmp_path):
    curves = M.LpipsCurves(x={0: 0.1, 140: 1.25, 300: 1.3}, x0t={0: 0.0, 500: 0.25, 560: 0.31, 600: 0.4},
                           x_std={0: 0.0, 140: 0.1, 300: 0.1}, x0t_std={0: 0.0, 500: 0.1, 560: 0.1, 600: 0.1})
    curves.save(tmp_path, "toy")
    back = M.LpipsCurves.load(tmp_path, "toy")
    assert back == curves
    assert M.select_t_boost(back.x) == 140
    assert M.select_t_edit(back.x0t, 0.9) == 560  # 0.33 · 0.9 = 0.297


def test_lpips_curves_against_the_autoencoder_reconstruction():
    model = vq_model()
    x = smooth_images(1, size=32)
    l1 = lambda a, b: (a - b).abs().flatten(1).mean(1)  # noqa: E731
    by_input = M.compute_lpips_curves(model, x, n_steps=4, distance=l1)
    by_ae = M.compute_lpips_curves(model, x, n_steps=4, distance=l1, reference="autoencoder")
    with torch.no_grad():
        z = model.codec.encode(x)
        eps = model.unet(z, 0)
        _, p0 = M.ddim_step(z, eps, eps, model.alpha(0), model.alpha(333))
        decoded, ae = model.codec.decode(p0), model.codec.decode(z)
    first = min(by_input.x0t)
    assert by_input.x0t[first] == pytest.approx(float(l1(decoded, x)), rel=1e-5)
    assert by_ae.x0t[first] == pytest.approx(float(l1(decoded, ae)), rel=1e-5)
    with pytest.raises(BenchError, match="Did you mean: autoencoder"):
        M.compute_lpips_curves(model, x, n_steps=4, distance=l1, reference="autoencodr")
