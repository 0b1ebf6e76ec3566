"""The metric math on its own, against hand computations and independent implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from benchmark.core.errors import DataError
from benchmark.core.hashing import json_digest
from metrics import (
    aggregate_per_image,
    directional_similarity,
    frechet_distance,
    frechet_distance_from_features,
    identity_similarity,
    label_agreement,
    label_miou,
)
from metrics.templates import IMAGENET_TEMPLATES_79, expand


def test_directional_similarity_matches_hand_computation():
    # src image along x, edit along y: ΔI = (-1, 1). Texts: src along x, trg at 45°: ΔT = (1/√2 − 1, 1/√2).
    img_src = torch.tensor([[2.0, 0.0]])
    img_edit = torch.tensor([[0.0, 5.0]])  # norms differ on purpose: inputs are normalised first
    txt_src = torch.tensor([3.0, 0.0])
    txt_trg = torch.tensor([1.0, 1.0])
    r = 1 / math.sqrt(2)
    dt = (r - 1, r)
    expected = (-1 * dt[0] + 1 * dt[1]) / (math.sqrt(2) * math.hypot(*dt))
    got = directional_similarity(img_src, img_edit, txt_src, txt_trg)
    assert got.shape == (1,) and got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_directional_similarity_zero_image_direction_is_zero_not_nan():
    img = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.1, 0.2]])
    edit = torch.tensor([[2.0, 4.0, 6.0], [0.1, 0.5, 0.2]])  # row 0: same direction -> ΔI = 0
    out = directional_similarity(img, edit, torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0]))
    assert torch.isfinite(out).all()
    assert out[0].item() == 0.0 and out[1].item() != 0.0


def test_directional_similarity_refuses_equal_texts_and_bad_shapes():
    img = torch.randn(3, 4)
    with pytest.raises(DataError, match="same embedding"):
        directional_similarity(img, img + 1, torch.ones(4), 2 * torch.ones(4))
    with pytest.raises(DataError, match="widths"):
        directional_similarity(img, img, torch.ones(5), torch.zeros(5))
    with pytest.raises(DataError, match="floating-point"):
        directional_similarity(img.long(), img, torch.ones(4), torch.zeros(4))


def test_label_agreement_and_miou_hand_example():
    # a: columns 0-1 class 0, 2-3 class 1; b: columns 0-2 class 0, 3 class 1 (4 rows).
    a = torch.tensor([[0, 0, 1, 1]] * 4).unsqueeze(0)
    b = torch.tensor([[0, 0, 0, 1]] * 4).unsqueeze(0)
    assert label_agreement(a, b).item() == pytest.approx(3 / 4)
    # class 0: inter 8, union 12; class 1: inter 4, union 8 -> (2/3 + 1/2) / 2
    assert label_miou(a, b, num_classes=19).item() == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_label_miou_skips_classes_absent_from_both_maps_and_scores_one_sided_classes_zero():
    a = torch.tensor([[[0, 0], [2, 2]]])
    b = torch.tensor([[[0, 0], [5, 5]]])
    # present: 0 (IoU 1), 2 (only in a: 0), 5 (only in b: 0) -> 1/3
    assert label_miou(a, b, num_classes=19).item() == pytest.approx(1 / 3)


def test_label_functions_reject_bad_maps():
    a = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(DataError, match="integer labels"):
        label_agreement(a.float(), a)
    with pytest.raises(DataError, match="N×H×W"):
        label_agreement(a[0], a[0])
    with pytest.raises(DataError, match="different shapes"):
        label_agreement(a, torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(DataError, match=r"\[0, 19\)"):
        label_miou(a, a + 19)


def test_identity_similarity_is_cosine():
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    b = torch.tensor([[6.0, 8.0], [0.0, 2.0]])
    assert identity_similarity(a, b).tolist() == pytest.approx([1.0, 0.0])
    with pytest.raises(DataError):
        identity_similarity(a, torch.ones(3, 2))


def _scipy_frechet(mu1, s1, mu2, s2):
    """pytorch-fid's formula with scipy's sqrtm: an implementation independent of torch-fidelity's eigvals."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def test_frechet_distance_matches_closed_form_for_commuting_covariances():
    # Diagonal covariances: FID = |mu1-mu2|² + Σ (sqrt(a_i) - sqrt(b_i))².
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1 + 4 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_scipy_and_the_feature_form():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(300, 16))
    f2 = rng.normal(size=(250, 16)) @ rng.normal(size=(16, 16)) * 0.3 + 0.5
    stats = [(f.mean(0), np.cov(f, rowvar=False)) for f in (f1, f2)]
    ref = _scipy_frechet(*stats[0], *stats[1])
    assert frechet_distance(*stats[0], *stats[1]) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance_from_features(f1, f2) == pytest.approx(ref, rel=1e-8)
    # rank-deficient covariances (N < D), as with 100 images and 2048 features
    g1, g2 = rng.normal(size=(10, 40)), rng.normal(size=(12, 40)) + 0.1
    s1, s2 = np.cov(g1, rowvar=False), np.cov(g2, rowvar=False)
    assert frechet_distance_from_features(g1, g2) == pytest.approx(
        frechet_distance(g1.mean(0), s1, g2.mean(0), s2), rel=1e-6)


