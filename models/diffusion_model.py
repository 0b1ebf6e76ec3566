"""`DiffusionModel`: the frozen base model the harness passes around."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from benchmark.core.errors import BenchError
from benchmark.core.hashing import tensor_digest
from models.codec import Codec, PixelCodec
from models.hspace import HSpaceUNet


@dataclass(frozen=True, eq=False)
class DiffusionModel:
    """An ε-prediction UNet with h-space access, its ᾱ schedule (float64) and the codec to pixels.

    `image_size` is the pixel size the codec takes and returns; the UNet's own sample size can differ (latents).
    The UNet is frozen (eval mode, no gradients) on construction.
    """

    unet: HSpaceUNet
    alphas_cumprod: torch.Tensor
    image_size: int
    codec: Codec = field(default_factory=PixelCodec)
    name: str = "unnamed"

    def __post_init__(self):
        ac = self.alphas_cumprod
        if not isinstance(ac, torch.Tensor) or ac.dtype != torch.float64 or ac.ndim != 1:
            raise BenchError("alphas_cumprod must be a 1-D float64 tensor",
                             fix="build it with models.linear_alphas_cumprod()")
        if not bool(((ac > 0) & (ac <= 1)).all()) or not bool((ac[1:] <= ac[:-1]).all()):
            raise BenchError("alphas_cumprod must be non-increasing and in (0, 1]")
        object.__setattr__(self, "alphas_cumprod", ac.detach().cpu())
        self.unet.eval().requires_grad_(False)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.numel())

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.unet.in_channels, self.unet.sample_size, self.unet.sample_size)

    def alpha(self, t: int) -> float:
        """ᾱ_t as a Python float (float64); t = −1 means the final step onto ᾱ = 1."""
        if t == -1:
            return 1.0
        if not 0 <= t < self.num_train_timesteps:
            raise BenchError(f"timestep {t} is outside 0..{self.num_train_timesteps - 1} of this model's schedule")
        return float(self.alphas_cumprod[t])

    def to(self, device: torch.device | str) -> DiffusionModel:
        self.unet.to(device)
        return replace(self, codec=self.codec.to(device))

    def with_hspace_layer(self, layer: str) -> DiffusionModel:
        """The same frozen model (shared weights, schedule and codec) with h taken at `layer` ("mid" or "up{k}",
        see `models.hspace.hspace_layers`). f_t networks must be built for the new `unet.h_channels`/`h_size`."""
        if layer == self.unet.layer:
            return self
        return replace(self, unet=HSpaceUNet(self.unet.unet, precision=self.unet.precision, layer=layer))

    def spec(self) -> dict[str, Any]:
        """A JSON-able description for provenance (architecture, schedule digest, codec)."""
        return {
            "name": self.name,
            "unet_config": {k: v for k, v in dict(self.unet.unet.config).items() if not k.startswith("_")},
            "precision": self.unet.precision,
            "hspace_layer": self.unet.layer,
            "alphas_cumprod_sha256": tensor_digest(self.alphas_cumprod),
            "image_size": self.image_size,
            "codec": self.codec.spec(),
        }
