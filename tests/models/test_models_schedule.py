"""Step grids, the ᾱ schedule, and the asymmetric DDIM step against hand-written equations."""

import math

import numpy as np
import pytest
import torch

import models as M
from benchmark.core.errors import BenchError


def test_grid_matches_the_authors_40_step_grid():
    grid = M.timestep_grid(40)
    # asyrp-reference.md §4: n = 40 -> [0, 25, 51, 76, 102, 128, 153, 179, ..., 947, 973, 999]
    assert grid[:8] == [0, 25, 51, 76, 102, 128, 153, 179]
    assert grid[-3:] == [947, 973, 999]
    assert len(grid) == 40 == len(set(grid))
    assert M.timestep_grid(1000) == list(range(1000))


def test_step_pairs_and_final_step_to_alpha_one():
    assert M.reverse_steps(40)[0] == (999, 973)
    assert M.reverse_steps(40)[-1] == (0, -1)
    assert M.inversion_steps(40)[0] == (0, 25)
    assert M.inversion_steps(40)[-1] == (973, 999)
    assert len(M.inversion_steps(40)) == 39


@pytest.mark.parametrize(("t_edit", "n_steps", "lowest"), [(513, 19, 537), (446, 22, 461), (321, 27, None)])
def test_training_window_lengths_from_the_reference(t_edit, n_steps, lowest):
    steps = M.training_steps(40, t_edit)
    assert len(steps) == n_steps
    assert steps[0] == (999, 973)
    assert steps[-1][1] == -1  # the lowest training step jumps to -1; its x_{t-1} is unused
    if lowest is not None:
        assert steps[-1][0] == lowest


def test_training_grid_filters_on_floats_like_the_authors():
    # linspace(0, 1, 1000) * 999 holds 16.999999999999996 at index 17: the authors' float filter drops it.
    assert np.linspace(0, 1, 1000)[17] * 999 < 17
    assert M.timestep_grid(1000)[17] == 17
    assert M.training_timesteps(1000, 17)[0] == 18


def test_bad_grids_are_refused():
    with pytest.raises(BenchError):
        M.timestep_grid(1)
    with pytest.raises(BenchError):
        M.timestep_grid(2000)
    with pytest.raises(BenchError):
        M.training_steps(40, 1000)


def test_linear_schedule_against_a_python_product():
    a = M.linear_alphas_cumprod()
    assert a.dtype == torch.float64 and a.shape == (1000,)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    for t in (0, 1, 512, 999):
        assert math.isclose(float(a[t]), math.prod(1 - b for b in betas[:t + 1]), rel_tol=1e-12)
    official = M.linear_alphas_cumprod(float32_cumprod=True)
    assert torch.allclose(official, a, rtol=2e-5, atol=0)
    assert not torch.equal(official, a)


def _reference_step(x, eps_edit, eps, a_t, a_next, eta, z):
    """The authors' equations written out in float64."""
    x, eps_edit, eps, z = (v.double() for v in (x, eps_edit, eps, z))
    x0 = (x - (1 - a_t) ** 0.5 * eps_edit) / a_t ** 0.5
    sigma = eta * ((1 - a_next) / (1 - a_t)) ** 0.5 * (1 - a_t / a_next) ** 0.5 if eta else 0.0
    return a_next ** 0.5 * x0 + (1 - a_next - sigma ** 2) ** 0.5 * eps + sigma * z, x0


REVERSE = [(999, 973), (512, 486), (25, 0), (0, -1)]


@pytest.mark.parametrize(("eta", "t", "t_next"),
                         [(0.0, *p) for p in REVERSE] + [(1.0, *p) for p in REVERSE] + [(0.0, 25, 51)])
def test_asymmetric_step_matches_the_equations(eta, t, t_next):
    a = M.linear_alphas_cumprod()
    a_t = float(a[t])
    a_next = 1.0 if t_next == -1 else float(a[t_next])
    g = torch.Generator().manual_seed(t)
    x, e1, e2, z = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(4))
    x_next, x0 = M.ddim_step(x, e1, e2, a_t, a_next, eta=eta, noise=z)
    ref_next, ref_x0 = _reference_step(x, e1, e2, a_t, a_next, eta, z)
    assert torch.allclose(x_next.double(), ref_next, atol=1e-5, rtol=1e-5)
    assert torch.allclose(x0.double(), ref_x0, atol=1e-5, rtol=1e-5)


def test_stochastic_step_needs_noise():
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(BenchError, match="noise"):
        M.ddim_step(x, x, x, 0.5, 0.6, eta=1.0)


@pytest.mark.parametrize("t", [999, 750, 513])
def test_theorem_1_symmetric_shift_barely_moves_x(t):
    """Shifting ε by Δε in both P_t and D_t moves x_{t-1} by (sqrt(1−ᾱ_t−β_t) − sqrt(1−ᾱ_t))/sqrt(1−β_t)·Δε,
    tiny next to the shift of the P_t-only (Asyrp) edit."""
    a = M.linear_alphas_cumprod()
    a_t, a_prev = float(a[t]), float(a[t - 1])
    g = torch.Generator().manual_seed(1)
    x, eps, d_eps = (torch.randn(1, 3, 16, 16, generator=g, dtype=torch.float64) for _ in range(3))
    base, _ = M.ddim_step(x, eps, eps, a_t, a_prev)
    both, _ = M.ddim_step(x, eps + d_eps, eps + d_eps, a_t, a_prev)
    p_only, _ = M.ddim_step(x, eps + d_eps, eps, a_t, a_prev)
    beta = 1 - a_t / a_prev
    closed_form = (math.sqrt(1 - a_t - beta) - math.sqrt(1 - a_t)) / math.sqrt(1 - beta)
    assert torch.allclose(both - base, closed_form * d_eps, atol=1e-10)
    ratio = (both - base).norm() / (p_only - base).norm()
    assert ratio < 0.02
    # over one step of the 40-step grid (~26 timesteps) the cancellation is weaker but still large
    a_n = float(a[t - 26])
    both40, _ = M.ddim_step(x, eps + d_eps, eps + d_eps, a_t, a_n)
    p40, _ = M.ddim_step(x, eps + d_eps, eps, a_t, a_n)
    base40, _ = M.ddim_step(x, eps, eps, a_t, a_n)
    assert (both40 - base40).norm() / (p40 - base40).norm() < 0.25
