"""Shared tiny models and data for the models/ tests (plain functions, cached: the models are frozen)."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

import models as M

# A 2-level UNet at 16² (h is 32×8×8): the cheapest model that still runs every code path; for long rollouts.
MICRO_UNET_CONFIG = {
    "sample_size": 16, "in_channels": 3, "out_channels": 3, "block_out_channels": [16, 32],
    "layers_per_block": 1, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 8, "norm_eps": 1e-6,
    "attention_head_dim": None, "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1,
}


@functools.cache
def tiny_model(seed: int = 0) -> M.DiffusionModel:
    return M.random_diffusion_model(seed=seed)


@functools.cache
def micro_model(seed: int = 0) -> M.DiffusionModel:
    return M.random_diffusion_model(MICRO_UNET_CONFIG, seed=seed)


@functools.cache
def tiny_clip(seed: int = 0):
    return M.random_open_clip(seed=seed)


def tiny_ft(model: M.DiffusionModel, seed: int = 0) -> M.DeltaBlock:
    u = model.unet
    return M.build_ft("conv", h_channels=u.h_channels, temb_dim=u.temb_dim, h_size=u.h_size, seed=seed,
                      norm_groups=8)


def smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Seeded low-frequency images in [-1, 1] (upsampled 4×4 noise), more image-like than white noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)


def smiling_training_setup(model: M.DiffusionModel, n_images: int, size: int, *, steps: int, t0: int,
                           t_edit: int):
    """(model, "face" -> "smiling face" loss on a tiny CLIP, smooth images, their inversions with the reference
    trajectory a trainer needs): what the training tests of every model kind start from."""
    clip, tokenizer = tiny_clip()
    loss = M.DirectionalClipLoss(clip, tokenizer, "face", "smiling face")
    images = smooth_images(n_images, size=size)
    inv = M.invert(model, images, steps, t0=t0, reference_steps=steps, reference_min_t=t_edit)
    return model, loss, images, inv


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and far more predictably on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
