"""Invert: DDIM-invert every image once, in fixed chunks; each chunk is one cached unit."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchmark.core.images import from_uint8, to_uint8
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.stages import INVERT
from benchmark.run.suite_plan import Engine, ImageItem


def chunks(items: Sequence[ImageItem], size: int) -> list[Sequence[ImageItem]]:
    """Fixed boundaries from the first image, so `--limit` only changes the last chunk's key."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def invert_images(runner: Runner, engine: Engine, items: Sequence[ImageItem], *, batch_size: int,
                  with_reference: bool, purpose: str, device) -> list[CacheEntry]:
    """One entry per chunk, holding `x_T`, `reconstruction` (uint8) and, for training, the reference."""
    entries = []
    spec = {"purpose": purpose, "with_reference": with_reference, **engine.spec_for("invert")}
    for chunk in chunks(items, batch_size):
        ids = [it.id for it in chunk]

        def compute(chunk=chunk) -> StageOutput:
            x0 = from_uint8(torch.stack([it.pixels for it in chunk])).to(device)
            with torch.no_grad():
                out = engine.invert(x0, with_reference=with_reference)
            tensors = {k: v for k, v in out.items() if k != "reconstruction"}
            tensors["reconstruction"] = to_uint8(out["reconstruction"])
            return StageOutput(tensors=tensors, data={"ids": [it.id for it in chunk]})

        entries.append(runner.unit(INVERT, f"{purpose} {ids[0]}..{ids[-1]}", {**spec, "ids": ids}, compute,
                                   digests={**engine.digests, **{f"image:{it.id}": it.digest for it in chunk}}))
    return entries


def gather(entries: Sequence[CacheEntry], name: str) -> torch.Tensor:
    """One tensor over all chunks, in image order."""
    return torch.cat([e.output.tensors[name] for e in entries])
