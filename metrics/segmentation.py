"""SC: segmentation consistency between each edited image and its reference, from a 19-class face parser.

Primary: the authors' definition, the fraction of pixels whose argmax labels agree (their leftover `sc_loss`,
against the DDIM reconstruction). Variant: mIoU over the classes present in either map.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from pydantic import Field

from metrics.aggregate import aggregate_per_image
from metrics.backends.parsers import NORMALIZATIONS
from metrics.base import EditSet, Metric, MetricResult, MetricSpec, Reference, register_metric
from metrics.functional import label_agreement, label_miou


class SegmentationSpec(MetricSpec):
    backend: str = "bisenet-79999"
    reference: Reference = "reconstruction"
    input_size: int = Field(256, ge=32)
    normalize: Literal[NORMALIZATIONS] = "imagenet"  # type: ignore[valid-type]


@register_metric
class SegmentationConsistency(Metric):
    """SC, the pixel agreement of face-parser labels between edited and reference images (mIoU as a variant)."""

    name = "sc@1"
    direction = "higher"
    backend_kind = "face-parser"
    Spec = SegmentationSpec

    def backend_options(self) -> dict:
        return {**self.spec.backend_options, "input_size": self.spec.input_size, "normalize": self.spec.normalize}

    def parse(self, parser, images: torch.Tensor, desc: str) -> torch.Tensor:
        return torch.cat([parser.parse(b) for b in self.batches(images, desc)])

    def compute(self, edits: EditSet) -> MetricResult:
        started = time.perf_counter()
        reference = self.check(edits)
        parser = self.backend()
        labels_ref = self.parse(parser, reference, "reference")
        labels_edit = self.parse(parser, edits.edited, "edited")
        agreement = label_agreement(labels_edit, labels_ref)
        miou = label_miou(labels_edit, labels_ref, num_classes=len(parser.label_set))
        agg = dict(resamples=self.spec.bootstrap_resamples, seed=self.spec.bootstrap_seed)
        return MetricResult(
            name=self.name, direction=self.direction,
            primary=aggregate_per_image(agreement.tolist(), **agg),
            variants={"miou": aggregate_per_image(miou.tolist(), **agg)},
            per_image={"value": agreement.tolist(), "miou": miou.tolist()},
            ids=list(edits.ids), flags={},
            spec={**self.spec_dict(), "label_set": parser.label_set.to_dict()},
            notes=["value = pixel agreement of argmax labels (the authors' SC); miou = mean IoU over the classes "
                   "present in either map."],
            provenance=self.provenance(started),
        )
