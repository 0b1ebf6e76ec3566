"""FID and KID between the edited images and their references, through torch-fidelity.

Features come from a registered FID back-end (torch-fidelity's Inception by default) and are cached under a
content hash of the images and the extractor's identity (torch-fidelity's own cache key is only a name). A cached
file is used only when its metadata names exactly that identity and the digest of its features, its shape (one
row per image) and its values (finite) check out; anything else is reported, recomputed and replaced. A run with
`--fresh` (`reuse_cache = False`) never reads it. FID is
`metrics.frechet_distance` of the two sets' Gaussian statistics; KID is torch-fidelity's unbiased polynomial-kernel
MMD². Both get a paired bootstrap CI over images. At N = 100, FID is strongly biased upwards (it depends on N);
KID is unbiased, so report it beside FID and always compare at equal N.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from benchmark.core.atomic import save_safetensors
from benchmark.core.errors import DataError
from benchmark.core.hashing import json_digest, tensor_digest
from benchmark.core.paths import cache_dir
from metrics.aggregate import Aggregate, aggregate_set_statistic
from metrics.base import EditSet, Metric, MetricResult, MetricSpec, register_metric
from metrics.functional import frechet_distance, frechet_distance_from_features

#: Bump when the way features are computed or stored changes, so stale cache entries are never reused.
FEATURE_CACHE_VERSION = 2  # 2: the file records the digest of its features

log = logging.getLogger("metrics.fid")


class FeatureSpec(MetricSpec):
    backend: str = "inception-v3-compat"
    feature_layer: str = "2048"
    internal_dtype: Literal["float32", "float64"] = "float32"
    bootstrap_resamples: int = Field(200, ge=0)


class FeatureSetMetric(Metric):
    """Shared machinery of FID and KID: feature extraction in batches, content-hash cache, paired bootstrap."""

    backend_kind = "fid-features"
    min_images = 2

    def backend_options(self) -> dict:
        return {**self.spec.backend_options, "layer": self.spec.feature_layer,
                "internal_dtype": self.spec.internal_dtype}

    def feature_cache_path(self, key: str) -> Path:
        root = self.cache_dir if self.cache_dir is not None else cache_dir()
        return root / "metrics" / "features" / f"{key}.safetensors"

    def features(self, extractor, images: torch.Tensor, desc: str) -> tuple[np.ndarray, bool]:
        """(N×D float64 features, whether they came from the cache)."""
        identity = {"images": tensor_digest(images.cpu()), "extractor": extractor.identity(),
                    "device": self.device.type, "version": FEATURE_CACHE_VERSION}
        path = self.feature_cache_path(json_digest(identity))
        if self.reuse_cache and path.is_file():
            cached = read_cached_features(path, identity, n_images=images.shape[0])
            if cached is not None:
                return cached.numpy(), True
        feats = torch.cat([extractor.features(b) for b in self.batches(images, desc)])
        save_safetensors(path, {"features": feats}, metadata={"identity": json.dumps(identity, sort_keys=True),
                                                             "features_sha256": tensor_digest(feats)})
        return feats.numpy(), False

    def both_features(self, edits: EditSet) -> tuple[np.ndarray, np.ndarray, dict]:
        reference = self.check(edits)
        extractor = self.backend()
        f_edit, hit_edit = self.features(extractor, edits.edited, "edited")
        f_ref, hit_ref = self.features(extractor, reference, "reference")
        return f_edit, f_ref, {"feature_cache_hits": {"edited": hit_edit, "reference": hit_ref},
                               "extractor": extractor.identity()}

    def result(self, edits: EditSet, primary, started: float, notes: list[str], extra: dict) -> MetricResult:
        prov = self.provenance(started) | {"feature_cache_hits": extra["feature_cache_hits"]}
        f_edit, f_ref = extra["features"]
        return MetricResult(name=self.name, direction=self.direction, primary=primary, variants={}, per_image={},
                            ids=list(edits.ids), flags={}, spec=self.spec_dict() | extra.get("spec_extra", {}),
                            notes=notes, provenance=prov, feature_sets={"edited": f_edit, "reference": f_ref})


def read_cached_features(path: Path, identity: dict, *, n_images: int) -> torch.Tensor | None:
    """The features cached at `path` if they are intact and are those of `identity`; None (with a warning naming
    the file) when the file is truncated, of another identity, of the wrong shape, not finite, or not the
    features its recorded digest names."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            feats = f.get_tensor("features")
        if json.loads(meta.get("identity", "null")) != json.loads(json.dumps(identity, sort_keys=True)):
            raise ValueError("it was computed for other images or another extractor")
        if feats.ndim != 2 or feats.shape[0] != n_images:
            raise ValueError(f"shape {tuple(feats.shape)}, expected {n_images} rows of features")
        if meta.get("features_sha256") != tensor_digest(feats):
            raise ValueError("its features do not match the digest it records")
        if not torch.isfinite(feats).all():
            raise ValueError("it holds non-finite features")
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        log.warning("feature cache file %s is damaged (%s); it is not used and will be recomputed", path, exc)
        return None
    return feats


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance, by torch-fidelity's `fid_features_to_statistics`."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    stats = fid_features_to_statistics(torch.from_numpy(np.ascontiguousarray(features)))
    return stats["mu"], stats["sigma"]


