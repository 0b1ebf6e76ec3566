"""Timestep grids and the ᾱ schedule, exactly as the authors' code builds them.

The grid is not diffusers' `timestep_spacing`: Asyrp uses `int(linspace(0, 1, n) * t0 + 1e-6)` for inversion,
training and sampling alike, and pairs each t with the previous grid point (or -1, meaning ᾱ = 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from benchmark.core.errors import BenchError


def timestep_grid(n: int, t0: int = 999) -> list[int]:
    """The authors' ascending grid of `n` timesteps from 0 to `t0`:
    `[int(s + 1e-6) for s in linspace(0, 1, n) * t0]`."""
    _check_steps(n, t0)
    return [int(s + 1e-6) for s in np.linspace(0, 1, n) * t0]


def reverse_steps(n: int, t0: int = 999) -> list[tuple[int, int]]:
    """(t, t_next) pairs of the generative process, from `t0` down; the last pair is (0, -1), landing on ᾱ = 1."""
    grid = timestep_grid(n, t0)
    nexts = [-1, *grid[:-1]]
    return list(zip(reversed(grid), reversed(nexts)))


def inversion_steps(n: int, t0: int = 999) -> list[tuple[int, int]]:
    """(t, t_next) pairs of DDIM inversion, from 0 up to `t0`; ε is evaluated at the lower t of each pair."""
    grid = timestep_grid(n, t0)
    return list(zip(grid[:-1], grid[1:]))


def training_timesteps(n: int, t_edit: int, t0: int = 999) -> list[int]:
    """Ascending training grid: the n-step grid filtered to t >= t_edit.

    Filtered on the float grid *before* the int conversion, as the authors do; for some n this drops a point that
    `timestep_grid` rounds up onto t_edit (e.g. n = 1000 can yield 511.99999999999994 -> excluded for t_edit 512).
    """
    _check_steps(n, t0)
    seq = np.linspace(0, 1, n) * t0
    return [int(s + 1e-6) for s in seq[seq >= t_edit]]


def training_steps(n: int, t_edit: int, t0: int = 999) -> list[tuple[int, int]]:
    """(t, t_next) pairs of the training rollout, from `t0` down to the lowest t >= t_edit (which steps to -1)."""
    seq = training_timesteps(n, t_edit, t0)
    if not seq:
        raise BenchError(f"no training timestep is >= t_edit={t_edit} on the {n}-step grid up to {t0}",
                         fix="use a t_edit <= t0")
    nexts = [-1, *seq[:-1]]
    return list(zip(reversed(seq), reversed(nexts)))


def linear_alphas_cumprod(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, *,
                          float32_cumprod: bool = False) -> torch.Tensor:
    """ᾱ_t = Π(1 − β) for a linear β schedule, returned as float64 (the DDPM / Asyrp CelebA-HQ schedule).

    The step casts ᾱ to the tensor dtype only when it forms its coefficients. `float32_cumprod=True` reproduces
    the authors' `denoising_step`, which takes the cumulative product of float32 betas (a ~1e-6 relative
    difference); the values are still returned as float64.
    """
    if T < 2 or not (0 < beta_start < beta_end < 1):
        raise BenchError(f"bad linear β schedule: T={T}, beta_start={beta_start}, beta_end={beta_end}",
                         fix="use T >= 2 and 0 < beta_start < beta_end < 1")
    betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
    if float32_cumprod:
        one_minus = 1.0 - torch.from_numpy(betas).float()
        return one_minus.cumprod(dim=0).double()
    return torch.from_numpy(np.cumprod(1.0 - betas))


def alphas_cumprod_from_scheduler_config(config: Mapping[str, Any]) -> torch.Tensor:
    """ᾱ (float64) for a diffusers scheduler config (`scheduler_config.json` as a dict), computed in float64.

    Supports `linear` and `scaled_linear` (the latent diffusion models' linspace of √β, squared); diffusers builds
    the same β in float32 (a ~1e-7 relative difference). Anything this code would silently get wrong is refused:
    other β schedules, `trained_betas`, zero-terminal-SNR rescaling, and non-ε prediction types.
    """
    schedule = config.get("beta_schedule", "linear")
    problems = []
    if schedule not in ("linear", "scaled_linear"):
        problems.append(f"beta_schedule {schedule!r} (supported: linear, scaled_linear)")
    if config.get("trained_betas") is not None:
        problems.append("trained_betas")
    if config.get("rescale_betas_zero_snr"):
        problems.append("rescale_betas_zero_snr")
    if config.get("prediction_type", "epsilon") != "epsilon":
        problems.append(f"prediction_type {config.get('prediction_type')!r} (Asyrp needs ε-prediction)")
    if problems:
        raise BenchError("unsupported scheduler config: " + "; ".join(problems),
                         fix="use a model trained with ε-prediction and a linear or scaled_linear β schedule")
    T = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
    if T < 2 or not (0 < start < end < 1):
        raise BenchError(f"bad β schedule in scheduler config: T={T}, beta_start={start}, beta_end={end}")
    if schedule == "linear":
        betas = np.linspace(start, end, T, dtype=np.float64)
    else:
        betas = np.linspace(start ** 0.5, end ** 0.5, T, dtype=np.float64) ** 2
    return torch.from_numpy(np.cumprod(1.0 - betas))


def _check_steps(n: int, t0: int) -> None:
    if not isinstance(n, int) or n < 2:
        raise BenchError(f"a timestep grid needs at least 2 steps, got n={n!r}", fix="use n_steps >= 2 (e.g. 40)")
    if not isinstance(t0, int) or t0 < 1:
        raise BenchError(f"t0 must be a positive int, got {t0!r}", fix="use t0=999 for a 1000-step DDPM")
    if n > t0 + 1:
        raise BenchError(f"{n} steps do not fit between 0 and t0={t0}: timesteps would repeat",
                         fix=f"use at most {t0 + 1} steps")
