"""Edit: every test image's edit per (attribute, Δh scale); one cached unit per (attribute, Δh scale, inversion
chunk), so edits spread over workers by image as inversions do. The edit of all test images is its chunks read as
one (`CombinedEntry`), which is what the metrics, the figures and the checks consume.

With an engine that edits several settings together (`AsyrpEngine.attribute_batching`), the missing settings of a
chunk run as one batch per step (`Engine.edit_many`); the cached ones are read as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from benchmark.core.images import to_uint8
from benchmark.run.cache import CacheEntry, CombinedEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.shared_compute import SharedCompute
from benchmark.run.stages import EDIT
from benchmark.run.suite_plan import AttributePlan, Engine, edit_key

Setting = tuple[AttributePlan, float]  # (attribute, Δh scale)


def edit_all(runner: Runner, engine: Engine, settings: Sequence[Setting], ft_entries: Mapping[str, CacheEntry],
             test_inversions: Sequence[CacheEntry], *, device) -> dict[str, CombinedEntry]:
    """Every (attribute, Δh scale) edit, keyed by `edit_key`, in order."""
    batched = getattr(engine, "attribute_batching", False) and hasattr(engine, "edit_many")
    parts: dict[str, list[CacheEntry]] = {edit_key(a.name, s): [] for a, s in settings}
    for i, inversion in enumerate(test_inversions):
        shared = _shared_chunk(runner, engine, settings, ft_entries, inversion, device) if batched else {}
        for attribute, scale in settings:
            key = edit_key(attribute.name, scale)
            parts[key].append(_edit_chunk(runner, engine, attribute, ft_entries[attribute.name], inversion,
                                          (i, len(test_inversions)), scale, device, shared.get(key)))
    return {key: CombinedEntry(EDIT.name, chunks) for key, chunks in parts.items()}


def edit_attribute(runner: Runner, engine: Engine, attribute: AttributePlan, ft_entry: CacheEntry,
                   test_inversions: Sequence[CacheEntry], *, delta_h_scale: float, device) -> CombinedEntry:
    """One setting's edit of every test image, one setting at a time."""
    return CombinedEntry(EDIT.name, [
        _edit_chunk(runner, engine, attribute, ft_entry, inversion, (i, len(test_inversions)), delta_h_scale, device)
        for i, inversion in enumerate(test_inversions)])


def _edit_chunk(runner: Runner, engine: Engine, attribute: AttributePlan, ft_entry: CacheEntry,
                inversion: CacheEntry, chunk: tuple[int, int], delta_h_scale: float, device,
                compute=None) -> CacheEntry:
    def edit_alone() -> StageOutput:
        with torch.no_grad():
            edited = engine.edit(attribute, _state(ft_entry, device), _x_T(inversion, device),
                                 delta_h_scale=delta_h_scale, ids=_ids(inversion))
        return StageOutput(tensors={"edited": to_uint8(edited)})

    # Each image's η = 1 noise is seeded from its id (the engine's noise generators), so a chunk's edits do not
    # depend on which images share its batch.
    label = f"{edit_key(attribute.name, delta_h_scale)} chunk {chunk[0] + 1}/{chunk[1]}"
    return runner.unit(EDIT, label, _spec(engine, attribute, delta_h_scale), compute or edit_alone,
                       digests=engine.digests, upstream={"ft": ft_entry, "invert": inversion})


def _shared_chunk(runner: Runner, engine: Engine, settings: Sequence[Setting], ft_entries: Mapping[str, CacheEntry],
                  inversion: CacheEntry, device) -> dict[str, object]:
    """For one chunk, the missing settings' edits as one batched computation; each setting's share by key."""
    missing = {edit_key(a.name, s): (a, s) for a, s in settings
               if not runner.is_cached(EDIT, _spec(engine, a, s), digests=engine.digests,
                                       upstream={"ft": ft_entries[a.name], "invert": inversion})}
    if not missing:
        return {}

    def compute(keys: list[str]) -> dict[str, StageOutput]:
        requests = [(missing[k][0], _state(ft_entries[missing[k][0].name], device), missing[k][1]) for k in keys]
        with torch.no_grad():
            edited = engine.edit_many(requests, _x_T(inversion, device), ids=_ids(inversion))
        return {k: StageOutput(tensors={"edited": to_uint8(e)}) for k, e in zip(keys, edited, strict=True)}

    computation = SharedCompute(list(missing), compute)
    return {k: computation.share(k) for k in missing}


def _spec(engine: Engine, attribute: AttributePlan, delta_h_scale: float) -> dict:
    return {"attribute": attribute.ref, "settings": dict(attribute.settings), "delta_h_scale": delta_h_scale,
            **engine.spec_for("edit", attribute)}


def _x_T(inversion: CacheEntry, device) -> torch.Tensor:
    return inversion.output.tensors["x_T"].to(device)


def _ids(inversion: CacheEntry) -> list[str]:
    return list(inversion.output.data["ids"])


def _state(ft_entry: CacheEntry, device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in ft_entry.output.tensors.items()}
