"""Latent diffusion models as `DiffusionModel`s: a diffusers `UNet2DModel` on the latent of a `VQModel` (or an
`AutoencoderKL`), with h-space taken at the UNet's mid block like any other UNet.

`CompVis/ldm-celebahq-256` (pinned in `manifests/models/ldm-celebahq-256.yaml`) is a UNet on the 3×64×64 VQ latent
of 256² CelebA-HQ faces. Everything about it is read from its snapshot folder, never assumed: the UNet and
autoencoder configs, and ᾱ from `scheduler/scheduler_config.json` (float64). Only the VQ scaling factor is given
by the caller, because that model's vqvae config does not carry the right one (see `VQCodec`).
Nothing here downloads: missing files raise `MissingWeightsError` naming the harness's `fetch` command.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from benchmark.core.errors import BenchError, DataError, MissingWeightsError
from models.codec import KLCodec, VQCodec
from models.diffusion_model import DiffusionModel
from models.hspace import HSpaceUNet
from models.schedule import alphas_cumprod_from_scheduler_config

LDM_CELEBAHQ_REF = "ldm-celebahq-256@1"
AUTOENCODER_FOLDERS = {"vqvae": "vq", "vae": "kl"}
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def latent_diffusion_model(unet, autoencoder, scheduler_config: Mapping[str, Any], *,
                           scaling_factor: float | None = None, name: str = "latent-diffusion",
                           precision: str = "fp32") -> DiffusionModel:
    """Assemble a `DiffusionModel` from a `UNet2DModel`, a `VQModel` or `AutoencoderKL`, and a scheduler config.

    `scaling_factor`: the latent scale; None takes the autoencoder config's (right for models trained with
    diffusers, wrong for the pinned CompVis VQ snapshot, whose manifest passes 1.0).
    """
    from diffusers import AutoencoderKL, VQModel

    if isinstance(autoencoder, VQModel):
        codec = VQCodec(autoencoder, autoencoder.config.scaling_factor if scaling_factor is None else scaling_factor)
    elif isinstance(autoencoder, AutoencoderKL):
        codec = KLCodec(autoencoder, scaling_factor)
    else:
        raise BenchError(f"a latent diffusion model needs a diffusers VQModel or AutoencoderKL, got "
                         f"{type(autoencoder).__name__}")
    if codec.latent_channels != unet.config.in_channels:
        raise DataError(f"the autoencoder's latent has {codec.latent_channels} channels but the UNet takes "
                        f"{unet.config.in_channels}", fix="pair the UNet with the autoencoder it was trained on")
    alphas = alphas_cumprod_from_scheduler_config(scheduler_config)
    image_size = int(unet.config.sample_size) * codec.downsample_factor
    return DiffusionModel(HSpaceUNet(unet, precision=precision), alphas, image_size, codec, name=name)


def load_latent_diffusion(snapshot_dir: str | Path, *, scaling_factor: float | None = None,
                          device: torch.device | str = "cpu", precision: str = "fp32", name: str | None = None,
                          fetch_hint: str | None = None) -> DiffusionModel:
    """A latent diffusion model from a local diffusers snapshot folder (`unet/`, `vqvae/` or `vae/`,
    `scheduler/scheduler_config.json`). Digests are the caller's job (the harness checks them before this)."""
    from diffusers import AutoencoderKL, UNet2DModel, VQModel

    root = Path(snapshot_dir)
    fix = fetch_hint or "fetch the model with the harness's `fetch` command"
    ae_folder = next((f for f in AUTOENCODER_FOLDERS if (root / f / "config.json").is_file()), None)
    missing = [p for p in ("unet/config.json", "scheduler/scheduler_config.json") if not (root / p).is_file()]
    if ae_folder is None:
        missing.append("vqvae/config.json (or vae/config.json)")
    for folder in ("unet", ae_folder):
        if folder and not any((root / folder / w).is_file() for w in WEIGHT_NAMES):
            missing.append(f"{folder}/{WEIGHT_NAMES[0]} (or .bin)")
    if missing:
        raise MissingWeightsError(f"the latent diffusion snapshot at {root} lacks {', '.join(missing)}", fix=fix)
    scheduler_config = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    unet = UNet2DModel.from_pretrained(root, subfolder="unet", local_files_only=True)
    ae_class = VQModel if AUTOENCODER_FOLDERS[ae_folder] == "vq" else AutoencoderKL
    autoencoder = ae_class.from_pretrained(root, subfolder=ae_folder, local_files_only=True)
    model = latent_diffusion_model(unet, autoencoder, scheduler_config, scaling_factor=scaling_factor,
                                   name=name or root.name, precision=precision)
    return model.to(device)


def random_latent_diffusion_model(config: Mapping[str, Any], seed: int = 0, *, name: str | None = None,
                                  precision: str = "fp32") -> DiffusionModel:
    """A seeded random LDM for CPU tests: `config = {"unet": {...}, "vqvae": {...} | "vae": {...},
    "scheduler": {...}, "scaling_factor": optional}` (diffusers constructor arguments)."""
    from diffusers import AutoencoderKL, VQModel

    from models.random_models import random_unet

    kinds = [k for k in AUTOENCODER_FOLDERS if k in config]
    if len(kinds) != 1 or "unet" not in config or "scheduler" not in config:
        raise BenchError("a random latent diffusion config needs `unet`, `scheduler` and one of `vqvae` / `vae`",
                         fix="see manifests/models/tiny-ldm-random.yaml")
    unet = random_unet(config["unet"], seed)
    ae_class = VQModel if AUTOENCODER_FOLDERS[kinds[0]] == "vq" else AutoencoderKL
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        try:
            autoencoder = ae_class(**config[kinds[0]]).eval()
        except (TypeError, ValueError) as e:
            raise BenchError(f"bad {ae_class.__name__} config: {e}", fix="check the random model's config") from None
    return latent_diffusion_model(unet, autoencoder, config["scheduler"], scaling_factor=config.get("scaling_factor"),
                                  name=name or f"random-ldm-seed{seed}", precision=precision)


# Tiny seeded configs for CPU tests: 32² pixels, a 2× autoencoder, a UNet on the 3×16×16 latent (h = 32×8×8).
_TINY_UNET = {"sample_size": 16, "in_channels": 3, "out_channels": 3, "block_out_channels": [16, 32],
              "layers_per_block": 1, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
              "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 8, "attention_head_dim": None}
_TINY_AE = {"in_channels": 3, "out_channels": 3, "block_out_channels": [8, 16], "layers_per_block": 1,
            "latent_channels": 3, "norm_num_groups": 4, "sample_size": 32}
_LDM_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.0015,
                  "beta_end": 0.0195, "prediction_type": "epsilon"}
TINY_VQ_LDM_CONFIG: dict[str, Any] = {
    "unet": _TINY_UNET, "scheduler": _LDM_SCHEDULER, "scaling_factor": 1.0,
    "vqvae": {**_TINY_AE, "down_block_types": ["DownEncoderBlock2D"] * 2,
              "up_block_types": ["UpDecoderBlock2D"] * 2, "num_vq_embeddings": 64, "vq_embed_dim": 3}}
TINY_KL_LDM_CONFIG: dict[str, Any] = {
    "unet": _TINY_UNET, "scheduler": _LDM_SCHEDULER,
    "vae": {**_TINY_AE, "down_block_types": ["DownEncoderBlock2D"] * 2,
            "up_block_types": ["UpDecoderBlock2D"] * 2, "scaling_factor": 0.5}}
