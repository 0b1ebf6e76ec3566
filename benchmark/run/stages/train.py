"""Train: one f_t per attribute (or the authors' released f_t, loaded and verified).

Each attribute's f_t is its own cached unit. With an engine that trains attributes together
(`AsyrpEngine.attribute_batching`), the attributes that share the training settings and are not cached yet are
trained in one pass (`Engine.train_many`); the cached ones are read as they are. An f_t that starts from other
weights (transfer learning) trains alone, after the f_t of this run it starts from; so does one trained from seeded
noise, whose CLIP source images are its own.
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


def train_all(runner: Runner, engine: Engine, attributes: Sequence[AttributePlan], train_items: Sequence[ImageItem],
              train_inversions: Sequence[CacheEntry], *, n_train_images: int | None = None) -> dict[str, CacheEntry]:
    """Every attribute's f_t entry, keyed by attribute name, in the attributes' order; `n_train_images` (part of
    the keys) defaults to the training images' count (seeded noise has none: the planner passes its count)."""
    n_images = len(train_items) if n_train_images is None else n_train_images
    shared = {}
    if getattr(engine, "attribute_batching", False) and hasattr(engine, "train_many") and train_items:
        together = [a for a in attributes if a.official_ft is None and a.init is None]
        shared = _shared_passes(runner, engine, together, train_items, train_inversions, n_images)
    entries: dict[str, CacheEntry] = {}
    # f_t that start from another f_t of this run train after it
    for a in sorted(attributes, key=lambda a: a.init is not None and a.init.kind == "this-run"):
        source = a.init.attribute if a.init is not None and a.init.kind == "this-run" else None
        entries[a.name] = train_attribute(runner, engine, a, train_items, train_inversions,
                                          entries[source] if source else None, n_images=n_images,
                                          compute=shared.get(a.name))
    return {a.name: entries[a.name] for a in attributes}


def _shared_passes(runner, engine, trained: Sequence[AttributePlan], train_items, train_inversions,
                   n_images: int) -> dict:
    """One shared computation per group of missing attributes with the same training settings."""
    groups: dict[tuple, list[AttributePlan]] = {}
    upstream = _upstream(train_inversions, None)
    for a in trained:
        if not runner.is_cached(TRAIN, _spec(engine, a, n_images), digests=engine.digests, upstream=upstream):
            groups.setdefault(engine.batch_group(a), []).append(a)
    shared = {}
    for members in groups.values():
        by_name = {a.name: a for a in members}

        def compute(names: list[str], by_name=by_name) -> dict[str, StageOutput]:
            x0 = from_uint8(torch.stack([it.pixels for it in train_items]))
            results = engine.train_many([by_name[n] for n in names], x0, _inversion_tensors(train_inversions))
            return {n: StageOutput(tensors=state, data={"source": "trained", **info})
                    for n, (state, info) in zip(names, results, strict=True)}

        computation = SharedCompute(list(by_name), compute)
        shared.update({name: computation.share(name) for name in by_name})
    return shared


def clip_sources(attribute: AttributePlan, train_items: Sequence[ImageItem],
                 train_inversions: Sequence[CacheEntry]) -> torch.Tensor:
    """The CLIP source images of the training loss: the training images, or, for seeded noise, the all-zero
    images (the authors' quirk) or the plain DDIM samples, as the attribute's `clip_source` setting says."""
    if train_items:
        return from_uint8(torch.stack([it.pixels for it in train_items]))
    import models

    return models.clip_source_images(gather(train_inversions, "sample"), attribute.settings["clip_source"])


def train_attribute(runner: Runner, engine: Engine, attribute: AttributePlan, train_items: Sequence[ImageItem],
                    train_inversions: Sequence[CacheEntry], init_entry: CacheEntry | None = None, *,
                    n_images: int | None = None, compute=None) -> CacheEntry:
    """One f_t; `init_entry`, the trained f_t of this run it starts from (transfer learning within a run)."""
    if attribute.official_ft is not None:
        path, sha256 = attribute.official_ft
        spec = {"source": "official", "attribute": attribute.ref, **engine.spec_for("load", attribute)}
        return runner.unit(TRAIN, attribute.name, spec,
                           lambda: StageOutput(tensors=engine.load_official(attribute),
                                               data={"source": "official", "path": str(path)}),
                           digests={"official_ft": sha256})

    def train_alone() -> StageOutput:
        # Left on the CPU: the trainer moves one batch at a time, and the reference trajectories of 1,000
        # images (about 20 GB in fp32) need not fit on the GPU.
        x0 = clip_sources(attribute, train_items, train_inversions)
        init = _init_state(engine, attribute, init_entry)
        state, info = engine.train(attribute, x0, _inversion_tensors(train_inversions),
                                   **({} if init is None else {"init_state": init}))
        return StageOutput(tensors=state, data={"source": "trained", **info})

    n_images = len(train_items) if n_images is None else n_images
    return runner.unit(TRAIN, attribute.name, _spec(engine, attribute, n_images), compute or train_alone,
                       digests=engine.digests, upstream=_upstream(train_inversions, init_entry))


def _spec(engine: Engine, attribute: AttributePlan, n_images: int) -> dict:
    return {"source": "trained", "attribute": attribute.ref, "prompts": [attribute.source_prompt,
            attribute.target_prompt], "settings": dict(attribute.settings), **engine.spec_for("train", attribute),
            "n_train_images": n_images}


def _upstream(train_inversions: Sequence[CacheEntry], init_entry: CacheEntry | None) -> dict[str, CacheEntry]:
    upstream = {f"invert{i}": e for i, e in enumerate(train_inversions)}
    if init_entry is not None:
        upstream["init_from"] = init_entry
    return upstream


def _inversion_tensors(train_inversions: Sequence[CacheEntry]) -> dict[str, torch.Tensor]:
    """What training reads of the inversions (never the reconstruction; the noise samples are CLIP sources)."""
    names = set().union(*(e.output.tensors for e in train_inversions))
    return {k: gather(train_inversions, k) for k in names if k not in ("reconstruction", "sample")}


def _init_state(engine: Engine, attribute: AttributePlan, init_entry: CacheEntry | None):
    """The weights the f_t starts from: none, an f_t this run trained, or a file (released f_t, saved run)."""
    if attribute.init is None:
        return None
    if init_entry is not None:
        return {k: v.detach().cpu() for k, v in init_entry.output.tensors.items()}
    return engine.load_init(attribute)
