"""What the synthetic CLIP trains on besides the renders: skin-hue jitter, and DDPM versions of the renders
captioned by what the oracle reads in them.

The f_t is trained through the CLIP on DDPM outputs, and S_dir compares a DDPM output with a render. A CLIP that
has only seen clean renders reads DDPM texture as meaning (docs/synthetic.md: a plain reconstruction scores −0.28
on "smiling face"). SDEdit-style versions (noised to a moderate t, denoised in a few DDIM steps) show it that
texture. Their captions come from the oracle's reading, because denoising also moves the factors (the mouth by
0.26 on average), so the source render's caption would often be wrong.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


def skin_nuisance_axis() -> torch.Tensor:
    """Unit RGB axis orthogonal to both skin ramps of the renderer (tan and green).

    In the renders skin colour only ever moves along those two ramps, so a CLIP trained on them alone may read
    "tanned" off any colour change with a positive projection on its tan direction. A cheap one under an L1
    reconstruction penalty is a warmer hue at constant brightness, which is not tan in this world: jittering the
    skin along this axis under unchanged captions teaches the CLIP that it is not.
    """
    from benchmark.synthetic.renderer import skin_colour

    base = torch.tensor(skin_colour(0.0, 0.0))
    axis = torch.linalg.cross(torch.tensor(skin_colour(1.0, 0.0)) - base, torch.tensor(skin_colour(0.0, 1.0)) - base)
    return (axis / axis.norm()).float()


def jitter_skin_chroma(images_uint8: torch.Tensor, skin: torch.Tensor, amount: float,
                       generator: torch.Generator) -> torch.Tensor:
    """uint8 N×3×H×W with each image's `skin` pixels (bool N×H×W) shifted by s·axis, s ~ U(−amount, amount)."""
    s = (torch.rand(len(images_uint8), generator=generator) * 2 - 1) * amount
    shift = s.view(-1, 1, 1, 1) * skin_nuisance_axis().view(1, 3, 1, 1) * skin[:, None].float()
    return ((images_uint8.float() / 255.0 + shift).clamp(0, 1) * 255.0).round().to(torch.uint8)


@dataclass(frozen=True)
class DdpmVersionsConfig:
    noise_levels: tuple[int, ...] = (200, 300, 400)  # cycled per chunk of renders
    n_steps: int = 10
    chunk: int = 100
    seed: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def sdedit_versions(ddpm, images_uint8: torch.Tensor, cfg: DdpmVersionsConfig) -> torch.Tensor:
    """uint8 N×3×H×W: each render noised to t (chunk k gets `noise_levels[k % len]`) and denoised by `ddpm`."""
    import models
    from benchmark.core.images import from_uint8, to_uint8

    generator = torch.Generator().manual_seed(cfg.seed)
    out = []
    for k, start in enumerate(range(0, len(images_uint8), cfg.chunk)):
        x0 = ddpm.codec.encode(from_uint8(images_uint8[start:start + cfg.chunk]))
        t = cfg.noise_levels[k % len(cfg.noise_levels)]
        a = ddpm.alpha(t)
        x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * torch.randn(x0.shape, generator=generator)
        generated = models.generate(ddpm, x_t, schedule=models.EditSchedule(n_steps=cfg.n_steps, t0=t))
        out.append(to_uint8(generated.images))
    return torch.cat(out)


def oracle_factors(factors: list, readings: torch.Tensor) -> list:
    """`factors` with every continuous factor replaced by the oracle's reading (N×9, `FACTOR_NAMES` order),
    clipped to the renderer's range; the identity stays, as the oracle does not read it."""
    from benchmark.synthetic.renderer import FACTOR_NAMES, FACTOR_RANGES

    if readings.shape != (len(factors), len(FACTOR_NAMES)):
        raise ValueError(f"readings of shape {tuple(readings.shape)} do not fit {len(factors)} faces × "
                         f"{len(FACTOR_NAMES)} factors")
    out = []
    for f, row in zip(factors, readings.tolist(), strict=True):
        read = {n: round(min(FACTOR_RANGES[n][1], max(FACTOR_RANGES[n][0], v)), 6)
                for n, v in zip(FACTOR_NAMES, row, strict=True)}
        out.append(f.replace(**read))
    return out
