"""Inversion, the cached reference trajectory, and the asymmetric reverse process on tiny seeded models."""

import pytest
import torch
from models_helpers import micro_model, one_thread, smooth_images, tiny_ft, tiny_model  # noqa: F401

import models as M
from benchmark.core.errors import BenchError, DataError
from benchmark.core.runtime import generator


class ZeroFt(torch.nn.Module):
    def forward(self, h, temb):
        return torch.zeros_like(h)


class RecordingFt(torch.nn.Module):
    """Δh = 0.5 · h; records the time embeddings it was called with."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, h, temb):
        self.calls.append(temb)
        return 0.5 * h


def _plain_ddim(model, x_T, n_steps):
    """Plain DDIM written out independently of generate(): ε from the raw diffusers UNet."""
    a = model.alphas_cumprod
    x = x_T.clone()
    grid = M.timestep_grid(n_steps)
    with torch.no_grad():
        for i in range(n_steps - 1, -1, -1):
            t = grid[i]
            a_t, a_n = float(a[t]), (float(a[grid[i - 1]]) if i > 0 else 1.0)
            eps = model.unet.unet(x, t).sample
            x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
            x = a_n ** 0.5 * x0 + (1 - a_n) ** 0.5 * eps
    return x


def test_zero_delta_h_is_exactly_plain_ddim():
    model = tiny_model()
    x_T = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = M.generate(model, x_T, schedule=M.EditSchedule(n_steps=10)).latents
    zero = M.generate(model, x_T, [(ZeroFt(), 1.0)], M.EditSchedule(n_steps=10, t_edit=0)).latents
    assert (zero - plain).abs().max() <= 1e-6
    independent = _plain_ddim(model, x_T, 10)
    # a random UNet is no denoiser: x_0 reaches |x| ~ 1e2, so compare relative to its scale
    assert (plain - independent).abs().max() <= 1e-6 * independent.abs().max()


@pytest.mark.slow
def test_inversion_reconstruction_error_shrinks_with_steps():
    """DDIM inversion is first-order: the round-trip error falls as the grid refines (numbers in the report)."""
    model = micro_model()
    images = smooth_images(1, size=16)
    errors = {}
    for n in (10, 40, 200):
        inv = M.invert(model, images, n, reconstruct=True)
        errors[n] = float((inv.reconstruction - images).pow(2).mean())
    assert errors[10] > errors[40] > errors[200]
    assert errors[200] < errors[10] / 5


def test_reference_trajectory_is_the_plain_reverse_path():
    model = micro_model()
    images = smooth_images(3, size=16)
    inv = M.invert(model, images, 10, reference_steps=10, reference_min_t=400, reconstruct=True)
    assert inv.reference.timesteps == [t for t in reversed(M.timestep_grid(10)) if t >= 400]
    x0, kept = M.plain_reverse(model, inv.x_T, 10, keep_from_t=400)
    for t in inv.reference.timesteps:
        assert torch.equal(inv.reference.get(t), kept[t])
    assert torch.equal(inv.reconstruction, x0)  # one shared reverse pass, the same numbers
    # a different reference grid needs a second pass; storage can be fp16
    inv16 = M.invert(model, images, 10, reference_steps=20, reference_min_t=500, reconstruct=True,
                     storage_dtype=torch.float16)
    assert inv16.reference.x0[999].dtype == torch.float16
    assert torch.equal(inv16.reconstruction, inv.reconstruction)
    fp32 = M.plain_reverse(model, inv.x_T, 20, keep_from_t=999)[1][999]
    assert (inv16.reference.get(999) - fp32).abs().max() <= 1e-3 * fp32.abs().max()  # fp16 rounding only


def test_inversion_batches_and_round_trips_through_tensors():
    model = micro_model()
    images = smooth_images(5, size=16)
    whole = M.invert(model, images, 6, reference_steps=6, reference_min_t=0, reconstruct=True)
    chunked = M.invert(model, images, 6, reference_steps=6, reference_min_t=0, reconstruct=True, batch_size=2)
    # the same up to batch-size-dependent CPU rounding, which inversion amplifies on a random UNet
    assert (whole.x_T - chunked.x_T).abs().max() <= 1e-4 * whole.x_T.abs().max()
    assert whole.reference.timesteps == chunked.reference.timesteps
    tensors, meta = whole.select([4, 1]).to_tensors()
    back = M.Inversion.from_tensors(tensors, meta)
    assert torch.equal(back.x_T, whole.x_T[[4, 1]])
    assert torch.equal(back.reference.get(999), whole.reference.get(999, [4, 1]))
    with pytest.raises(DataError):
        M.Inversion.from_tensors({"x_T": whole.x_T}, {})


def test_invert_refuses_uint8_and_wrong_sizes():
    model = micro_model()
    with pytest.raises(DataError, match="from_uint8"):
        M.invert(model, torch.zeros(1, 3, 16, 16, dtype=torch.uint8), 4)
    with pytest.raises(DataError, match="16×16"):
        M.invert(model, torch.zeros(1, 3, 32, 32), 4)


def test_generate_refuses_a_wrong_x_T_shape():
    with pytest.raises(DataError, match="expects N×3×16×16"):
        M.generate(micro_model(), torch.zeros(1, 3, 32, 32))


def test_edit_only_inside_t_edit_window_and_uses_unedited_h():
    model = micro_model()
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ft = RecordingFt()
    schedule = M.EditSchedule(n_steps=10, t_edit=500)
    out = M.generate(model, x_T, [(ft, 1.0)], schedule, return_delta_h=True)
    window = [t for t in M.timestep_grid(10) if t >= 500]
    assert sorted(out.delta_h) == window
    assert len(ft.calls) == len(window)
    # the direction recorded at the first step is 0.5 · h of the *unedited* x_T
    h = model.unet.encode(x_T, 999).h
    assert torch.allclose(out.delta_h[999], 0.5 * h, atol=1e-6)
    plain = M.generate(model, x_T, schedule=schedule)
    assert (out.latents - plain.latents).abs().max() > 1e-3


def test_fixed_delta_h_reproduces_the_f_t_run():
    model = micro_model()
    ft = tiny_ft(model)
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    schedule = M.EditSchedule(n_steps=8, t_edit=300, delta_scale=0.7)
    run = M.generate(model, x_T, [(ft, 1.0)], schedule, return_delta_h=True)
    replay = M.generate(model, x_T, (), schedule, delta_h=run.delta_h)
    assert (replay.latents - run.latents).abs().max() <= 1e-6
    # a global Δh (one tensor for all t) and a mean Δh (per t, shared by the images) broadcast over the batch
    mean = {t: d.mean(0) for t, d in run.delta_h.items()}
    global_dh = torch.stack(list(mean.values())).mean(0)
    assert M.generate(model, x_T, (), schedule, delta_h=mean).latents.shape == x_T.shape
    g1 = M.generate(model, x_T, (), schedule, delta_h=global_dh, return_delta_h=True)
    assert all(torch.equal(d, global_dh.expand_as(d)) for d in g1.delta_h.values())
    with pytest.raises(BenchError, match="t="):
        M.generate(model, x_T, (), schedule, delta_h={999: global_dh})


def test_linear_combination_and_scales():
    model = micro_model()
    ft_a, ft_b = tiny_ft(model, seed=1), tiny_ft(model, seed=2)
    x_T = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    base = M.EditSchedule(n_steps=6, t_edit=400)
    combo = M.generate(model, x_T, [(ft_a, 0.6), (ft_b, -0.3)], base, return_delta_h=True)
    for t, d in combo.delta_h.items():
        enc = model.unet.encode(_x_at(model, x_T, [(ft_a, 0.6), (ft_b, -0.3)], base, t), t)
        assert torch.allclose(d, 0.6 * ft_a(enc.h, enc.temb) - 0.3 * ft_b(enc.h, enc.temb), atol=1e-5)
    # a global scale of −1 is the same as negating the coefficient; n_train/n_test rescales Δh
    neg = M.generate(model, x_T, [(ft_a, 1.0)], base.model_copy(update={"delta_scale": -1.0}))
    neg_coeff = M.generate(model, x_T, [(ft_a, -1.0)], base)
    assert (neg.latents - neg_coeff.latents).abs().max() <= 1e-6
    scaled = M.EditSchedule(n_steps=12, t_edit=400, n_train_steps=6, delta_scale=2.0)  # 2 · 6/12 = 1
    assert scaled.effective_scale == pytest.approx(1.0)
    unscaled = M.EditSchedule(n_steps=12, t_edit=400)
    assert torch.equal(M.generate(model, x_T, [(ft_a, 1.0)], scaled).latents,
                       M.generate(model, x_T, [(ft_a, 1.0)], unscaled).latents)
    doubled = scaled.model_copy(update={"n_train_steps": 12})  # 2 · 12/12 = 2
    assert not torch.equal(M.generate(model, x_T, [(ft_a, 1.0)], doubled).latents,
                           M.generate(model, x_T, [(ft_a, 1.0)], unscaled).latents)
    assert M.official_multi_attribute_coefficients([1.0, 1.0]) == pytest.approx([0.5 ** 0.5] * 2)


def _x_at(model, x_T, edits, schedule, t_stop):
    """x_t reached by the edited process just before step t_stop (by rerunning with a truncated grid)."""
    x = x_T
    with torch.no_grad():
        for t, t_next in M.reverse_steps(schedule.n_steps, schedule.t0):
            if t == t_stop:
                return x
            enc = model.unet.encode(x, t)
            d = sum(c * f(enc.h, enc.temb) for f, c in edits)
            eps, eps_e = model.unet.decode(torch.cat([enc.h, enc.h + d]), enc.skips, enc.temb).chunk(2)
            x, _ = M.ddim_step(x, eps_e, eps, model.alpha(t), model.alpha(t_next))
    raise AssertionError("t_stop not on the grid")


def test_boost_noise_is_seeded_and_per_image_generators_are_batch_independent():
    model = micro_model()
    x_T = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    schedule = M.EditSchedule(n_steps=8, t_boost=500)
    with pytest.raises(BenchError, match="generator"):
        M.generate(model, x_T, schedule=schedule)
    a = M.generate(model, x_T, schedule=schedule, generator=generator(7)).latents
    b = M.generate(model, x_T, schedule=schedule, generator=generator(7)).latents
    c = M.generate(model, x_T, schedule=schedule, generator=generator(8)).latents
    assert torch.equal(a, b) and not torch.equal(a, c)
    plain = M.generate(model, x_T, schedule=M.EditSchedule(n_steps=8)).latents
    assert (a - plain).abs().max() > 1e-3
    per_image = M.generate(model, x_T, schedule=schedule, generator=[generator(10 + i) for i in range(3)]).latents
    alone = M.generate(model, x_T[1:2], schedule=schedule, generator=[generator(11)]).latents
    # equal up to how the CPU kernels round for a batch of 3 vs 1 (values reach ~1e2 on a random UNet)
    assert (per_image[1:2] - alone).abs().max() <= 1e-5 * alone.abs().max()


def test_full_cpu_determinism_of_invert_and_generate():
    model = micro_model()
    images = smooth_images(2, size=16)
    ft = tiny_ft(model)
    schedule = M.EditSchedule(n_steps=8, t_edit=300, t_boost=200)

    def run():
        inv = M.invert(model, images, 8)
        return M.generate(model, inv.x_T, [(ft, 1.0)], schedule, generator(3)).images

    assert torch.equal(run(), run())
