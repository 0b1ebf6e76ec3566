"""Codecs between pixels in [-1, 1] and the space the diffusion model runs in.

A pixel DDPM runs on pixels (`PixelCodec`, the identity). A latent diffusion model runs on VQ/KL latents
(`VQCodec`, `KLCodec`): the codec encodes images for inversion and decodes P_t differentiably for the CLIP loss.
Sampling and training code only ever call `encode`/`decode`, so they never assume pixels. A codec's `decode` may
be called under `torch.no_grad()` or with gradients; its own weights stay frozen either way.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Codec(Protocol):
    """What `DiffusionModel` needs from a codec. `decode` must be differentiable (the trainer backprops through it)."""

    def encode(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device | str) -> Codec: ...

    def spec(self) -> dict[str, Any]: ...


class PixelCodec:
    """The identity: the diffusion space is the pixel space."""

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def to(self, device: torch.device | str) -> PixelCodec:
        return self

    def spec(self) -> dict[str, Any]:
        return {"type": "pixel"}

    def __repr__(self) -> str:
        return "PixelCodec()"


class VQCodec:
    """A diffusers `VQModel`: the diffusion space is the encoder's *pre-quantisation* latent times
    `scaling_factor`; `decode` divides it out and goes through the quantiser, as the LDM code and diffusers'
    `LDMPipeline` do. The quantiser passes gradients straight through (`z + (z_q − z).detach()`), so a loss on
    decoded pixels reaches the latent (and f_t behind it).

    `scaling_factor` is explicit: the pinned `CompVis/ldm-celebahq-256` vqvae config has none, so diffusers fills
    in its 0.18215 default, which is wrong for that model (diffusers issue #6725); its LDM used 1.0.
    """

    def __init__(self, vqmodel, scaling_factor: float = 1.0):
        self.model = vqmodel.eval().requires_grad_(False)
        self.scaling_factor = float(scaling_factor)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.model.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.model.config.vq_embed_dim or self.model.config.latent_channels)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode(pixels).latents * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.decode(latents / self.scaling_factor).sample

    def to(self, device: torch.device | str) -> VQCodec:
        self.model.to(device)
        return self

    def spec(self) -> dict[str, Any]:
        return {"type": "vq", "scaling_factor": self.scaling_factor, "config": _public_config(self.model)}

    def __repr__(self) -> str:
        return f"VQCodec(scaling_factor={self.scaling_factor})"


class KLCodec:
    """A diffusers `AutoencoderKL`: the diffusion space is the posterior *mode* times `scaling_factor` (the mode,
    not a sample, so that encoding is deterministic and DDIM inversion is a function of the image); `decode`
    divides it out. `scaling_factor` defaults to the model config's."""

    def __init__(self, vae, scaling_factor: float | None = None):
        self.model = vae.eval().requires_grad_(False)
        self.scaling_factor = float(vae.config.scaling_factor if scaling_factor is None else scaling_factor)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.model.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.model.config.latent_channels)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode(pixels).latent_dist.mode() * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.decode(latents / self.scaling_factor).sample

    def to(self, device: torch.device | str) -> KLCodec:
        self.model.to(device)
        return self

    def spec(self) -> dict[str, Any]:
        return {"type": "kl", "scaling_factor": self.scaling_factor, "posterior": "mode",
                "config": _public_config(self.model)}

    def __repr__(self) -> str:
        return f"KLCodec(scaling_factor={self.scaling_factor})"


def _public_config(model) -> dict[str, Any]:
    return {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
