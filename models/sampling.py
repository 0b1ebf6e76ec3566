"""DDIM inversion (with the cached reference trajectory) and the asymmetric reverse process."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from benchmark.core.errors import BenchError, DataError
from models.ddim import ddim_step
from models.diffusion_model import DiffusionModel
from models.fast_path import FastPath, activated
from models.schedule import inversion_steps, reverse_steps

FtCallable = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Generators = torch.Generator | Sequence[torch.Generator] | None


# ---------------------------------------------------------------------------------------------------------------
# Inversion
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ReferenceTrajectory:
    """P_t^orig of the plain DDIM reverse path from x_T on an `n_steps` grid, keyed by timestep.

    The training loss compares P_t^edit with it at every step; it depends only on the image, so it is computed
    once at inversion instead of at every step of every epoch (as the authors' loop does). Only t >= `min_t`
    is kept (training needs t >= t_edit). Tensors keep the storage dtype/device they were made with.
    """

    n_steps: int
    t0: int
    min_t: int
    x0: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def timesteps(self) -> list[int]:
        return sorted(self.x0, reverse=True)

    def __len__(self) -> int:
        return next(iter(self.x0.values())).shape[0] if self.x0 else 0

    def missing(self, timesteps: Sequence[int]) -> list[int]:
        return [t for t in timesteps if t not in self.x0]

    def get(self, t: int, index: torch.Tensor | Sequence[int] | None = None, *,
            device: torch.device | str | None = None) -> torch.Tensor:
        """P_t^orig for images `index` (all by default), as float32 on `device`."""
        if t not in self.x0:
            raise BenchError(f"the reference trajectory has no entry for t={t} (it holds {self.timesteps[-1]}.."
                             f"{self.timesteps[0]} on a {self.n_steps}-step grid)",
                             fix="invert with reference_steps equal to the training steps and "
                                 "reference_min_t <= t_edit")
        x = self.x0[t] if index is None else self.x0[t][_as_index(index)]
        return x.to(device=device, dtype=torch.float32)

    def select(self, index) -> ReferenceTrajectory:
        idx = _as_index(index)
        return ReferenceTrajectory(self.n_steps, self.t0, self.min_t, {t: v[idx] for t, v in self.x0.items()})


@dataclass
class Inversion:
    """The result of `invert`: x_T (float32) and, on request, the reference trajectory and the reconstruction.

    `reconstruction` is in pixels ([-1, 1], float32): the plain DDIM (η = 0, no Δh) reverse process from x_T on
    the inversion grid, decoded by the model's codec.
    """

    x_T: torch.Tensor
    n_steps: int
    t0: int
    reference: ReferenceTrajectory | None = None
    reconstruction: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x_T.shape[0]

    def select(self, index) -> Inversion:
        idx = _as_index(index)
        return Inversion(
            x_T=self.x_T[idx], n_steps=self.n_steps, t0=self.t0,
            reference=None if self.reference is None else self.reference.select(idx),
            reconstruction=None if self.reconstruction is None else self.reconstruction[idx],
        )

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Flat tensors + string metadata, ready for `benchmark.core.atomic.save_safetensors`."""
        tensors = {"x_T": self.x_T}
        meta = {"n_steps": str(self.n_steps), "t0": str(self.t0)}
        if self.reconstruction is not None:
            tensors["reconstruction"] = self.reconstruction
        if self.reference is not None:
            meta.update(reference_n_steps=str(self.reference.n_steps), reference_min_t=str(self.reference.min_t))
            tensors.update({f"reference.{t}": v for t, v in self.reference.x0.items()})
        return {k: v.contiguous() for k, v in tensors.items()}, meta

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> Inversion:
        """Inverse of `to_tensors`."""
        try:
            reference = None
            if "reference_n_steps" in meta:
                x0 = {int(k.split(".", 1)[1]): v for k, v in tensors.items() if k.startswith("reference.")}
                reference = ReferenceTrajectory(int(meta["reference_n_steps"]), int(meta["t0"]),
                                                int(meta["reference_min_t"]), x0)
            return cls(x_T=tensors["x_T"], n_steps=int(meta["n_steps"]), t0=int(meta["t0"]),
                       reference=reference, reconstruction=tensors.get("reconstruction"))
        except (KeyError, ValueError) as e:
            raise DataError(f"not a saved Inversion (missing or bad field: {e})",
                            fix="delete the cached file so the inversion is recomputed") from None


def invert(model: DiffusionModel, images: torch.Tensor, n_steps: int = 40, *, t0: int = 999,
           reference_steps: int | None = None, reference_min_t: int = 0, reconstruct: bool = False,
           storage_dtype: torch.dtype = torch.float32, storage_device: torch.device | str = "cpu",
           batch_size: int | Literal["auto"] | None = None, fast_path: FastPath | None = None,
           progress: bool = False) -> Inversion:
    """DDIM-invert pixel images (N×C×H×W floats in [-1, 1]) to x_T with η = 0, ε taken at the lower t.

    `reference_steps`: also roll the plain DDIM reverse path from x_T on that grid and keep P_t^orig for
    t >= `reference_min_t` in `storage_dtype` (e.g. torch.float16 to halve memory). `reconstruct`: also return
    the DDIM reconstruction on the inversion grid. Both share one reverse pass when the grids agree.
    Results live on `storage_device`; images are processed `batch_size` at a time (None: all at once;
    "auto": as many as the free device memory allows, `models.batching.unet_forward_batch_size`).
    `fast_path`: speed options (`models.FastPath`; default: fp32).
    """
    _check_pixels(images, model)
    n = images.shape[0]
    if batch_size == "auto":
        from models.batching import unet_forward_batch_size

        batch_size = unet_forward_batch_size(model, maximum=n)
    batch_size = batch_size or n
    parts: list[Inversion] = []
    bar = tqdm(total=n, desc="DDIM inversion", unit="img", disable=not progress, leave=False)
    with torch.no_grad(), activated(model, fast_path) as fast:
        for start in range(0, n, batch_size):
            chunk = images[start:start + batch_size].to(model.device, torch.float32)
            with fast.autocast(model.device):
                parts.append(_invert_chunk(model, chunk, n_steps, t0, reference_steps, reference_min_t,
                                           reconstruct, storage_dtype, storage_device))
            bar.update(chunk.shape[0])
    bar.close()
    return _concat_inversions(parts)


def _invert_chunk(model, pixels, n_steps, t0, reference_steps, reference_min_t, reconstruct, storage_dtype,
                  storage_device) -> Inversion:
    x = model.codec.encode(pixels)
    for t, t_next in inversion_steps(n_steps, t0):
        eps = model.unet(x, t)
        x, _ = ddim_step(x, eps, eps, model.alpha(t), model.alpha(t_next))
    x_T = x
    reference = reconstruction = None
    if reference_steps is not None:
        x0_final, p_t = plain_reverse(model, x_T, reference_steps, t0, keep_from_t=reference_min_t)
        reference = ReferenceTrajectory(reference_steps, t0, reference_min_t,
                                        {t: v.to(storage_device, storage_dtype) for t, v in p_t.items()})
        if reconstruct and reference_steps == n_steps:
            reconstruction = model.codec.decode(x0_final)
    if reconstruct and reconstruction is None:
        reconstruction = model.codec.decode(plain_reverse(model, x_T, n_steps, t0)[0])
    return Inversion(
        x_T=x_T.to(storage_device), n_steps=n_steps, t0=t0, reference=reference,
        reconstruction=None if reconstruction is None else reconstruction.float().to(storage_device),
    )


def plain_reverse(model: DiffusionModel, x_T: torch.Tensor, n_steps: int, t0: int = 999, *,
                  keep_from_t: int | None = None) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Plain DDIM (η = 0, no edit) from x_T; returns x_0 (diffusion space) and P_t for every t >= keep_from_t."""
    x = x_T
    kept: dict[int, torch.Tensor] = {}
    for t, t_next in reverse_steps(n_steps, t0):
        eps = model.unet(x, t)
        x, x0 = ddim_step(x, eps, eps, model.alpha(t), model.alpha(t_next))
        if keep_from_t is not None and t >= keep_from_t:
            kept[t] = x0
    return x, kept


def _concat_inversions(parts: list[Inversion]) -> Inversion:
    first = parts[0]
    if len(parts) == 1:
        return first
    reference = None
    if first.reference is not None:
        ref = first.reference
        reference = ReferenceTrajectory(ref.n_steps, ref.t0, ref.min_t, {
            t: torch.cat([p.reference.x0[t] for p in parts]) for t in ref.x0})
    reconstruction = None if first.reconstruction is None else torch.cat([p.reconstruction for p in parts])
    return Inversion(torch.cat([p.x_T for p in parts]), first.n_steps, first.t0, reference, reconstruction)


# ---------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------
class EditSchedule(BaseModel):
    """How the asymmetric reverse process runs (frozen; `model_dump()` goes into results).

    - `n_steps` on the authors' grid up to `t0`;
    - Δh is applied at t >= `t_edit`; η = 1 (seeded noise) at t < `t_boost` ("quality boosting"), η = 0 elsewhere;
    - the Δh added to h is `delta_scale · (n_train_steps / n_steps) · Σ cᵢ fᵢ(h, temb)`; the second factor is the
      authors' scaling for sampling with more steps than training (1 when `n_train_steps` is None).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_steps: int = Field(40, ge=2)
    t0: int = Field(999, ge=1)
    t_edit: int = Field(0, ge=0)
    t_boost: int = Field(0, ge=0)
    delta_scale: float = 1.0
    n_train_steps: int | None = Field(None, ge=2)

    @model_validator(mode="after")
    def _grid_fits(self):
        if self.n_steps > self.t0 + 1:
            raise ValueError(f"n_steps={self.n_steps} does not fit between 0 and t0={self.t0}")
        return self

    @property
    def step_scale(self) -> float:
        return 1.0 if self.n_train_steps is None else self.n_train_steps / self.n_steps

    @property
    def effective_scale(self) -> float:
        return self.delta_scale * self.step_scale


@dataclass
class Generation:
    """The result of `generate`.

    `latents`: x_0 in the diffusion space; `images`: `codec.decode(latents)`, pixels in [-1, 1].
    `delta_h` (on request): t -> the Δh direction Σ cᵢ fᵢ(h_t, temb_t) (+ any fixed Δh) *before* the schedule's
    `effective_scale` (also recorded here), so that feeding it back as `delta_h=` with the same schedule
    reproduces the run exactly.
    """

    latents: torch.Tensor
    images: torch.Tensor
    scale: float
    delta_h: dict[int, torch.Tensor] | None = None


def generate(model: DiffusionModel, x_T: torch.Tensor, edits: Sequence[tuple[FtCallable, float]] = (),
             schedule: EditSchedule | None = None, generator: Generators = None, *,
             delta_h: Mapping[int, torch.Tensor] | torch.Tensor | None = None, return_delta_h: bool = False,
             progress: bool = False) -> Generation:
    """The Asyrp reverse process from x_T: P_t from the edited ε̃, D_t from the original ε.

    `edits`: (f_t, coefficient) pairs, each f_t called as `f_t(h, temb) -> Δh` on the *unedited* h; their
    weighted sum is the direction. `delta_h`: a fixed direction added to it, either one tensor for every t
    (a global Δh) or a mapping t -> tensor (e.g. the mean Δh_t over images); shapes C×H×W, 1×C×H×W or N×C×H×W.
    `generator`: seeds the η = 1 noise below t_boost; one generator for the batch, or one per image (then the
    noise of an image does not depend on what it is batched with). The last step lands on ᾱ = 1; no clipping.
    """
    schedule = schedule or EditSchedule()
    if x_T.ndim != 4 or tuple(x_T.shape[1:]) != model.latent_shape:
        expected = "×".join(map(str, model.latent_shape))
        raise DataError(f"x_T has shape {tuple(x_T.shape)}; {model.name} expects N×{expected}",
                        fix="pass the x_T of invert() on this model, or noise of that shape")
    edits = _check_edits(edits)
    fixed = _FixedDelta(delta_h)
    steps = reverse_steps(schedule.n_steps, schedule.t0)
    if any(t < schedule.t_boost for t, _ in steps) and generator is None:
        raise BenchError(f"t_boost={schedule.t_boost} adds noise below it, and no generator was given",
                         fix="pass generator=benchmark.core.runtime.generator(seed) for reproducible noise")
    x = x_T.to(model.device, torch.float32)
    scale = schedule.effective_scale
    record: dict[int, torch.Tensor] | None = {} if return_delta_h else None
    with torch.no_grad():
        for t, t_next in tqdm(steps, desc="Asyrp sampling", unit="step", disable=not progress, leave=False):
            if t >= schedule.t_edit and (edits or fixed):
                eps, eps_edit, direction = edited_epsilons(model, x, t, edits, fixed, scale)
                if record is not None:
                    record[t] = direction
            else:
                eps = eps_edit = model.unet(x, t)
            eta = 1.0 if t < schedule.t_boost else 0.0
            noise = _noise(x, generator) if eta else None
            x, _ = ddim_step(x, eps_edit, eps, model.alpha(t), model.alpha(t_next), eta=eta, noise=noise)
        images = model.codec.decode(x)
    return Generation(latents=x, images=images, scale=scale, delta_h=record)


def edited_epsilons(model: DiffusionModel, x: torch.Tensor, t: int, edits, fixed: _FixedDelta, scale: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One editing step's (ε, ε̃, direction): h encoded once, the direction from the unedited h."""
    enc = model.unet.encode(x, t)
    direction = _direction(edits, fixed, enc.h, enc.temb, t)
    # two decodes rather than one batched call: ε then matches plain DDIM bit for bit
    eps = model.unet.decode(enc.h, enc.skips, enc.temb)
    eps_edit = model.unet.decode(enc.h + scale * direction, enc.skips, enc.temb)
    return eps, eps_edit, direction


def official_multi_attribute_coefficients(coefficients: Sequence[float]) -> list[float]:
    """The authors' `--multiple_attr` rule: with k attributes each coefficient is divided by sqrt(k)."""
    k = len(coefficients)
    return [c / math.sqrt(k) for c in coefficients]


class _FixedDelta:
    def __init__(self, delta_h):
        self.value = delta_h

    def __bool__(self) -> bool:
        return self.value is not None

    def at(self, t: int, like: torch.Tensor) -> torch.Tensor:
        value = self.value
        if isinstance(value, Mapping):
            if t not in value:
                raise BenchError(f"the fixed Δh has no entry for t={t}",
                                 fix="give a Δh for every timestep >= t_edit on the sampling grid")
            value = value[t]
        value = value.to(like.device, like.dtype)
        if value.ndim == like.ndim - 1:
            value = value.unsqueeze(0)
        if value.shape[1:] != like.shape[1:] or value.shape[0] not in (1, like.shape[0]):
            raise BenchError(f"fixed Δh of shape {tuple(value.shape)} does not match h of shape {tuple(like.shape)}")
        return value.expand_as(like)


def _direction(edits, fixed: _FixedDelta, h: torch.Tensor, temb: torch.Tensor, t: int) -> torch.Tensor:
    direction = torch.zeros_like(h)
    for ft, coeff in edits:
        direction = direction + coeff * ft(h, temb)
    if fixed:
        direction = direction + fixed.at(t, h)
    return direction


def _noise(x: torch.Tensor, generator: Generators) -> torch.Tensor:
    if isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    gens = list(generator)
    if len(gens) != x.shape[0]:
        raise BenchError(f"got {len(gens)} generators for {x.shape[0]} images", fix="pass one generator per image")
    return torch.cat([torch.randn((1, *x.shape[1:]), generator=g, device=g.device, dtype=x.dtype).to(x.device)
                      for g in gens])


def _check_edits(edits) -> list[tuple[FtCallable, float]]:
    out = []
    for item in edits:
        if not (isinstance(item, tuple | list) and len(item) == 2 and callable(item[0])):
            raise BenchError(f"each edit must be an (f_t, coefficient) pair, got {item!r}",
                             fix="pass edits=[(ft, 1.0)]")
        out.append((item[0], float(item[1])))
    return out


def _check_pixels(images: torch.Tensor, model: DiffusionModel) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DataError(f"expected images as an N×C×H×W tensor, got {getattr(images, 'shape', type(images))}")
    if not images.is_floating_point():
        raise DataError(f"expected float pixels in [-1, 1], got dtype {images.dtype}",
                        fix="convert uint8 images with benchmark.core.images.from_uint8")
    if tuple(images.shape[-2:]) != (model.image_size, model.image_size):
        raise DataError(f"expected {model.image_size}×{model.image_size} images for {model.name}, got "
                        f"{images.shape[-2]}×{images.shape[-1]}", fix="resize with the dataset's preprocessing")


def _as_index(index) -> torch.Tensor | slice:
    return index if isinstance(index, slice) else torch.as_tensor(index, dtype=torch.long)
