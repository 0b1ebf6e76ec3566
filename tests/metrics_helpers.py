"""Helpers shared by the metrics tests: real fixture images at 256², seeded random images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def load_fixture_images(fixtures: Path, names: list[str], size: int = 256) -> torch.Tensor:
    """CelebA-HQ fixture JPEGs as uint8 N×3×size×size (PIL bicubic resize; tests only)."""
    arrays = []
    for name in names:
        with Image.open(fixtures / "celebahq" / "images" / name) as im:
            arrays.append(np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC)))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_mask(fixtures: Path, index: int) -> torch.Tensor:
    """A CelebAMask-HQ ground-truth label map (512×512, CelebAMask-HQ order) as int64 H×W."""
    with Image.open(fixtures / "celebahq" / "masks" / f"celebamaskhq_{index}.png") as im:
        return torch.from_numpy(np.asarray(im).astype(np.int64))


def random_images(n: int, size: int = 64, seed: int = 0, high: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, (n, 3, size, size), dtype=torch.uint8, generator=g)

