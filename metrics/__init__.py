"""Metrics for h-space editing: S_dir, segmentation consistency, FID/KID and identity similarity.

    from metrics import get_metric, EditSet
    result = get_metric("sdir@1", weights="/path/to/ViT-B-32.pt").compute(EditSet(...))

Every metric is versioned (`sdir@1`), has a direction and a frozen spec written into its results, and is
computed from the pure functions below, which can be checked on their own. Back-ends (the models behind the
metrics) are registered per kind in `metrics.backends`. Definitions: docs/metrics.md.
"""

from metrics.aggregate import Aggregate, aggregate_per_image, aggregate_set_statistic
from metrics.base import (
    METRICS,
    EditSet,
    Metric,
    MetricResult,
    MetricSpec,
    build_spec,
    get_metric,
    list_metrics,
    register_metric,
)
from metrics.fid import FrechetDistance, KernelDistance
from metrics.functional import (
    directional_similarity,
    frechet_distance,
    frechet_distance_from_features,
    identity_similarity,
    label_agreement,
    label_miou,
)
from metrics.identity import IdentitySimilarity
from metrics.labels import BISENET_FACE_PARSING, CELEBAMASK_HQ, LabelSet
from metrics.sdir import DirectionalClipSimilarity
from metrics.segmentation import SegmentationConsistency

__all__ = [
    "METRICS", "Aggregate", "BISENET_FACE_PARSING", "CELEBAMASK_HQ", "DirectionalClipSimilarity", "EditSet",
    "FrechetDistance", "IdentitySimilarity", "KernelDistance", "LabelSet", "Metric", "MetricResult", "MetricSpec",
    "SegmentationConsistency", "aggregate_per_image", "aggregate_set_statistic", "build_spec",
    "directional_similarity", "frechet_distance", "frechet_distance_from_features", "get_metric",
    "identity_similarity", "label_agreement", "label_miou", "list_metrics", "register_metric",
]
