"""Train: one f_t per attribute (or the authors' released f_t, loaded and verified).

Each attribute's f_t is its own cached unit. With an engine that trains attributes together
(`AsyrpEngine.attribute_batching`), the attributes that share the training settings and are not cached yet are
trained in one pass (`Engine.train_many`); the cached ones are read as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchmark.core.images import from_uint8
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.shared_compute import SharedCompute
from benchmark.run.stages import TRAIN
from benchmark.run.stages.invert import gather
from benchmark.run.suite_plan import AttributePlan, Engine, ImageItem


def train_all(runner: Runner, engine: Engine, attributes: Sequence[AttributePlan],
                     train_items: Sequence[ImageItem], train_inversions: Sequence[CacheEntry]
                     ) -> dict[str, CacheEntry]:
    """Every attribute's f_t entry, keyed by attribute name, in order."""
    shared = {}
    if getattr(engine, "attribute_batching", False) and hasattr(engine, "train_many"):
        shared = _shared_passes(runner, engine, [a for a in attributes if a.official_ft is None], train_items,
                                train_inversions)
    return {a.name: train_attribute(runner, engine, a, train_items, train_inversions, compute=shared.get(a.name))
            for a in attributes}


def _shared_passes(runner, engine, trained: Sequence[AttributePlan], train_items, train_inversions) -> dict:
    """One shared computation per group of missing attributes with the same training settings."""
    groups: dict[tuple, list[AttributePlan]] = {}
    upstream = _upstream(train_inversions)
    for a in trained:
        if not runner.is_cached(TRAIN, _spec(engine, a, train_items), digests=engine.digests, upstream=upstream):
            groups.setdefault(engine.batch_group(a), []).append(a)
    shared = {}
    for members in groups.values():
        by_name = {a.name: a for a in members}

        def compute(names: list[str], by_name=by_name) -> dict[str, StageOutput]:
            x0, inversions = _training_inputs(train_items, train_inversions)
            results = engine.train_many([by_name[n] for n in names], x0, inversions)
            return {n: StageOutput(tensors=state, data={"source": "trained", **info})
                    for n, (state, info) in zip(names, results, strict=True)}

        computation = SharedCompute(list(by_name), compute)
        shared.update({name: computation.share(name) for name in by_name})
    return shared


def train_attribute(runner: Runner, engine: Engine, attribute: AttributePlan, train_items: Sequence[ImageItem],
                    train_inversions: Sequence[CacheEntry], *, compute=None) -> CacheEntry:
    if attribute.official_ft is not None:
        path, sha256 = attribute.official_ft
        spec = {"source": "official", "attribute": attribute.ref, **engine.spec_for("load", attribute)}
        return runner.unit(TRAIN, attribute.name, spec,
                           lambda: StageOutput(tensors=engine.load_official(attribute),
                                               data={"source": "official", "path": str(path)}),
                           digests={"official_ft": sha256})

    def train_alone() -> StageOutput:
        x0, inversions = _training_inputs(train_items, train_inversions)
        state, info = engine.train(attribute, x0, inversions)
        return StageOutput(tensors=state, data={"source": "trained", **info})

    return runner.unit(TRAIN, attribute.name, _spec(engine, attribute, train_items), compute or train_alone,
                       digests=engine.digests, upstream=_upstream(train_inversions))


def _spec(engine: Engine, attribute: AttributePlan, train_items) -> dict:
    return {"source": "trained", "attribute": attribute.ref, "prompts": [attribute.source_prompt,
            attribute.target_prompt], "settings": dict(attribute.settings), **engine.spec_for("train", attribute),
            "n_train_images": len(train_items)}


def _upstream(train_inversions: Sequence[CacheEntry]) -> dict[str, CacheEntry]:
    return {f"invert{i}": e for i, e in enumerate(train_inversions)}


def _training_inputs(train_items, train_inversions):
    # Left on the CPU: the trainer moves one batch at a time, and a cached reference trajectory of 1,000
    # images (about 17 GB in fp32) need not fit on the GPU.
    x0 = from_uint8(torch.stack([it.pixels for it in train_items]))
    names = set().union(*(e.output.tensors for e in train_inversions))
    return x0, {k: gather(train_inversions, k) for k in names if k != "reconstruction"}
