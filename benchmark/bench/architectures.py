"""Random-weight builders for the models a suite would have to fetch: the same architecture, nothing
downloaded. Keyed by model manifest name (a `Registry`, so an unknown name fails with did-you-mean).

- `BASE_MODELS[name](device) -> models.DiffusionModel` (device "meta" builds it without memory, for FLOP counts);
- `LOSS_CLIPS[name](device) -> (open_clip model, tokenizer)`;
- `METRIC_BACKENDS[name](spec, device) -> back-end object` (the protocol of its kind, `metrics.backends`).

Models a suite ships (a `local` source) or builds from a seed (`random`) need none of this: bench loads them
through the suite's own loaders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from benchmark.core.registry import Registry

BASE_MODELS: Registry[Callable[..., Any]] = Registry("random base-model architecture")
LOSS_CLIPS: Registry[Callable[..., Any]] = Registry("random CLIP architecture")
METRIC_BACKENDS: Registry[Callable[..., Any]] = Registry("random metric back-end architecture")

OPEN_CLIP_NAMES = {"clip-vit-b16-openai": "ViT-B-16", "clip-vit-b32-openai": "ViT-B-32",
                   "clip-vit-l14-openai": "ViT-L-14"}


def celebahq_ddpm(device) -> Any:
    """The CelebA-HQ 256² DDPM UNet (SDEdit's celeba_hq.ckpt and google/ddpm-ema-celebahq-256 share it:
    113.7 M parameters, h-space 512×8×8), seeded random weights, the authors' β schedule."""
    import models

    device = torch.device(device)
    with torch.device("meta") if device.type == "meta" else torch.device("cpu"):
        unet = models.random_unet(models.ddpm_unet_config(**models.CELEBAHQ_DDPM_ARCH), seed=0)
    model = models.DiffusionModel(models.HSpaceUNet(unet), models.celebahq_alphas_cumprod(), 256,
                                  name="celebahq-ddpm (random weights)")
    return model if device.type == "meta" else model.to(device)


BASE_MODELS.register("sdedit-celebahq", celebahq_ddpm)
BASE_MODELS.register("ddpm-ema-celebahq-256", celebahq_ddpm)


def _open_clip(model_name: str, device) -> tuple[Any, Any]:
    """open_clip's architecture with random weights (built on the CPU: the loss needs its text features once)."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(model_name, pretrained=None).eval()
    return model.to(device), open_clip.get_tokenizer(model_name)


for _name, _arch in OPEN_CLIP_NAMES.items():
    LOSS_CLIPS.register(_name, lambda device, _arch=_arch: _open_clip(_arch, device))


def _clip_backend(model_name: str):
    def build(spec, device):
        from metrics.backends.clip import OpenClipEmbedder

        model, tokenizer = _open_clip(model_name, "cpu")
        return OpenClipEmbedder(model, tokenizer, device=torch.device(device),
                                preprocess=getattr(spec, "image_preprocess", "open_clip"))

    return build


for _name, _arch in OPEN_CLIP_NAMES.items():
    METRIC_BACKENDS.register(_name, _clip_backend(_arch))


@METRIC_BACKENDS.register("inception-v3-compat")
def _inception(spec, device):
    """torch-fidelity's TF-compatible Inception-v3 with seeded random weights (written once to the cache)."""
    from metrics.backends.features import load_random_inception

    return load_random_inception(None, torch.device(device), layer=spec.feature_layer,
                                 internal_dtype=spec.internal_dtype)


@METRIC_BACKENDS.register("bisenet-79999")
def _bisenet(spec, device):
    from metrics.backends.parsers import load_random_bisenet

    return load_random_bisenet(None, torch.device(device), input_size=spec.input_size, normalize=spec.normalize)


@METRIC_BACKENDS.register("arcface-buffalo-l")
def _arcface(spec, device):
    from benchmark.bench.iresnet import TorchArcFace

    return TorchArcFace(torch.device(device))
