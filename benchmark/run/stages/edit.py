"""Edit: every test image's edit per (attribute, Δh scale), each its own cached unit.

With an engine that edits several settings together (`AsyrpEngine.attribute_batching`), the missing settings run
as one batch per step (`Engine.edit_many`); the cached ones are read as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from benchmark.core.images import to_uint8
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.shared_compute import SharedCompute
from benchmark.run.stages import EDIT
from benchmark.run.stages.invert import gather
from benchmark.run.suite_plan import AttributePlan, Engine, edit_key


def edit_all(runner: Runner, engine: Engine, settings: Sequence[tuple[AttributePlan, float]],
             ft_entries: Mapping[str, CacheEntry], test_inversions: Sequence[CacheEntry], *, device
             ) -> dict[str, CacheEntry]:
    """Every (attribute, Δh scale) edit entry, keyed by `edit_key`, in order."""
    shared = {}
    if getattr(engine, "attribute_batching", False) and hasattr(engine, "edit_many"):
        missing = [(a, s) for a, s in settings
                   if not runner.is_cached(EDIT, _spec(engine, a, s), digests=engine.digests,
                                           upstream=_upstream(ft_entries[a.name], test_inversions))]
        by_key = {edit_key(a.name, s): (a, s) for a, s in missing}

        def compute(keys: list[str]) -> dict[str, StageOutput]:
            x_T, ids = _inputs(test_inversions, device)
            requests = [(by_key[k][0], _state(ft_entries[by_key[k][0].name], device), by_key[k][1]) for k in keys]
            with torch.no_grad():
                edited = engine.edit_many(requests, x_T, ids=ids)
            return {k: StageOutput(tensors={"edited": to_uint8(e)}) for k, e in zip(keys, edited, strict=True)}

        if by_key:
            computation = SharedCompute(list(by_key), compute)
            shared = {k: computation.share(k) for k in by_key}
    return {edit_key(a.name, s): edit_attribute(runner, engine, a, ft_entries[a.name], test_inversions,
                                                delta_h_scale=s, device=device, compute=shared.get(edit_key(a.name, s)))
            for a, s in settings}


def edit_attribute(runner: Runner, engine: Engine, attribute: AttributePlan, ft_entry: CacheEntry,
                   test_inversions: Sequence[CacheEntry], *, delta_h_scale: float, device,
                   compute=None) -> CacheEntry:
    def edit_alone() -> StageOutput:
        x_T, ids = _inputs(test_inversions, device)
        with torch.no_grad():
            edited = engine.edit(attribute, _state(ft_entry, device), x_T, delta_h_scale=delta_h_scale, ids=ids)
        return StageOutput(tensors={"edited": to_uint8(edited)})

    return runner.unit(EDIT, edit_key(attribute.name, delta_h_scale), _spec(engine, attribute, delta_h_scale),
                       compute or edit_alone, digests=engine.digests, upstream=_upstream(ft_entry, test_inversions))


def _spec(engine: Engine, attribute: AttributePlan, delta_h_scale: float) -> dict:
    return {"attribute": attribute.ref, "settings": dict(attribute.settings), "delta_h_scale": delta_h_scale,
            **engine.spec_for("edit", attribute)}


def _upstream(ft_entry: CacheEntry, test_inversions: Sequence[CacheEntry]) -> dict[str, CacheEntry]:
    return {"ft": ft_entry, **{f"invert{i}": e for i, e in enumerate(test_inversions)}}


def _inputs(test_inversions: Sequence[CacheEntry], device) -> tuple[torch.Tensor, list[str]]:
    x_T = gather(test_inversions, "x_T").to(device)
    return x_T, [i for e in test_inversions for i in e.output.data["ids"]]


def _state(ft_entry: CacheEntry, device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in ft_entry.output.tensors.items()}
