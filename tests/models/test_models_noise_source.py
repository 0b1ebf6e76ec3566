"""Editing from random noise: seeded x_T, the plain DDIM sample as the reference, and the CLIP source rule."""

import pytest
import torch
from models_helpers import micro_model, one_thread, tiny_clip, tiny_ft  # noqa: F401

import models as M
from benchmark.core.errors import BenchError
from models.noise_source import noise_latents, noise_source

T0, T_EDIT, STEPS = 299, 100, 6


def _independent_plain_ddim(model, x_T, n_steps, t0):
    """Plain DDIM over diffusers' own UNet2DModel.forward; returns x_0 and P_t per t."""
    x, kept = x_T.clone(), {}
    with torch.no_grad():
        for t, t_next in M.reverse_steps(n_steps, t0):
            eps = model.unet.unet(x, t).sample
            a, an = model.alpha(t), model.alpha(t_next)
            x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
            x, kept[t] = an ** 0.5 * x0 + (1 - an) ** 0.5 * eps, x0
    return x, kept


def test_noise_is_seeded_per_item_and_standard_normal():
    shape = (3, 16, 16)
    a = noise_latents(shape, 3, seed=5)
    assert torch.equal(a, noise_latents(shape, 3, seed=5))
    assert torch.equal(a[:2], noise_latents(shape, 2, seed=5))  # an item does not depend on how many are drawn
    assert torch.equal(a[1:], noise_latents(shape, 2, seed=5, start=1))
    assert not torch.equal(a, noise_latents(shape, 3, seed=6))
    big = noise_latents(shape, 200, seed=0)
    assert abs(float(big.mean())) < 0.01 and abs(float(big.std()) - 1) < 0.01
    assert float(torch.corrcoef(big.flatten(1)[:50]).fill_diagonal_(0).abs().max()) < 0.15  # items independent
    with pytest.raises(BenchError, match="out of range"):
        noise_latents(shape, 1, seed=-1)


def test_reference_and_sample_are_the_plain_ddim_path_from_x_T():
    model = micro_model()
    src = noise_source(model, 3, seed=1, n_steps=STEPS, t0=T0, reference_steps=STEPS, reference_min_t=T_EDIT)
    inv = src.inversion
    assert inv.x_T.shape == (3, *model.latent_shape) and (inv.n_steps, inv.t0) == (STEPS, T0)
    x0, kept = _independent_plain_ddim(model, inv.x_T, STEPS, T0)
    scale = x0.abs().max()
    assert (inv.reconstruction - model.codec.decode(x0)).abs().max() <= 1e-5 * scale
    assert inv.reference.timesteps == [t for t in kept if t >= T_EDIT]
    for t in inv.reference.timesteps:
        assert (inv.reference.get(t) - kept[t]).abs().max() <= 1e-5 * kept[t].abs().max()
    # a different reference grid takes a second pass; the sample stays on the n_steps grid
    other = noise_source(model, 3, seed=1, n_steps=STEPS, t0=T0, reference_steps=2 * STEPS, batch_size=2)
    assert other.inversion.reference.n_steps == 2 * STEPS
    assert (other.inversion.reconstruction - inv.reconstruction).abs().max() <= 1e-5 * scale
    # Δh = 0 from the same x_T is that sample: the reference an edit is measured against
    zero = M.generate(model, inv.x_T, [(lambda h, temb: torch.zeros_like(h), 1.0)],
                      M.EditSchedule(n_steps=STEPS, t0=T0, t_edit=T_EDIT))
    assert torch.equal(zero.images, inv.reconstruction)


def test_clip_source_rule():
    model = micro_model()
    zeros = noise_source(model, 2, seed=3, n_steps=STEPS, t0=T0)
    assert zeros.clip_source == "zeros" and torch.count_nonzero(zeros.images) == 0
    assert zeros.images.shape == zeros.inversion.reconstruction.shape == (2, 3, 16, 16)
    sample = noise_source(model, 2, seed=3, n_steps=STEPS, t0=T0, clip_source="sample")
    assert torch.equal(sample.images, sample.inversion.reconstruction)
    assert torch.equal(sample.inversion.x_T, zeros.inversion.x_T)
    assert zeros.spec() != sample.spec() and zeros.ids == ["noise-s3-00000", "noise-s3-00001"]
    with pytest.raises(BenchError, match="Did you mean"):
        noise_source(model, 2, seed=3, clip_source="sampel")


def test_train_ft_runs_from_noise_with_the_chosen_clip_source():
    model = micro_model()
    clip, tokenizer = tiny_clip()
    loss = M.DirectionalClipLoss(clip, tokenizer, "face", "smiling face")
    config = M.TrainConfig(t_edit=T_EDIT, n_train_steps=STEPS, t0=T0)
    kw = dict(n_steps=STEPS, t0=T0, reference_steps=STEPS, reference_min_t=T_EDIT)
    zeros = noise_source(model, 2, seed=4, **kw)
    sample = noise_source(model, 2, seed=4, clip_source="sample", **kw)
    ft = tiny_ft(model, seed=5)
    by_zeros = M.evaluate_losses(model, ft, loss, zeros.images, zeros.inversion, config)
    by_sample = M.evaluate_losses(model, ft, loss, sample.images, sample.inversion, config)
    official = M.evaluate_losses(model, ft, loss, zeros.images, zeros.inversion, config, recompute_reference=True)
    # the cached reference is the one the authors' loop rolls alongside; the source only moves the CLIP term
    assert by_zeros.per_image("recon") == pytest.approx(official.per_image("recon"), rel=1e-5)
    assert by_zeros.per_image("recon") == pytest.approx(by_sample.per_image("recon"), rel=1e-6)
    assert by_zeros.per_image("clip") != pytest.approx(by_sample.per_image("clip"), abs=1e-4)
    # first step by hand: the CLIP source is the all-zero image
    x_T = zeros.inversion.x_T[:1]
    (t, t_next) = M.training_steps(STEPS, T_EDIT, T0)[0]
    with torch.no_grad():
        enc = model.unet.encode(x_T, t)
        eps, eps_edit = (model.unet.decode(h, enc.skips, enc.temb) for h in (enc.h, enc.h + ft(enc.h, enc.temb)))
        _, p_edit = M.ddim_step(x_T, eps_edit, eps, model.alpha(t), model.alpha(t_next))
        expected = loss(model.codec.decode(p_edit), loss.encode_images(torch.zeros(1, 3, 16, 16)))
    assert by_zeros.per_image("clip")[(0, 0, t)] == pytest.approx(float(expected), rel=1e-5)
    result = M.train_ft(model, ft, loss, zeros.images, zeros.inversion, config, progress=False)
    assert len(result.history.steps) == 2 * len(M.training_steps(STEPS, T_EDIT, T0))
