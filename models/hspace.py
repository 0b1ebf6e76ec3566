"""h-space access to a diffusers `UNet2DModel`: encode once, decode many h variants with the same skips.

By default h is the output of the UNet's mid block (ResBlock → Attention → ResBlock), before any up block; for
`google/ddpm-ema-celebahq-256` it is 512×8×8. That is the authors' choice (paper appendix D.3: earlier layers change
too little, later ones distort). `layer="up{k}"` takes h at the output of up block k instead (0 = the first up
block after the mid block, as in `unet.up_blocks`): encode also runs up blocks 0..k, which consume their skips, and
decode continues from block k+1 with the skips that are left. Asyrp needs ε from h and ε̃ from h + Δh with the
*same* skip connections, so everything up to h runs once and only the rest of the up path runs per variant (the
authors' `DDPM.forward` does the same). This mirrors `UNet2DModel.forward` step by step.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from diffusers import UNet2DModel
from torch import nn

from benchmark.core.errors import BenchError
from benchmark.core.registry import require_choice

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
MID_LAYER = "mid"  # the authors' h-space, and the default


def hspace_layers(unet: UNet2DModel) -> list[str]:
    """The layers h can be taken at for this UNet: "mid", then "up0" .. "up{n−1}" (the output of each up block)."""
    return [MID_LAYER, *(f"up{k}" for k in range(len(unet.up_blocks)))]


class HSpace(NamedTuple):
    """What `HSpaceUNet.encode` returns: the bottleneck h, the skip connections, and the time embedding."""

    h: torch.Tensor
    skips: tuple[torch.Tensor, ...]
    temb: torch.Tensor


class HSpaceUNet(nn.Module):
    """Wraps a `UNet2DModel` that has a mid block. `encode(x, t) -> (h, skips, temb)`, `decode(h, skips, temb) -> ε`.

    `layer`: where h is taken, one of `hspace_layers(unet)` ("mid", the default, or "up{k}"). `precision="bf16"`
    runs the UNet under `torch.autocast` (ε is returned as float32); the default "fp32" is what the authors used.
    `compile_unet()` wraps both halves in `torch.compile`. A UNet with twice as many output as input channels has
    a learned σ (iDDPM/ADM): ε is its first half, as in the authors' `torch.split` (`learned_sigma`).
    """

    def __init__(self, unet: UNet2DModel, *, precision: str = "fp32", layer: str = MID_LAYER):
        super().__init__()
        _check_supported(unet)
        self.unet = unet
        self.precision = require_choice("precision", precision, list(PRECISIONS))
        self.layer = require_choice("h-space layer", layer, hspace_layers(unet))
        # number of up blocks that run in encode (before h): 0 for the mid block, k + 1 for "up{k}"
        self.up_split = 0 if layer == MID_LAYER else int(layer[2:]) + 1
        self._encode_fn = self._encode
        self._decode_fn = self._decode

    # -- shapes ---------------------------------------------------------------------------------------------
    @property
    def h_channels(self) -> int:
        if self.up_split == 0:
            return int(self.unet.config.block_out_channels[-1])
        return int(self.unet.up_blocks[self.up_split - 1].resnets[-1].out_channels)

    @property
    def learned_sigma(self) -> bool:
        return int(self.unet.config.out_channels) == 2 * int(self.unet.config.in_channels)

    @property
    def temb_dim(self) -> int:
        return int(self.unet.time_embedding.linear_2.out_features)

    @property
    def h_size(self) -> int:
        """Spatial size of h for the configured sample size: one halving per down block with a downsampler, one
        doubling per up block before h with an upsampler."""
        halvings = sum(getattr(b, "downsamplers", None) is not None for b in self.unet.down_blocks)
        doublings = sum(getattr(b, "upsamplers", None) is not None for b in self.unet.up_blocks[:self.up_split])
        return int(self.unet.config.sample_size) // 2 ** halvings * 2 ** doublings

    @property
    def in_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def sample_size(self) -> int:
        return int(self.unet.config.sample_size)

    # -- public API -----------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, t: int | float | torch.Tensor) -> HSpace:
        """Run the time embedding, the down path and the mid block once."""
        with self._autocast(x):
            h, skips, temb = self._encode_fn(x, self._timesteps(t, x))
        return HSpace(h, tuple(skips), temb)

    def decode(self, h: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor) -> torch.Tensor:
        """ε for a batch of h variants. `h` may hold k × B rows for B encoded images: variant-major, i.e. rows
        [i·B, (i+1)·B) are variant i for images 0..B−1; skips and temb are repeated to match."""
        batch = temb.shape[0]  # not skips[0]: at the last up block no skips are left
        if h.shape[0] % batch:
            raise BenchError(f"decode got {h.shape[0]} h rows for {batch} encoded images; the h batch must be a "
                             "multiple of the encoded batch", fix="concatenate whole variants along dim 0")
        k = h.shape[0] // batch
        if k > 1:
            skips = tuple(s.repeat(k, *([1] * (s.ndim - 1))) for s in skips)
            temb = temb.repeat(k, 1)
        with self._autocast(h):
            eps = self._decode_fn(h, skips, temb)
        if self.learned_sigma:  # the other half is the variance interpolation, which DDIM does not use
            eps = eps[:, :self.in_channels]
        return eps.float()

    def forward(self, x: torch.Tensor, t: int | float | torch.Tensor) -> torch.Tensor:
        """ε of the unmodified UNet (equal to `unet(x, t).sample`, its first half for a learned σ)."""
        enc = self.encode(x, t)
        return self.decode(enc.h, enc.skips, enc.temb)

    def compile_unet(self, **kwargs) -> HSpaceUNet:
        """Compile the encode and decode halves with `torch.compile(**kwargs)`; returns self."""
        self._encode_fn = torch.compile(self._encode, **kwargs)
        self._decode_fn = torch.compile(self._decode, **kwargs)
        return self

    # -- the two halves of UNet2DModel.forward --------------------------------------------------------------
    def _encode(self, x: torch.Tensor, timesteps: torch.Tensor):
        unet = self.unet
        if unet.config.center_input_sample:
            x = 2 * x - 1.0
        temb = unet.time_embedding(unet.time_proj(timesteps).to(dtype=unet.dtype))
        sample = unet.conv_in(x)
        skips = (sample,)
        for block in unet.down_blocks:
            sample, res = block(hidden_states=sample, temb=temb)
            skips += res
        h = unet.mid_block(sample, temb)
        h, skips = _run_up_blocks(unet.up_blocks[:self.up_split], h, skips, temb)
        return h, skips, temb

    def _decode(self, h: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor) -> torch.Tensor:
        unet = self.unet
        sample, _ = _run_up_blocks(unet.up_blocks[self.up_split:], h, skips, temb)
        sample = unet.conv_act(unet.conv_norm_out(sample))
        return unet.conv_out(sample)

    def _timesteps(self, t, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(t):
            t = torch.tensor([t], device=x.device)
        t = t.reshape(-1).to(x.device)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        elif t.numel() != x.shape[0]:
            raise BenchError(f"got {t.numel()} timesteps for a batch of {x.shape[0]}",
                             fix="pass one timestep, or one per image")
        return t

    def _autocast(self, x: torch.Tensor):
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=x.device.type, dtype=dtype)


def _run_up_blocks(blocks, sample: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor):
    """Run up blocks in order; each takes as many skips from the end as it has resnets. Returns the sample and
    the skips left over."""
    for block in blocks:
        n = len(block.resnets)
        res, skips = skips[-n:], skips[:-n]
        sample = block(sample, res, temb)
    return sample, skips


def _check_supported(unet: UNet2DModel) -> None:
    if not isinstance(unet, UNet2DModel):
        raise BenchError(f"HSpaceUNet wraps a diffusers UNet2DModel, got {type(unet).__name__}")
    cfg = unet.config
    problems = []
    if unet.mid_block is None:
        problems.append("it has no mid block, so there is no h-space")
    if unet.class_embedding is not None:
        problems.append("it is class-conditional")
    if cfg.time_embedding_type != "positional":
        problems.append(f"time_embedding_type is {cfg.time_embedding_type!r} (only 'positional' is supported)")
    if any(hasattr(b, "skip_conv") for b in [*unet.down_blocks, *unet.up_blocks]):
        problems.append("it uses skip-sample blocks (SDE-VE style)")
    if problems:
        raise BenchError("this UNet2DModel cannot be used for h-space editing: " + "; ".join(problems),
                         fix="use an unconditional UNet2DModel with positional time embedding and a mid block")
