"""Seeded random models for CPU tests and the harness's `random` model source (no weights, no downloads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from diffusers import UNet2DModel

from benchmark.core.errors import BenchError
from models.codec import PixelCodec
from models.diffusion_model import DiffusionModel
from models.hspace import HSpaceUNet
from models.schedule import linear_alphas_cumprod

# A 3-level pixel UNet at 32² with a 64×8×8 bottleneck: the smallest shape that still has every block kind.
TINY_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 32, "in_channels": 3, "out_channels": 3, "block_out_channels": [32, 32, 64],
    "layers_per_block": 1, "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 8, "norm_eps": 1e-6,
    "attention_head_dim": None, "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1,
}

# open_clip's CLIP class with a small config (3.4 M parameters, mostly the vocabulary embedding).
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def random_unet(config: Mapping[str, Any] | None = None, seed: int = 0) -> UNet2DModel:
    """A `UNet2DModel` with PyTorch's default init drawn from `seed` (the global RNG is left untouched)."""
    config = dict(TINY_UNET_CONFIG if config is None else config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return UNet2DModel(**config).eval()
        except (TypeError, ValueError) as e:
            raise BenchError(f"bad UNet2DModel config: {e}", fix="check the random model's config") from None


def random_diffusion_model(config: Mapping[str, Any] | None = None, seed: int = 0, *, name: str | None = None,
                           precision: str = "fp32") -> DiffusionModel:
    """A random pixel DDPM with the authors' linear β schedule (T = 1000)."""
    unet = random_unet(config, seed)
    return DiffusionModel(HSpaceUNet(unet, precision=precision), linear_alphas_cumprod(),
                          int(unet.config.sample_size), PixelCodec(), name=name or f"random-unet-seed{seed}")


def random_open_clip(config: Mapping[str, Any] | None = None, seed: int = 0, *, tokenizer_name: str = "ViT-B-16"):
    """(model, tokenizer): open_clip's CLIP with random weights, and the bundled (offline) BPE tokenizer."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.model.CLIP(**dict(TINY_CLIP_CONFIG if config is None else config)).eval()
    return model, open_clip.get_tokenizer(tokenizer_name)