def test_frechet_distance_rejects_mismatched_statistics():
    with pytest.raises(DataError, match="widths"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(DataError, match="D×D"):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
    with pytest.raises(DataError, match="at least 2"):
        frechet_distance_from_features(np.zeros((1, 3)), np.zeros((5, 3)))


def test_templates_are_the_79_of_stylegan_nada_and_diffusionclip():
    assert len(IMAGENET_TEMPLATES_79) == 79
    assert "a photo of many {}." not in IMAGENET_TEMPLATES_79
    # digest of StyleGAN-NADA's `imagenet_templates` list (ZSSGAN/utils/text_templates.py), in its order
    assert json_digest(list(IMAGENET_TEMPLATES_79)) == "704872c6516d1166e1d3ad9204b5d46bd48e43268132297771743558f994d2f4"
    assert expand("face")[0] == "a bad photo of a face."


def test_aggregate_mean_std_and_ci():
    values = np.random.default_rng(1).normal(0.3, 0.1, size=100)
    agg = aggregate_per_image(values, resamples=500, seed=0)
    assert agg.n == 100
    assert agg.mean == pytest.approx(values.mean()) and agg.std == pytest.approx(values.std(ddof=1))
    assert agg.ci_low < agg.mean < agg.ci_high
    # the CI of a mean is about ±1.96 standard errors
    assert agg.ci_high - agg.ci_low == pytest.approx(2 * 1.96 * agg.std / 10, rel=0.2)
    assert aggregate_per_image(values, resamples=500, seed=0) == agg  # fixed seed, same CI
    const = aggregate_per_image([0.5] * 5)
    assert (const.ci_low, const.ci_high) == (0.5, 0.5)
    single = aggregate_per_image([0.5])
    assert single.ci_low is None and single.n == 1


def test_set_statistic_ci_is_the_bias_corrected_percentile_interval():
    from metrics.aggregate import aggregate_set_statistic

    n, resamples = 60, 400
    x = np.random.default_rng(3).normal(size=n)
    replicates: list[float] = []

    def distinct_plus_mean(idx):  # like FID: replicates with duplicates sit away from the value
        replicates.append(float(len(np.unique(idx)) + x[idx].mean()))
        return replicates[-1]

    value = n + x.mean()
    agg = aggregate_set_statistic(distinct_plus_mean, n, value=value, resamples=resamples, seed=0,
                                  bias_corrected=True)
    dist = np.asarray(replicates[-resamples:])
    assert np.percentile(dist, 97.5) < value  # the plain percentile interval would exclude the value
    bias = dist.mean() - value
    assert bias == pytest.approx(-n * (1 - 1 / n) ** n, rel=0.1)  # E[distinct of n draws] = n (1 - (1 - 1/n)^n)
    assert agg.ci_low == pytest.approx(np.percentile(dist, 2.5) - bias)
    assert agg.ci_high == pytest.approx(np.percentile(dist, 97.5) - bias)
    assert agg.ci_low < agg.mean == value < agg.ci_high and agg.std == pytest.approx(dist.std(ddof=1))

    # without the correction: the plain percentile interval of the same replicates
    plain = aggregate_set_statistic(distinct_plus_mean, n, value=value, resamples=resamples, seed=0)
    dist = np.asarray(replicates[-resamples:])
    assert (plain.ci_low, plain.ci_high) == pytest.approx((np.percentile(dist, 2.5), np.percentile(dist, 97.5)))

    # a constant offset of every replicate is removed exactly
    shifted = aggregate_set_statistic(lambda idx: x[idx].mean() + 3.0, n, value=x.mean(), resamples=resamples, seed=0,
                                      bias_corrected=True)
    centred = aggregate_set_statistic(lambda idx: x[idx].mean(), n, value=x.mean(), resamples=resamples, seed=0,
                                      bias_corrected=True)
    assert (shifted.ci_low, shifted.ci_high) == pytest.approx((centred.ci_low, centred.ci_high))
