"""Train: one f_t per attribute (or the authors' released f_t, loaded and verified)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchmark.core.images import from_uint8
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.stages import TRAIN
from benchmark.run.stages.invert import gather
from benchmark.run.suite_plan import AttributePlan, Engine, ImageItem


def train_attribute(runner: Runner, engine: Engine, attribute: AttributePlan, train_items: Sequence[ImageItem],
                    train_inversions: Sequence[CacheEntry]) -> CacheEntry:
    if attribute.official_ft is not None:
        path, sha256 = attribute.official_ft
        spec = {"source": "official", "attribute": attribute.ref, **engine.spec_for("load", attribute)}
        return runner.unit(TRAIN, attribute.name, spec,
                           lambda: StageOutput(tensors=engine.load_official(attribute),
                                               data={"source": "official", "path": str(path)}),
                           digests={"official_ft": sha256})

    def compute() -> StageOutput:
        # Left on the CPU: the trainer moves one batch at a time, and the reference trajectories of 1,000
        # images (about 20 GB in fp32) need not fit on the GPU.
        x0 = from_uint8(torch.stack([it.pixels for it in train_items]))
        names = set().union(*(e.output.tensors for e in train_inversions))
        inversions = {k: gather(train_inversions, k) for k in names if k != "reconstruction"}
        state, info = engine.train(attribute, x0, inversions)
        return StageOutput(tensors=state, data={"source": "trained", **info})

    spec = {"source": "trained", "attribute": attribute.ref, "prompts": [attribute.source_prompt,
            attribute.target_prompt], "settings": dict(attribute.settings), **engine.spec_for("train", attribute),
            "n_train_images": len(train_items)}
    return runner.unit(TRAIN, attribute.name, spec, compute, digests=engine.digests,
                       upstream={f"invert{i}": e for i, e in enumerate(train_inversions)})
