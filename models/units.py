"""Units of work for timing and FLOP counting: one step of each loop, built on a given model, CLIP loss and f_t.

A `Unit` runs one step of the real code path (the same functions the loops call) on seeded synthetic inputs; it
does not advance: every call starts from the same x_t, so repeated calls time the same work. `unit.items` is the
number of image-steps one call does (K·B for K attributes on B images), the divisor of the per-image numbers.

- `invert_step`: one DDIM inversion step (a plain UNet forward);
- `train_step`: one step of the project loop (encode; ε; ε̃ with gradient; CLIP; backward; optimiser step) with the
  cached reference, or with the reference rolled alongside (`reference="on-the-fly"`, one more UNet forward);
- `train_step_official`: the authors' loop structure: batch 1, the reference re-rolled at every step;
- `train_step_batched`: K attributes in one step (`models.multi_trainer`), a step after t0 (no shared encode);
- `edit_step`: one Asyrp sampling step at t ≥ t_edit (encode, f_t, two decodes);
- `component_units`: encode, decode, decode with the input gradient, CLIP image encoder forward + backward.

`count_gflops(unit)` counts with `torch.utils.flop_counter.FlopCounterMode` (matmul, convolution and attention
FLOPs; elementwise ops and norms are not counted), per item; it works on meta tensors (`meta_copy`), so the
full-size models need no real compute. `time_unit(unit)` gives median wall seconds per call and per item.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmark.core.registry import require_choice
from models.clip_loss import DirectionalClipLoss
from models.ddim import ddim_step
from models.diffusion_model import DiffusionModel
from models.fast_path import FastPath, activated
from models.sampling import Inversion, _FixedDelta, edited_epsilons
from models.trainer import TrainConfig, _optimizer, reference_step
from models.trainer import train_step as project_train_step

DEFAULT_T = 499  # a step in the editing interval; the cost of a step does not depend on t


@dataclass(frozen=True)
class Unit:
    name: str
    run: Callable[[], object]
    items: int
    model: DiffusionModel
    fast_path: FastPath | None = None
    description: str = ""

    def session(self):
        """The `with` block a unit runs in (its fast-path options applied to the model)."""
        return activated(self.model, self.fast_path)


def _inputs(model: DiffusionModel, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t in the diffusion space, pixels in [-1, 1]), seeded, on the model's device."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *model.latent_shape, generator=g)
    pixels = (torch.rand(batch, 3, model.image_size, model.image_size, generator=g) * 2 - 1)
    return x.to(model.device), pixels.to(model.device)


def _autocast(fast: FastPath | None, device):
    return (fast or FastPath()).autocast(device)


def invert_step(model: DiffusionModel, batch: int = 1, *, t: int = DEFAULT_T, fast_path: FastPath | None = None
                ) -> Unit:
    x, _ = _inputs(model, batch)
    a_t, a_next = model.alpha(t), model.alpha(min(t + 25, model.num_train_timesteps - 1))

    def run():
        with torch.no_grad(), _autocast(fast_path, model.device):
            eps = model.unet(x, t)
            return ddim_step(x, eps, eps, a_t, a_next)

    return Unit("invert_step", run, batch, model, fast_path, "one DDIM inversion step (plain UNet forward)")


def edit_step(model: DiffusionModel, ft: nn.Module, batch: int = 1, *, t: int = DEFAULT_T,
              fast_path: FastPath | None = None) -> Unit:
    x, _ = _inputs(model, batch)
    a_t, a_next = model.alpha(t), model.alpha(t - 25)
    ft = ft.to(model.device).eval()

    def run():
        with torch.no_grad(), _autocast(fast_path, model.device):
            eps, eps_edit, _ = edited_epsilons(model, x, t, [(ft, 1.0)], _FixedDelta(None), 1.0)
            return ddim_step(x, eps_edit, eps, a_t, a_next)

    return Unit("edit_step", run, batch, model, fast_path, "one Asyrp sampling step at t >= t_edit")


def train_step(model: DiffusionModel, ft: nn.Module, clip_loss: DirectionalClipLoss, batch: int = 1, *,
               reference: str = "cached", t: int = DEFAULT_T, fast_path: FastPath | None = None,
               name: str = "train_step") -> Unit:
    """The project loop's step (`models.trainer.train_step`); the reference cached or rolled alongside."""
    reference = require_choice("reference", reference, ["cached", "on-the-fly"])
    x, pixels = _inputs(model, batch)
    ft = ft.to(model.device).train()
    config = TrainConfig(t_edit=0, batch_size=batch)
    optimizer = _optimizer(ft, config)
    t_next = t - 25
    with torch.no_grad():
        source = clip_loss.encode_images(pixels)
        p_ref = x.clone()

    def run():
        with _autocast(fast_path, model.device):
            ref = reference_step(model, x, t, t_next)[1] if reference == "on-the-fly" else p_ref
            return project_train_step(model, ft, clip_loss, x, ref, source, t, t_next, config, optimizer)

    what = "reference rolled alongside" if reference == "on-the-fly" else "cached reference"
    return Unit(name, run, batch, model, fast_path, f"one training step, batch {batch}, {what}")


def train_step_official(model: DiffusionModel, ft: nn.Module, clip_loss: DirectionalClipLoss, *,
                        t: int = DEFAULT_T, fast_path: FastPath | None = None) -> Unit:
    """The authors' loop: batch 1 and the reference path re-rolled with the training step."""
    return train_step(model, ft, clip_loss, 1, reference="on-the-fly", t=t, fast_path=fast_path,
                      name="train_step_official")


