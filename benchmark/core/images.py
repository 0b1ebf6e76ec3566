"""The one convention for image tensors between stages.

- Models work on float tensors in [-1, 1], N×3×H×W.
- Stages exchange and metrics consume uint8 tensors N×3×H×W (RGB), and files are PNG written from that uint8.
- [-1, 1] -> uint8 is `round((clamp(x, -1, 1) + 1) * 127.5)`; uint8 -> [-1, 1] is `u / 127.5 - 1`. No min-max
  rescaling anywhere (it silently changes FID; see anchors-and-style.md P1).
"""

from __future__ import annotations

import torch

from benchmark.core.errors import DataError


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(u: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return u.to(dtype) / 127.5 - 1


def check_uint8_images(x, name: str = "images", *, min_count: int = 1, size: int | None = None) -> torch.Tensor:
    """Validate an N×3×H×W uint8 RGB batch; raise a DataError that says what was expected otherwise."""
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{name}: expected a torch.Tensor of uint8 N×3×H×W, got {type(x).__name__}")
    if x.dtype != torch.uint8:
        hint = " (looks like floats in [-1, 1]; convert with benchmark.core.images.to_uint8)" if x.is_floating_point() else ""
        raise DataError(f"{name}: expected dtype uint8 in [0, 255], got {x.dtype}{hint}")
    if x.ndim != 4:
        raise DataError(f"{name}: expected 4 dims N×3×H×W, got shape {tuple(x.shape)}")
    if x.shape[1] != 3:
        what = "grayscale (1 channel)" if x.shape[1] == 1 else f"{x.shape[1]} channels"
        raise DataError(f"{name}: expected 3 RGB channels, got {what}; convert images to RGB first")
    if x.shape[0] < min_count:
        raise DataError(f"{name}: expected at least {min_count} images, got {x.shape[0]}")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise DataError(f"{name}: expected {size}×{size} images, got {x.shape[-2]}×{x.shape[-1]}")
    return x


def check_same_count(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise DataError(f"{name_a} has {a.shape[0]} images but {name_b} has {b.shape[0]}; they are compared "
                        "pairwise, so the counts must match (same ids, same order)")
