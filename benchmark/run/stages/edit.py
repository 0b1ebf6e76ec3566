"""Edit: generate every test image's edit with an attribute's f_t; one cached unit per (attribute, Δh scale,
inversion chunk), so edits spread over workers by image like inversions do. The edit of all test images is the
chunks read as one (`CombinedEntry`), which is what the metrics, the figures and the checks consume."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchmark.core.images import to_uint8
from benchmark.run.cache import CacheEntry, CombinedEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.stages import EDIT
from benchmark.run.suite_plan import AttributePlan, Engine, edit_key


def edit_attribute(runner: Runner, engine: Engine, attribute: AttributePlan, ft_entry: CacheEntry,
                   test_inversions: Sequence[CacheEntry], *, delta_h_scale: float, device) -> CombinedEntry:
    spec = {"attribute": attribute.ref, "settings": dict(attribute.settings), "delta_h_scale": delta_h_scale,
            **engine.spec_for("edit", attribute)}
    key = edit_key(attribute.name, delta_h_scale)
    parts = []
    for i, inversion in enumerate(test_inversions):
        def compute(inversion=inversion) -> StageOutput:
            x_T = inversion.output.tensors["x_T"].to(device)
            state = {k: v.to(device) for k, v in ft_entry.output.tensors.items()}
            with torch.no_grad():
                edited = engine.edit(attribute, state, x_T, delta_h_scale=delta_h_scale,
                                     ids=list(inversion.output.data["ids"]))
            return StageOutput(tensors={"edited": to_uint8(edited)})

        # Each image's η = 1 noise is seeded from its id (the engine's noise generators), so a chunk's edits do
        # not depend on which images share its batch.
        parts.append(runner.unit(EDIT, f"{key} chunk {i + 1}/{len(test_inversions)}", spec, compute,
                                 digests=engine.digests, upstream={"ft": ft_entry, "invert": inversion}))
    return CombinedEntry(EDIT.name, parts)