@register_metric
class FrechetDistance(FeatureSetMetric):
    """FID, the Fréchet distance between Inception feature Gaussians of edited and reference images."""

    name = "fid@1"
    direction = "lower"
    Spec = FeatureSpec

    def compute(self, edits: EditSet) -> MetricResult:
        started = time.perf_counter()
        f_edit, f_ref, extra = self.both_features(edits)
        primary = fid_from_features(f_edit, f_ref, self.spec.model_dump())
        n = len(edits)
        notes = [f"FID@N={n}: FID is biased upwards at small N and depends on N; compare only at equal N and read "
                 "KID beside it.",
                 "CI: paired bootstrap over images, bias-corrected (duplicates raise FID replicates); it shows "
                 "sampling noise at this N."]
        return self.result(edits, primary, started, notes, extra | {"features": (f_edit, f_ref)})


def fid_from_features(f_edit: np.ndarray, f_ref: np.ndarray, spec: dict, *, via_gram: bool = False) -> Aggregate:
    """FID of paired feature sets with its paired bootstrap CI (`spec`: the metric's spec, for the bootstrap).

    `via_gram`: the value by the exact n×n identity of `frechet_distance_from_features` instead of torch-fidelity's
    D×D matrix square root; equal up to rounding, and far faster when N ≪ D (e.g. per-group FIDs of a run)."""
    if via_gram:
        value = frechet_distance_from_features(f_edit, f_ref)
    else:
        value = frechet_distance(*gaussian_statistics(f_edit), *gaussian_statistics(f_ref))
    return aggregate_set_statistic(lambda idx: fid_replicate(f_edit[idx], f_ref[idx], spec),
                                   len(f_edit), value=value, resamples=spec["bootstrap_resamples"],
                                   seed=spec["bootstrap_seed"], bias_corrected=True)


class KidSpec(FeatureSpec):
    kid_subset_size: int | Literal["auto"] = "auto"
    kid_subsets: int = Field(100, ge=1)
    kid_degree: int = Field(3, ge=1)
    kid_coef0: float = 1.0
    kid_seed: int = 0


@register_metric
class KernelDistance(FeatureSetMetric):
    """KID, the unbiased polynomial-kernel MMD² between Inception features of edited and reference images."""

    name = "kid@1"
    direction = "lower"
    Spec = KidSpec

    def compute(self, edits: EditSet) -> MetricResult:
        started = time.perf_counter()
        f_edit, f_ref, extra = self.both_features(edits)
        n = len(edits)
        spec = self.spec.model_dump()
        size, subsets = kid_subsets(spec, n)
        primary = kid_from_features(f_edit, f_ref, spec)
        extra["spec_extra"] = {"kid_subset_size_effective": size, "kid_subsets_effective": subsets}
        notes = [f"KID with subset size {size} of N={n} ({subsets} subset(s)); unbiased estimator of MMD².",
                 "CI: paired bootstrap over images (unbiased MMD² over the distinct images of each replicate)."]
        return self.result(edits, primary, started, notes, extra | {"features": (f_edit, f_ref)})


