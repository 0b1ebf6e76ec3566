"""Seeded noise in place of inversions (the authors' `--load_random_noise`): one cached unit per chunk of items.

A unit holds what an inversion unit holds (`x_T`, the uint8 `reconstruction`, for training the reference
trajectory) plus, for training, the float plain DDIM `sample` the CLIP source is made from. Its key holds the
noise seed and the items' positions, so every edit or f_t built on it is keyed on the source too. The test side's
samples become the run's images: what the metrics compare edits against.
"""

from __future__ import annotations

from benchmark.core.hashing import tensor_digest
from benchmark.core.images import to_uint8
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.stages import INVERT
from benchmark.run.suite_plan import Engine, ImageItem


def noise_ids(seed: int, start: int, n: int) -> list[str]:
    from models.noise_source import noise_id

    return [noise_id(seed, i) for i in range(start, start + n)]


def sample_noise(runner: Runner, engine: Engine, source, *, n: int, batch_size: int, with_reference: bool,
                 purpose: str) -> list[CacheEntry]:
    """Items 0 .. n − 1 of `source` (a NoiseSourceSpec), in chunks of `batch_size` fixed from the first item."""
    entries = []
    spec = {"purpose": purpose, "with_reference": with_reference, "source": {"kind": "noise", "seed": source.seed},
            **engine.spec_for("noise")}
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        ids = noise_ids(source.seed, start, size)

        def compute(start=start, size=size, ids=ids) -> StageOutput:
            out = engine.noise(size, seed=source.seed, start=start, with_reference=with_reference)
            out["reconstruction"] = to_uint8(out["reconstruction"])
            return StageOutput(tensors=out, data={"ids": ids})

        entries.append(runner.unit(INVERT, f"{purpose} {ids[0]}..{ids[-1]}", {**spec, "ids": ids}, compute,
                                   digests=engine.digests))
    return entries


def noise_items(entries: list[CacheEntry]) -> list[ImageItem]:
    """The plain DDIM samples as the run's images (uint8), with their ids and digests."""
    items = []
    for e in entries:
        for image_id, pixels in zip(e.output.data["ids"], e.output.tensors["reconstruction"], strict=True):
            items.append(ImageItem(image_id, pixels, tensor_digest(pixels)))
    return items
