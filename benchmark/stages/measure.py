"""Measure: every metric on every attribute's edits; one cached unit per (attribute, metric)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from benchmark.cache import CacheEntry, StageOutput
from benchmark.hashing import _normalise
from benchmark.runner import Runner
from benchmark.stages import MEASURE
from benchmark.stages.invert import gather
from benchmark.stages.plan import AttributePlan, ImageItem, MetricPlan


def _aggregate(agg: Any) -> dict[str, Any]:
    """A metric aggregate as plain JSON (the metrics package returns small dataclasses or pydantic models)."""
    if isinstance(agg, Mapping):
        return dict(agg)
    if hasattr(agg, "model_dump"):
        return agg.model_dump()
    return {k: getattr(agg, k) for k in ("mean", "std", "ci_low", "ci_high", "n") if hasattr(agg, k)}


def result_to_data(result: Any) -> dict[str, Any]:
    """A `MetricResult` as the JSON a cache entry stores (floats, lists, dicts only)."""
    per_image = result.per_image
    if isinstance(per_image, torch.Tensor):
        per_image = per_image.detach().cpu().double().tolist()
    variants = {}
    variant_per_image = {}
    for name, agg in dict(getattr(result, "variants", {}) or {}).items():
        variants[name] = _aggregate(agg)
        values = getattr(agg, "per_image", None)
        if values is not None:
            variant_per_image[name] = (values.detach().cpu().double().tolist()
                                       if isinstance(values, torch.Tensor) else list(values))
    return _normalise({
        "primary": _aggregate(result.primary),
        "variants": variants,
        "per_image": [None if v is None else float(v) for v in per_image],
        "variant_per_image": variant_per_image,
        "flags": list(getattr(result, "flags", []) or []),
        "spec": dict(result.spec) if result.spec is not None else {},
    })


def measure_attribute(runner: Runner, plan_metric: MetricPlan, attribute: AttributePlan, key: str,
                      items: Sequence[ImageItem], edit_entry: CacheEntry, test_inversions: Sequence[CacheEntry],
                      make_edit_set) -> CacheEntry:
    metric = plan_metric.metric

    def compute() -> StageOutput:
        edit_set = make_edit_set(
            edited=edit_entry.output.tensors["edited"],
            original=torch.stack([it.pixels for it in items]),
            reconstruction=gather(test_inversions, "reconstruction"),
            source_text=attribute.source_prompt, target_text=attribute.target_prompt,
            ids=[it.id for it in items])
        return StageOutput(data=result_to_data(metric(edit_set)))

    spec = {"metric": plan_metric.key, "metric_spec": dict(metric.spec), "direction": metric.direction,
            "attribute": attribute.ref, "prompts": [attribute.source_prompt, attribute.target_prompt]}
    return runner.unit(MEASURE, f"{key}/{plan_metric.key}", spec, compute,
                       digests={f"image:{it.id}": it.digest for it in items},
                       upstream={"edit": edit_entry, **{f"invert{i}": e for i, e in enumerate(test_inversions)}})
