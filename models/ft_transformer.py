"""Transformer f_t variants (the reproduction study's extension, asyrp-reference.md §10.2).

h (B×C×H×W) is read as a token sequence in one of two layouts:

- `pixel`: H·W tokens of dimension C (attention mixes positions);
- `channel`: C tokens of dimension H·W (attention mixes channels).

`transformer-pixel` and `transformer-channel` use one layout; the dual variants `transformer-pixel-channel` and
`transformer-channel-pixel` run one stack after the other. Before the stacks, h is conditioned on the frozen UNet's
own time embedding (the DeltaBlock's input) by `add` (h + Linear(SiLU(temb)), then GroupNorm), `multiply`
(h · (1 + Linear(SiLU(temb))), then GroupNorm) or `adagn` (diffusers' `AdaGroupNorm`: GroupNorm whose scale and shift
come from SiLU(temb)). Each stack is a pre-norm `nn.TransformerEncoder` with a final LayerNorm, so Δh is O(1) per
token and non-zero at init, like the DeltaBlock's. There is no positional embedding: the UNet's h already carries
its position in its content, and the study's design (parameter counts) has none.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.models.normalization import AdaGroupNorm
from torch import nn

from benchmark.core.errors import BenchError, DataError
from models.ft import FT_REGISTRY

Layout = Literal["pixel", "channel"]
TimeConditioning = Literal["add", "multiply", "adagn"]

TRANSFORMER_VARIANTS: dict[str, tuple[Layout, ...]] = {
    "transformer-pixel": ("pixel",),
    "transformer-channel": ("channel",),
    "transformer-pixel-channel": ("pixel", "channel"),
    "transformer-channel-pixel": ("channel", "pixel"),
}
TIME_CONDITIONINGS: tuple[str, ...] = ("add", "multiply", "adagn")


class TokenTransformer(nn.Module):
    """A pre-norm transformer encoder over h's tokens in one layout; returns a tensor shaped like its input."""

    def __init__(self, layout: Layout, dim: int, *, heads: int, depth: int, dropout: float, dim_feedforward: int):
        super().__init__()
        self.layout = layout
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        if self.layout == "pixel":
            tokens = self.encoder(x.flatten(2).transpose(1, 2))  # B × HW × C
            return tokens.transpose(1, 2).reshape(b, c, hh, ww)
        return self.encoder(x.flatten(2)).reshape(b, c, hh, ww)  # B × C × HW


class TransformerFt(nn.Module):
    """Δh = stacks(condition(h, temb)), the stacks in `layouts` order.

    Dropout draws from its own seeded stream (`dropout_seed` plus the number of training forwards so far), so a
    training run is reproducible and leaves the global RNG untouched; in eval mode dropout is off.
    """

    def __init__(self, channels: int, h_size: int, temb_dim: int, layouts: tuple[Layout, ...], *, heads: int,
                 depth: int, dropout: float, dim_feedforward: int, time_conditioning: TimeConditioning,
                 norm_groups: int, dropout_seed: int):
        super().__init__()
        self.channels, self.h_size, self.layouts = channels, h_size, layouts
        self.time_conditioning = time_conditioning
        self.dropout, self.dropout_seed, self._dropout_calls = dropout, dropout_seed, 0
        if time_conditioning == "adagn":
            self.norm = AdaGroupNorm(temb_dim, channels, norm_groups, act_fn="silu", eps=1e-6)
        else:
            self.temb_proj = nn.Linear(temb_dim, channels)
            self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        dims = {"pixel": channels, "channel": h_size * h_size}
        self.stacks = nn.ModuleList(
            TokenTransformer(layout, dims[layout], heads=heads, depth=depth, dropout=dropout,
                             dim_feedforward=dim_feedforward) for layout in layouts)

    def condition(self, h: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        if temb is None:
            raise DataError("the transformer f_t needs the UNet's time embedding (temb), got None")
        if self.time_conditioning == "adagn":
            return self.norm(h, temb)
        shift = self.temb_proj(F.silu(temb))[:, :, None, None]
        return self.norm(h + shift if self.time_conditioning == "add" else h * (1 + shift))

    def forward(self, h: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        if tuple(h.shape[1:]) != (self.channels, self.h_size, self.h_size):
            raise DataError(f"this f_t was built for h of shape {(self.channels, self.h_size, self.h_size)}, "
                            f"got {tuple(h.shape[1:])}", fix="build it with the UNet's h_channels and h_size")
        if not (self.training and self.dropout > 0):
            return self._stacks(self.condition(h, temb))
        devices = [h.device.index or 0] if h.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.dropout_seed + self._dropout_calls)
            self._dropout_calls += 1
            return self._stacks(self.condition(h, temb))

    def _stacks(self, x: torch.Tensor) -> torch.Tensor:
        for stack in self.stacks:
            x = stack(x)
        return x


def build_transformer_ft(layouts: tuple[Layout, ...], *, h_channels: int, temb_dim: int, h_size: int,
                         heads: int = 8, depth: int = 2, dropout: float = 0.0, dim_feedforward: int = 2048,
                         time_conditioning: str = "add", norm_groups: int = 32, dropout_seed: int = 0
                         ) -> TransformerFt:
    if time_conditioning not in TIME_CONDITIONINGS:
        raise BenchError(f"unknown time_conditioning {time_conditioning!r}",
                         fix=f"use one of {', '.join(TIME_CONDITIONINGS)}")
    if depth < 1 or dim_feedforward < 1 or not 0.0 <= dropout < 1.0:
        raise BenchError(f"bad transformer f_t options: depth={depth}, dim_feedforward={dim_feedforward}, "
                         f"dropout={dropout}", fix="use depth >= 1, dim_feedforward >= 1 and 0 <= dropout < 1")
    if h_channels % norm_groups:
        raise BenchError(f"the transformer f_t's GroupNorm cannot split {h_channels} h channels into {norm_groups} "
                         "groups", fix=f"pass the f_t option norm_groups={_largest_divisor(h_channels, 32)}")
    token_dims = [{"pixel": h_channels, "channel": h_size * h_size}[layout] for layout in layouts]
    if any(dim % heads for dim in token_dims):
        raise BenchError(f"{heads} attention heads do not divide the token dimension(s) {token_dims} "
                         f"({', '.join(layouts)})",
                         fix=f"pass heads={_largest_divisor(math.gcd(*token_dims), heads)}")
    return TransformerFt(h_channels, h_size, temb_dim, layouts, heads=heads, depth=depth, dropout=dropout,
                         dim_feedforward=dim_feedforward, time_conditioning=time_conditioning,
                         norm_groups=norm_groups, dropout_seed=dropout_seed)


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def _register(name: str, layouts: tuple[Layout, ...]) -> None:
    def factory(**options) -> TransformerFt:
        return build_transformer_ft(layouts, **options)

    factory.__name__ = f"build_{name.replace('-', '_')}"
    FT_REGISTRY.register(name)(factory)


for _name, _layouts in TRANSFORMER_VARIANTS.items():
    _register(_name, _layouts)
