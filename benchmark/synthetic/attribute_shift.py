"""`attribute-shift@1`: how far an edit moved the oracle's measure of the target factor, and what else it moved.

Per image, with o(x) the oracle's factor vector (each factor in its own units, `renderer.FACTOR_RANGES`):

    value            = sign · (o(edited)[target] − o(reference)[target])        sign = +1 increase, −1 decrease
    non_target_change = mean over the other factors f of |o(edited)[f] − o(reference)[f]| / (range of f)
    shift_<f>         = o(edited)[f] − o(reference)[f]                           (every factor, raw units)

Aggregates are the standard ones (`metrics.aggregate.aggregate_per_image`: mean, std, bootstrap CI, N).
"""

from __future__ import annotations

import time
from typing import Literal

import torch

from benchmark.core.errors import BenchError
from benchmark.synthetic.renderer import FACTOR_NAMES, FACTOR_RANGES
from metrics.aggregate import aggregate_per_image
from metrics.base import EditSet, Metric, MetricResult, MetricSpec, register_metric


class AttributeShiftSpec(MetricSpec):
    backend: str = "synthetic-oracle"
    target_factor: str = "mouth_curvature"
    target_direction: Literal["increase", "decrease"] = "increase"


def attribute_shift(edited: torch.Tensor, reference: torch.Tensor, target: str, sign: float
                    ) -> dict[str, torch.Tensor]:
    """Per-image value, non-target change and raw shifts from oracle measurements (N×F each)."""
    if target not in FACTOR_NAMES:
        from benchmark.core.registry import require_choice

        require_choice("target factor", target, list(FACTOR_NAMES))
    delta = edited.double() - reference.double()
    j = FACTOR_NAMES.index(target)
    spans = torch.tensor([FACTOR_RANGES[n][1] - FACTOR_RANGES[n][0] for n in FACTOR_NAMES], dtype=torch.float64)
    others = [i for i in range(len(FACTOR_NAMES)) if i != j]
    out = {"value": sign * delta[:, j], "non_target_change": (delta[:, others].abs() / spans[others]).mean(1)}
    out |= {f"shift_{n}": delta[:, i] for i, n in enumerate(FACTOR_NAMES)}
    return out


@register_metric
class AttributeShift(Metric):
    """Oracle shift of the target factor (edit − reference, signed so higher = more of the attribute)."""

    name = "attribute-shift@1"
    direction = "higher"
    backend_kind = "factor-oracle"
    Spec = AttributeShiftSpec

    def measure(self, oracle, images: torch.Tensor, desc: str) -> torch.Tensor:
        return torch.cat([oracle.measure(batch) for batch in self.batches(images, desc)])

    def compute(self, edits: EditSet) -> MetricResult:
        started = time.perf_counter()
        reference = self.check(edits)
        oracle = self.backend()
        names = tuple(getattr(oracle, "factor_names", ()))
        if self.spec.target_factor not in names:
            raise BenchError(f"the oracle {self.spec.backend!r} does not measure {self.spec.target_factor!r} "
                             f"(it measures: {', '.join(names)})", fix="set target_factor to one of those")
        sign = 1.0 if self.spec.target_direction == "increase" else -1.0
        per = attribute_shift(self.measure(oracle, edits.edited, "edited"),
                              self.measure(oracle, reference, "reference"), self.spec.target_factor, sign)
        agg = dict(resamples=self.spec.bootstrap_resamples, seed=self.spec.bootstrap_seed)
        per_image = {k: v.tolist() for k, v in per.items()}
        return MetricResult(
            name=self.name, direction=self.direction, primary=aggregate_per_image(per_image["value"], **agg),
            variants={k: aggregate_per_image(v, **agg) for k, v in per_image.items() if k != "value"},
            per_image=per_image, ids=list(edits.ids), flags={}, spec=self.spec_dict(),
            notes=[f"target {self.spec.target_factor} ({self.spec.target_direction}); factors in their own units; "
                   "non_target_change is the mean |Δ| of the other factors as a fraction of their ranges"],
            provenance=self.provenance(started))
