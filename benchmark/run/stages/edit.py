"""Edit: generate every test image's edit with an attribute's f_t; one cached unit per (attribute, Δh scale)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchmark.core.images import to_uint8
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.stages import EDIT
from benchmark.run.stages.invert import gather
from benchmark.run.suite_plan import AttributePlan, Engine, edit_key


def edit_attribute(runner: Runner, engine: Engine, attribute: AttributePlan, ft_entry: CacheEntry,
                   test_inversions: Sequence[CacheEntry], *, delta_h_scale: float, device) -> CacheEntry:
    def compute() -> StageOutput:
        x_T = gather(test_inversions, "x_T").to(device)
        state = {k: v.to(device) for k, v in ft_entry.output.tensors.items()}
        with torch.no_grad():
            ids = [i for e in test_inversions for i in e.output.data["ids"]]
            edited = engine.edit(attribute, state, x_T, delta_h_scale=delta_h_scale, ids=ids)
        return StageOutput(tensors={"edited": to_uint8(edited)})

    spec = {"attribute": attribute.ref, "settings": dict(attribute.settings), "delta_h_scale": delta_h_scale,
            **engine.spec_for("edit", attribute)}
    return runner.unit(EDIT, edit_key(attribute.name, delta_h_scale), spec, compute, digests=engine.digests,
                       upstream={"ft": ft_entry, **{f"invert{i}": e for i, e in enumerate(test_inversions)}})
