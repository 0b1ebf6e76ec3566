"""Seeded random values for a forged state dict: deterministic per (seed, key), so a file's bytes do not depend on
the order tensors are filled in, and scaled so a full-size network's activations stay O(1) (random weights must
still give distinct, finite outputs, or a rehearsal would pass through degenerate code paths: NaN features, a FID
of 0, every pixel one label).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import torch

#: Key fragments of normalisation layers: their weight is ~1 and their bias ~0 (BatchNorm, GroupNorm, LayerNorm).
_NORM_PARTS = ("norm", "ln_", "ln.", "bn", "layer_norm", "layernorm", "group_norm", "prelu")


def key_generator(seed: int, key: str) -> torch.Generator:
    """A CPU generator seeded from (seed, key) alone."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def random_like(key: str, like: torch.Tensor, seed: int, *, gain: float = 1.0) -> torch.Tensor:
    """A random tensor of `like`'s shape and dtype for parameter or buffer `key`.

    Weights of rank >= 2: N(0, gain^2 / fan_in). Norm weights: 1 + 0.1 N. BatchNorm running stats: mean 0.1 N,
    var 1 + 0.1 |N|. Other 1-D and 0-D tensors (biases, scales): 0.02 N. BatchNorm's `num_batches_tracked` is 0;
    any other integer tensor is refused (its value cannot be made up).
    """
    if not like.is_floating_point():
        if key.endswith("num_batches_tracked"):
            return torch.zeros_like(like)
        raise ValueError(f"cannot forge the integer tensor {key!r}; set it explicitly")
    g = key_generator(seed, key)
    noise = torch.randn(like.shape, generator=g, dtype=torch.float32)
    lowered = key.lower()
    if lowered.endswith("running_var"):
        out = 1.0 + 0.1 * noise.abs()
    elif lowered.endswith("running_mean"):
        out = 0.1 * noise
    elif like.ndim == 1 and lowered.endswith("weight") and any(p in lowered for p in _NORM_PARTS):
        out = 1.0 + 0.1 * noise
    elif like.ndim <= 1:
        out = 0.02 * noise
    else:
        out = noise.mul_(gain / math.sqrt(max(1, math.prod(like.shape[1:]))))
    return out.to(like.dtype)


def fill_state_dict(shapes: Mapping[str, torch.Tensor], seed: int, *, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Random values for every entry of a state dict (values used only for shape, dtype and scalars)."""
    return {k: random_like(k, v, seed, gain=gain) for k, v in shapes.items()}


@torch.no_grad()
def fill_module_(module: torch.nn.Module, seed: int, *, gain: float = 1.0) -> torch.nn.Module:
    """Overwrite every parameter and buffer of `module` in place (after `to_empty` they hold garbage)."""
    for key, tensor in [*module.named_parameters(), *module.named_buffers()]:
        tensor.copy_(random_like(key, tensor, seed, gain=gain))
    return module


def meta_build(factory, *args, **kwargs) -> torch.nn.Module:
    """Build a large module without running its (slow) initialisers: on the meta device, then allocated empty.
    Every tensor must be filled afterwards (`fill_module_`)."""
    with torch.device("meta"):
        module = factory(*args, **kwargs)
    return module.to_empty(device="cpu")
