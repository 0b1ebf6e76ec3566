"""Editing from random noise: a seeded x_T ~ N(0, I) in place of an inversion (the authors' `--load_random_noise`).

`noise_source(model, n, seed=...)` returns a `NoiseSource`: an `Inversion` whose x_T is seeded noise, whose
reference trajectory is the plain DDIM path from that x_T (what the training loss compares P_t^edit with) and whose
`reconstruction` is the plain DDIM sample (η = 0, no Δh) from the same x_T, the image the metrics compare an edit
against; and the CLIP *source* images for `train_ft`, chosen by `clip_source`:

- `"zeros"` (default, for fidelity): an all-zero pixel image, which is what the authors' loop uses when no saved
  noise is given (`random_noise_pairs` builds the pairs `[zeros, zeros, x_T]`, and the loss takes its first item as
  the CLIP source). Zero in the [-1, 1] convention is a flat mid-grey image (the CLIP preprocessing maps it to 0.5).
- `"sample"`: the plain DDIM sample from x_T, decoded to pixels; the authors' `--saved_random_noise` path, and the
  right source when there is no real image. (The paper's P_t^src, a source that changes with t, needs a trainer
  that takes a per-step source; `train_ft` takes one image per item.)

`train_ft(model, ft, loss, src.images, src.inversion, config)` then trains from noise without any change to the
trainer. Item i's noise is drawn from its own generator seeded from (`seed`, i), so it does not depend on `n`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from benchmark.core.errors import BenchError
from benchmark.core.registry import require_choice
from models.diffusion_model import DiffusionModel
from models.sampling import Inversion, ReferenceTrajectory, plain_reverse

CLIP_SOURCES = ("zeros", "sample")
DEFAULT_CLIP_SOURCE = "zeros"  # the authors' behaviour without --saved_random_noise


@dataclass
class NoiseSource:
    """Seeded noise as an `Inversion` (x_T, reference trajectory, plain DDIM sample) plus the CLIP source images."""

    inversion: Inversion
    images: torch.Tensor
    clip_source: str
    seed: int
    start: int = 0

    def __len__(self) -> int:
        return len(self.inversion)

    @property
    def ids(self) -> list[str]:
        return [noise_id(self.seed, self.start + i) for i in range(len(self))]

    def spec(self) -> dict[str, Any]:
        """What the noise depends on (for cache keys and provenance), besides the model."""
        inv = self.inversion
        spec = {"type": "random-noise", "seed": self.seed, "start": self.start, "n": len(self), "n_steps": inv.n_steps,
                "t0": inv.t0, "clip_source": self.clip_source}
        if inv.reference is not None:
            spec.update(reference_steps=inv.reference.n_steps, reference_min_t=inv.reference.min_t)
        return spec


def noise_id(seed: int, index: int) -> str:
    return f"noise-s{seed}-{index:05d}"


def noise_latents(shape: tuple[int, ...], n: int, *, seed: int, start: int = 0) -> torch.Tensor:
    """n×`shape` standard normal draws, item i from `torch.Generator().manual_seed(item_seed(seed, start + i))`."""
    return torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(item_seed(seed, start + i)))
                      for i in range(n)]) if n else torch.empty((0, *shape))


def item_seed(seed: int, index: int) -> int:
    """One seed per (run seed, item): distinct for every pair with 0 <= index < 2**20 and seeds below 2**43."""
    if not 0 <= index < 2 ** 20 or not 0 <= seed < 2 ** 43:
        raise BenchError(f"noise item {index} / seed {seed} out of range",
                         fix="use a seed in [0, 2**43) and fewer than 2**20 items")
    return seed * 2 ** 20 + index


def noise_source(model: DiffusionModel, n: int, *, seed: int, start: int = 0, n_steps: int = 40, t0: int = 999,
                 reference_steps: int | None = None, reference_min_t: int = 0,
                 clip_source: str = DEFAULT_CLIP_SOURCE, storage_dtype: torch.dtype = torch.float32,
                 storage_device: torch.device | str = "cpu", batch_size: int | None = None) -> NoiseSource:
    """`n` seeded noise items for `model` (items `start` .. `start + n − 1` of seed `seed`).

    `n_steps`: the grid of the plain DDIM sample (`inversion.reconstruction`, in pixels). `reference_steps`: also
    keep P_t of the plain path on that grid for t >= `reference_min_t` (what `train_ft` needs); when the grids agree
    one reverse pass serves both. `clip_source`: "zeros" (the authors' default) or "sample" (see the module doc).
    """
    clip_source = require_choice("random-noise CLIP source", clip_source, list(CLIP_SOURCES))
    if n < 1:
        raise BenchError(f"a noise source needs at least one item, got n={n}")
    x_T = noise_latents(model.latent_shape, n, seed=seed, start=start)
    batch_size = batch_size or n
    parts = [_sample_chunk(model, x_T[i:i + batch_size], n_steps, t0, reference_steps, reference_min_t,
                           storage_dtype, storage_device) for i in range(0, n, batch_size)]
    reference = _concat_references(parts)
    sample = torch.cat([p[1] for p in parts])
    inversion = Inversion(x_T=x_T.to(storage_device), n_steps=n_steps, t0=t0, reference=reference,
                          reconstruction=sample)
    return NoiseSource(inversion, clip_source_images(sample, clip_source), clip_source, seed, start)


def clip_source_images(sample: torch.Tensor, clip_source: str = DEFAULT_CLIP_SOURCE) -> torch.Tensor:
    """The CLIP source images of noise items whose plain DDIM samples are `sample` (pixels in [-1, 1]): all-zero
    images for "zeros" (the authors' quirk), the samples themselves for "sample" (see the module doc)."""
    clip_source = require_choice("random-noise CLIP source", clip_source, list(CLIP_SOURCES))
    return torch.zeros_like(sample) if clip_source == "zeros" else sample.clone()


def _sample_chunk(model, x_T, n_steps, t0, reference_steps, reference_min_t, storage_dtype, storage_device):
    with torch.no_grad():
        x = x_T.to(model.device, torch.float32)
        reference = None
        if reference_steps is not None:
            x0, p_t = plain_reverse(model, x, reference_steps, t0, keep_from_t=reference_min_t)
            reference = ReferenceTrajectory(reference_steps, t0, reference_min_t,
                                            {t: v.to(storage_device, storage_dtype) for t, v in p_t.items()})
        if reference_steps != n_steps:
            x0 = plain_reverse(model, x, n_steps, t0)[0]
        sample = model.codec.decode(x0).float().to(storage_device)
    return reference, sample


def _concat_references(parts) -> ReferenceTrajectory | None:
    first = parts[0][0]
    if first is None:
        return None
    return ReferenceTrajectory(first.n_steps, first.t0, first.min_t,
                               {t: torch.cat([p[0].x0[t] for p in parts]) for t in first.x0})
