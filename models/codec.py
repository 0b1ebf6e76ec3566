"""Codecs between pixels in [-1, 1] and the space the diffusion model runs in.

A pixel DDPM runs on pixels (`PixelCodec`, the identity). A latent diffusion model runs on VQ/KL latents; its
codec (a later issue) encodes images for inversion and decodes P_t differentiably for the CLIP loss. Sampling and
training code only ever call `encode`/`decode`, so they never assume pixels.
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
