"""The DDIM step with the Asyrp asymmetry (authors' `utils/diffusion_utils.py::denoising_step`, ddim branch).

    P_t = (x_t − sqrt(1 − ᾱ_t) · ε̃) / sqrt(ᾱ_t)                    predicted x0, from the *edited* ε̃
    x_{t_next} = sqrt(ᾱ_next) · P_t + c2 · ε + c1 · z               direction from the *original* ε
    c1 = η · sqrt((1 − ᾱ_t/ᾱ_next) · (1 − ᾱ_next) / (1 − ᾱ_t)),   c2 = sqrt(1 − ᾱ_next − c1²)

With ε̃ = ε this is plain DDIM; with t_next > t it is DDIM inversion. No clipping of P_t. The coefficients are
formed in float64 from ᾱ and applied to the tensors in their own dtype.
"""

from __future__ import annotations

import math

import torch

from benchmark.core.errors import BenchError


def predict_x0(x: torch.Tensor, eps: torch.Tensor, a_t: float) -> torch.Tensor:
    """P_t: the x0 predicted from x_t and ε at ᾱ_t."""
    return (x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)


def ddim_step(x: torch.Tensor, eps_edit: torch.Tensor, eps: torch.Tensor, a_t: float, a_next: float, *,
              eta: float = 0.0, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One asymmetric step; returns (x_next, P_t). `noise` (same shape as x) is required when eta > 0."""
    x0 = predict_x0(x, eps_edit, a_t)
    if eta == 0:
        return math.sqrt(a_next) * x0 + math.sqrt(1.0 - a_next) * eps, x0
    if noise is None:
        raise BenchError("a stochastic DDIM step (eta > 0) needs a noise tensor",
                         fix="pass noise drawn from a seeded torch.Generator")
    c1 = eta * math.sqrt((1.0 - a_t / a_next) * (1.0 - a_next) / (1.0 - a_t))
    # max() guards the final step onto ᾱ = 1, where the difference is 0 up to rounding.
    c2 = math.sqrt(max(0.0, (1.0 - a_next) - c1 * c1))
    return math.sqrt(a_next) * x0 + c2 * eps + c1 * noise, x0
