"""A suite's paper values → the reference columns of its results (paper, reproduction study), with bands."""

from __future__ import annotations


def references(resolved) -> list:
    from benchmark.outputs.results import ReferenceValue
    from benchmark.run.suite_plan import edit_key

    if resolved.paper_values is None:
        return []
    out = []
    for v in resolved.paper_values.manifest.values:
        scale = float(v.settings.get("delta_h_scale", 1.0))
        band = v.band
        out.append(ReferenceValue(
            metric=v.metric, attribute=edit_key(v.attribute, scale), column=v.column, value=v.value,
            provenance=v.provenance, variant=None if v.variant in (None, "primary") else v.variant,
            band=None if band is None or band.is_open else band.interval(),
            gated=bool(band.gate) if band is not None else False,
            band_rationale=band.rationale if band is not None else "", std=v.std, n=v.n,
            settings=dict(v.settings)))
    return out