def train_step_batched(model: DiffusionModel, fts: Sequence[nn.Module], clip_losses: Sequence[DirectionalClipLoss],
                       batch: int = 1, *, reference: str = "on-the-fly", ft_batching: str = "auto",
                       t: int = DEFAULT_T, fast_path: FastPath | None = None) -> Unit:
    """One attribute-batched step of K = len(fts) attributes on `batch` images, after the first (shared) step."""
    from models.ft_batch import BatchedFt
    from models.multi_trainer import AttributeRun, _Rollout

    k = len(fts)
    x, pixels = _inputs(model, batch)
    config = TrainConfig(t_edit=0, batch_size=batch)
    runs = [AttributeRun(ft.to(model.device).train(), loss, config) for ft, loss in zip(fts, clip_losses,
                                                                                      strict=True)]
    inversions = Inversion(x_T=x, n_steps=config.n_train_steps, t0=config.t0)
    if reference == "cached":
        from models.sampling import ReferenceTrajectory

        inversions.reference = ReferenceTrajectory(config.n_train_steps, config.t0, 0, {t: x.clone()})
    batched = BatchedFt([r.ft for r in runs], ft_batching, device=model.device)
    optimizers = [_optimizer(r.ft, config) for r in runs]
    rollout = _Rollout(model, runs, batched, optimizers, pixels, inversions, torch.arange(batch), reference,
                       fast_path or FastPath())
    active = list(range(k))

    def run():
        rollout.x, rollout.active, rollout.x_ref = x.repeat(k, 1, 1, 1), active, x
        return rollout.run_step(t, t - 25, active)

    return Unit(f"train_step_batched_k{k}", run, k * batch, model, fast_path,
                f"one attribute-batched training step, K={k}, batch {batch}, reference {reference}")


def component_units(model: DiffusionModel, clip_loss: DirectionalClipLoss, batch: int = 1, *,
                    t: int = DEFAULT_T) -> dict[str, Unit]:
    """The pieces a training step is made of, for the FLOP model."""
    x, pixels = _inputs(model, batch)
    with torch.no_grad():
        enc = model.unet.encode(x, t)

    def encode():
        with torch.no_grad():
            return model.unet.encode(x, t)

    def decode():
        with torch.no_grad():
            return model.unet.decode(enc.h, enc.skips, enc.temb)

    def decode_input_grad():
        h = enc.h.clone().requires_grad_(True)
        model.unet.decode(h, enc.skips, enc.temb).sum().backward()

    def clip_fwd_bwd():
        p = pixels.clone().requires_grad_(True)
        clip_loss.encode_images(p).sum().backward()

    return {name: Unit(name, fn, batch, model) for name, fn in (
        ("encode", encode), ("decode", decode), ("decode_input_grad", decode_input_grad),
        ("clip_image_fwd_bwd", clip_fwd_bwd))}


def cpu_attention_formulas() -> dict:
    """FlopCounterMode knows the CUDA attention kernels but not the CPU's fused one, which it would count as 0;
    count it like its CUDA twin (the forward's two products; the backward's five, with the recomputed scores)."""
    from torch.utils import flop_counter

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)

    aten = torch.ops.aten
    out = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        out[aten._scaled_dot_product_flash_attention_for_cpu] = forward
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        out[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward
    return out


def count_gflops(unit: Unit) -> float:
    """GFLOP per item of one call of `unit` (FlopCounterMode's count: matmuls, convolutions and attention, 2 FLOP
    per multiply-add; elementwise ops and norms are not counted). On the meta device attention runs as plain
    matmuls (its backward: four products, against five with the fused kernels' recomputed scores)."""
    with unit.session(), FlopCounterMode(display=False, custom_mapping=cpu_attention_formulas()) as counter:
        unit.run()
    return counter.get_total_flops() / unit.items / 1e9


def time_unit(unit: Unit, *, warmup: int = 1, repeats: int = 5) -> dict[str, float]:
    """Median wall time of `repeats` calls after `warmup` (CUDA synchronised), per call and per item."""
    device = unit.model.device

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    with unit.session():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            unit.run()
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"seconds_per_call": median, "seconds_per_item": median / unit.items, "repeats": repeats}


def meta_celebahq(clip_model_name: str = "ViT-B-16") -> tuple[DiffusionModel, DirectionalClipLoss, nn.Module]:
    """The paper-table shapes on the meta device, for FLOP counts: the CelebA-HQ DDPM UNet (256², h 512×8×8),
    the open_clip `clip_model_name` CLIP (random weights, built on the CPU: the loss needs its text features once)
    and a DeltaBlock."""
    import open_clip

    from models.checkpoints import CELEBAHQ_DDPM_ARCH, celebahq_alphas_cumprod, ddpm_unet_config
    from models.ft import build_ft
    from models.hspace import HSpaceUNet
    from models.random_models import random_unet

    with torch.device("meta"):
        unet = random_unet(ddpm_unet_config(**CELEBAHQ_DDPM_ARCH))
    model = DiffusionModel(HSpaceUNet(unet), celebahq_alphas_cumprod(), 256, name="celebahq-meta")
    clip = open_clip.create_model(clip_model_name, pretrained=None)
    loss = DirectionalClipLoss(clip, open_clip.get_tokenizer(clip_model_name), "face", "smiling face",
                               model_name=f"{clip_model_name} (random, meta)").to("meta")
    with torch.device("meta"):
        ft = build_ft("conv", h_channels=512, temb_dim=512, h_size=8)
    return model, loss, ft