def kid_subsets(spec: dict, n: int) -> tuple[int, int]:
    """(subset size, number of subsets). `auto`: torch-fidelity's default 1000, fitted down to N (all images in
    every subset) when N < 1000; with size == N every subset is the whole set, so one subset gives the value."""
    size = min(1000, n) if spec["kid_subset_size"] == "auto" else int(spec["kid_subset_size"])
    if size > n or size < 2:
        raise DataError(f"KID subset size {size} does not fit N = {n} images (need 2 ≤ size ≤ N)",
                        fix="use kid_subset_size='auto'")
    return size, 1 if size == n else spec["kid_subsets"]


def _kernel_options(spec: dict) -> dict:
    return {"kid_kernel": "poly", "kid_kernel_poly_degree": spec["kid_degree"], "kid_kernel_poly_gamma": None,
            "kid_kernel_poly_coef0": spec["kid_coef0"]}


def kid_from_features(f_edit: np.ndarray, f_ref: np.ndarray, spec: dict) -> Aggregate:
    """KID of paired feature sets (torch-fidelity's estimator) with its paired bootstrap CI."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    size, subsets = kid_subsets(spec, len(f_edit))
    value = kid_features_to_metric(torch.from_numpy(f_edit), torch.from_numpy(f_ref), kid_subsets=subsets,
                                   kid_subset_size=size, rng_seed=spec["kid_seed"], verbose=False,
                                   **_kernel_options(spec))[KEY_METRIC_KID_MEAN]
    return aggregate_set_statistic(lambda idx: kid_replicate(f_edit, f_ref, spec, idx),
                                   len(f_edit), value=value, resamples=spec["bootstrap_resamples"],
                                   seed=spec["bootstrap_seed"])


def fid_replicate(f_edit: np.ndarray, f_ref: np.ndarray, spec: dict, idx: np.ndarray | None = None) -> float:
    """FID of one bootstrap replicate, the images at `idx` (the exact small-N identity, no D×D matrices)."""
    if idx is not None:
        f_edit, f_ref = f_edit[idx], f_ref[idx]
    return frechet_distance_from_features(f_edit, f_ref)


def kid_replicate(f_edit: np.ndarray, f_ref: np.ndarray, spec: dict, idx: np.ndarray | None = None) -> float:
    """KID of one bootstrap replicate (the images at `idx`, all when None): the unbiased MMD² over pairs of
    *distinct images*. A resample repeats images, and the unbiased estimator only leaves out the diagonal, so a
    repeated image would pair with itself off the diagonal and bias every replicate upwards (the CI then missed
    the point value). Without repeats this is torch-fidelity's `kernel_mmd`."""
    idx = np.arange(len(f_edit)) if idx is None else np.asarray(idx, dtype=np.int64)
    x, y = f_edit[idx].astype(np.float64), f_ref[idx].astype(np.float64)
    distinct = idx[:, None] != idx[None, :]
    if not distinct.any():  # one image drawn N times (likely only at N = 2): no distinct pair, use every pair
        distinct = np.ones_like(distinct)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # torch-fidelity's poly kernel, gamma = 1 / dim
        return (a @ b.T / a.shape[1] + spec["kid_coef0"]) ** spec["kid_degree"]

    within = (kernel(x, x)[distinct].mean() + kernel(y, y)[distinct].mean())
    return float(within - 2 * kernel(x, y).mean())


def _fid_on_subsets(f_edit: np.ndarray, f_ref: np.ndarray, spec: dict) -> Aggregate:
    return fid_from_features(f_edit, f_ref, spec, via_gram=True)


#: Set metrics that can be recomputed on subsets of a run's images from its stored feature sets:
#: metric name -> (value with CI, one replicate): fn(f_edit, f_ref, spec) and fn(f_edit, f_ref, spec, idx), with
#: the stored spec.
FEATURE_STATISTICS = {"fid@1": (_fid_on_subsets, fid_replicate), "kid@1": (kid_from_features, kid_replicate)}
