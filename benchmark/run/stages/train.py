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


def clip_sources(attribute: AttributePlan, train_items: Sequence[ImageItem],
                 train_inversions: Sequence[CacheEntry]) -> torch.Tensor:
    """The CLIP source images of the training loss: the training images, or, for seeded noise, the all-zero
    images (the authors' quirk) or the plain DDIM samples, as the attribute's `clip_source` setting says."""
    if train_items:
        return from_uint8(torch.stack([it.pixels for it in train_items]))
    import models

    return models.clip_source_images(gather(train_inversions, "sample"), attribute.settings["clip_source"])


def train_attribute(runner: Runner, engine: Engine, attribute: AttributePlan, train_items: Sequence[ImageItem],
                    train_inversions: Sequence[CacheEntry], init_entry: CacheEntry | None = None) -> CacheEntry:
    """One f_t; `init_entry`, the trained f_t of this run it starts from (transfer learning within a run)."""
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
        x0 = clip_sources(attribute, train_items, train_inversions)
        names = set().union(*(e.output.tensors for e in train_inversions))
        inversions = {k: gather(train_inversions, k) for k in names if k not in ("reconstruction", "sample")}
        init = _init_state(engine, attribute, init_entry)
        state, info = engine.train(attribute, x0, inversions, **({} if init is None else {"init_state": init}))
        return StageOutput(tensors=state, data={"source": "trained", **info})

    n_images = len(train_items) or sum(len(e.output.data["ids"]) for e in train_inversions)
    spec = {"source": "trained", "attribute": attribute.ref, "prompts": [attribute.source_prompt,
            attribute.target_prompt], "settings": dict(attribute.settings), **engine.spec_for("train", attribute),
            "n_train_images": n_images}
    upstream = {f"invert{i}": e for i, e in enumerate(train_inversions)}
    if init_entry is not None:
        upstream["init_from"] = init_entry
    return runner.unit(TRAIN, attribute.name, spec, compute, digests=engine.digests, upstream=upstream)


def _init_state(engine: Engine, attribute: AttributePlan, init_entry: CacheEntry | None):
    """The weights the f_t starts from: none, an f_t this run trained, or a file (released f_t, saved run)."""
    if attribute.init is None:
        return None
    if init_entry is not None:
        return {k: v.detach().cpu() for k, v in init_entry.output.tensors.items()}
    return engine.load_init(attribute)
