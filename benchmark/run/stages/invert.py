"""Invert: DDIM-invert every image once. Each fixed chunk of images is one cached unit; the missing chunks are
computed together in UNet batches of the engine's size (from free device memory, or `--batch-size`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchmark.core.images import from_uint8, to_uint8
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.shared_compute import SharedCompute, group_by_size
from benchmark.run.stages import INVERT
from benchmark.run.suite_plan import Engine, ImageItem


def chunks(items: Sequence[ImageItem], size: int) -> list[Sequence[ImageItem]]:
    """Fixed boundaries from the first image, so `--limit` only changes the last chunk's key."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def invert_images(runner: Runner, engine: Engine, items: Sequence[ImageItem], *, batch_size: int,
                  with_reference: bool, purpose: str, device, reconstruct: bool = True) -> list[CacheEntry]:
    """One entry per chunk of `batch_size` images, holding `x_T`, the `reconstruction` (uint8; unless
    `reconstruct=False`, for training images, which are never reconstructed) and, on request, the reference."""
    spec = {"purpose": purpose, "with_reference": with_reference, **engine.spec_for("invert")}
    if not reconstruct:
        spec["reconstruct"] = False
    parts = chunks(items, batch_size)
    units = [({**spec, "ids": [it.id for it in chunk]},
              {**engine.digests, **{f"image:{it.id}": it.digest for it in chunk}}) for chunk in parts]
    missing = [i for i, (s, d) in enumerate(units) if not runner.is_cached(INVERT, s, digests=d)]
    unet_batch = getattr(engine, "unet_batch", None)
    rows = unet_batch(cpu_default=batch_size) if unet_batch else batch_size
    shared = {}
    for group in group_by_size(missing, {i: len(parts[i]) for i in missing}, max(rows or batch_size, 1)):
        computation = SharedCompute(group, lambda members: _invert(engine, parts, members, with_reference,
                                                                   reconstruct, device))
        shared.update({i: computation.share(i) for i in group})
    entries = []
    for i, (chunk, (unit_spec, digests)) in enumerate(zip(parts, units, strict=True)):
        compute = shared.get(i) or (lambda i=i: _invert(engine, parts, [i], with_reference, reconstruct, device)[i])
        entries.append(runner.unit(INVERT, f"{purpose} {chunk[0].id}..{chunk[-1].id}", unit_spec, compute,
                                   digests=digests))
    return entries


def _invert(engine: Engine, parts, members: list[int], with_reference: bool, reconstruct: bool, device
            ) -> dict[int, StageOutput]:
    """Invert the chunks `members` in one batch and split the result back into chunks."""
    pixels = torch.stack([it.pixels for i in members for it in parts[i]])
    kwargs = {} if reconstruct else {"reconstruct": False}
    with torch.no_grad():
        out = engine.invert(from_uint8(pixels).to(device), with_reference=with_reference, **kwargs)
    outputs, start = {}, 0
    for i in members:
        n = len(parts[i])
        tensors = {k: v[start:start + n] for k, v in out.items() if k != "reconstruction"}
        if reconstruct:
            tensors["reconstruction"] = to_uint8(out["reconstruction"][start:start + n])
        outputs[i] = StageOutput(tensors=tensors, data={"ids": [it.id for it in parts[i]]})
        start += n
    return outputs


def gather(entries: Sequence[CacheEntry], name: str) -> torch.Tensor:
    """One tensor over all chunks, in image order."""
    return torch.cat([e.output.tensors[name] for e in entries])
