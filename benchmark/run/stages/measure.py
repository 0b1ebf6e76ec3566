"""Measure: every metric on every attribute's edits; one cached unit per (attribute, metric)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from benchmark.core.hashing import _normalise
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Runner
from benchmark.run.stages import MEASURE
from benchmark.run.stages.invert import gather
from benchmark.run.suite_plan import AttributePlan, ImageItem, MetricPlan


def _aggregate(agg: Any) -> dict[str, Any]:
    """A metric aggregate (`metrics.Aggregate`: mean, std, ci_low, ci_high, n) as plain JSON."""
    if isinstance(agg, Mapping):
        return dict(agg)
    return {k: getattr(agg, k, None) for k in ("mean", "std", "ci_low", "ci_high", "n")}


def result_to_data(result: Any) -> dict[str, Any]:
    """A `metrics.MetricResult` as the JSON a cache entry stores.

    `per_image["value"]` holds the primary per-image values (absent for set metrics such as FID); other keys of
    `per_image` are per-image values of variants. `flags[code]` lists the ids a caveat applies to.
    """
    per_image = {k: [None if v is None else float(v) for v in vals] for k, vals in dict(result.per_image).items()}
    return _normalise({
        "primary": _aggregate(result.primary),
        "variants": {name: _aggregate(agg) for name, agg in dict(result.variants).items()},
        "per_image": per_image.pop("value", []),
        "variant_per_image": per_image,
        "ids": list(result.ids),
        "flags": {code: list(ids) for code, ids in dict(result.flags).items()},
        "notes": list(getattr(result, "notes", [])),
        "spec": dict(result.spec),
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
        if hasattr(metric, "reuse_cache"):  # --fresh recomputes a metric's own cache too (FID's features)
            metric.reuse_cache = not runner.fresh
        result = metric.compute(edit_set)
        # Set metrics (FID, KID) keep their feature sets, so the metric can be recomputed on subsets of the
        # images later (per group, `run_all.py bias`) without the images or the feature network.
        tensors = {f"features_{k}": torch.as_tensor(v) for k, v in dict(getattr(result, "feature_sets", {})).items()}
        return StageOutput(tensors=tensors, data=result_to_data(result))

    spec = {"metric": plan_metric.key, "metric_spec": plan_metric.spec(), "direction": metric.direction,
            "attribute": attribute.ref, "prompts": [attribute.source_prompt, attribute.target_prompt]}
    return runner.unit(MEASURE, f"{key}/{plan_metric.key}", spec, compute,
                       digests={f"image:{it.id}": it.digest for it in items},
                       upstream={"edit": edit_entry, **{f"invert{i}": e for i, e in enumerate(test_inversions)}})
