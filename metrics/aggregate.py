"""Aggregates of a metric over a set of images: mean, std, a 95% bootstrap CI with a fixed seed, and N.

The CI comes from resampling the images (scipy's percentile bootstrap), never from reruns with other seeds: it
says how much the score would move with another draw of N images, not how noisy the editing run was.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Aggregate:
    """One reported number with its uncertainty.

    For per-image metrics `mean` and `std` are over images and the CI is the bootstrap CI of the mean. For set
    metrics (FID, KID) `mean` is the value on the whole set, `std` the standard deviation of the bootstrap
    replicates, and the CI their percentile interval (bias-corrected for FID). `ci_low`/`ci_high` are None when N < 2.
    """

    mean: float
    ci_low: float | None
    ci_high: float | None
    n: int
    std: float | None = None  # None only in results written without it

    # The results schema (pydantic) validates this dataclass directly: no second Aggregate type to convert to.
    __pydantic_config__ = {"extra": "forbid"}

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"aggregate produced a non-finite value {x!r}")
    return float(x)


def _percentile_bootstrap(values_or_index: np.ndarray, statistic: Callable[[np.ndarray], float], *,
                          resamples: int, seed: int) -> tuple[float, float, np.ndarray]:
    from scipy.stats import bootstrap

    res = bootstrap((values_or_index,), statistic, vectorized=False, n_resamples=resamples,
                    confidence_level=CONFIDENCE, method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high), res.bootstrap_distribution


def aggregate_per_image(values: Sequence[float], *, resamples: int = 1000, seed: int = 0) -> Aggregate:
    """Mean, sample std (ddof=1), and the percentile-bootstrap 95% CI of the mean of per-image values."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    if n == 0:
        raise ValueError("cannot aggregate an empty set of values")
    mean = _finite(v.mean())
    if n < 2:
        return Aggregate(mean=mean, std=0.0, ci_low=None, ci_high=None, n=n)
    std = _finite(v.std(ddof=1))
    if np.all(v == v[0]):  # every resample has the same mean; scipy would warn about a degenerate distribution
        return Aggregate(mean=mean, std=std, ci_low=mean, ci_high=mean, n=n)
    low, high, _ = _percentile_bootstrap(v, np.mean, resamples=resamples, seed=seed)
    return Aggregate(mean=mean, std=std, ci_low=_finite(low), ci_high=_finite(high), n=n)


def aggregate_set_statistic(statistic: Callable[[np.ndarray], float], n: int, *, value: float,
                            resamples: int = 200, seed: int = 0, bias_corrected: bool = False) -> Aggregate:
    """Aggregate for a statistic of the whole set (FID, KID): `statistic(idx)` scores the images at `idx`.

    Images are resampled jointly by index (edited image i and its reference i stay paired). Resampling with
    replacement duplicates images, and a replicate with duplicates has fewer distinct images, so FID's replicates
    sit above the value (by ~5 at N = 100: the plain percentile interval could exclude the value itself). With
    `bias_corrected` the interval is shifted by the replicates' mean bias b = mean(replicates) − value (Efron &
    Tibshirani 1993, ch. 10), i.e. [q_2.5 − b, q_97.5 − b]; FID uses it. It stays off for bounded statistics (an
    R² shifted this way can pass 1) and for those whose replicates are unbiased (KID scores distinct images). The
    CI shows the sampling noise at this N; it is not an interval for the population (N → ∞) value.
    """
    value = _finite(value)
    if n < 2 or resamples < 2:
        return Aggregate(mean=value, std=0.0, ci_low=None, ci_high=None, n=n)
    low, high, dist = _percentile_bootstrap(np.arange(n), lambda idx: statistic(np.asarray(idx, dtype=np.int64)),
                                            resamples=resamples, seed=seed)
    bias = float(np.mean(dist)) - value if bias_corrected else 0.0
    return Aggregate(mean=value, std=_finite(np.std(dist, ddof=1)), ci_low=_finite(low - bias),
                     ci_high=_finite(high - bias), n=n)
