"""FID and KID through torch-fidelity with a random Inception (generated at test time, never committed)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from metrics_helpers import random_images

from metrics import EditSet, get_metric
from metrics.backends import load_backend

N = 32


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    """Random Inception weights (91 MB) and feature caches go to a per-session temp folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASYRP_CACHE", str(tmp_path_factory.mktemp("asyrp-cache")))
        yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One feature cache for the module, so each image set is featurised once."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def features(sets, cache):
    """The features the metric itself extracts (and caches), so the references below score exactly those."""
    f_edit, f_ref, _ = fid_metric(cache).both_features(sets)
    return {"edited": f_edit, "original": f_ref}


@pytest.fixture(scope="module")
def sets():
    edited = random_images(N, 48, seed=10)
    original = random_images(N, 48, seed=11, high=160)  # darker: a real distribution shift
    return EditSet(edited=edited, original=original, reconstruction=random_images(N, 48, seed=12))


def fid_metric(tmp_path, **kw):
    return get_metric("fid@1", backend="tiny-inception-random", device="cpu", feature_layer="64",
                      cache_dir=tmp_path, **kw)


def _scipy_fid(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_equals_an_independent_scipy_frechet_distance_of_the_same_features(sets, features, cache):
    result = fid_metric(cache, bootstrap_resamples=50).compute(sets)
    f_edit, f_ref = features["edited"], features["original"]
    assert f_edit.shape == (N, 64)
    reference = _scipy_fid(f_edit, f_ref)
    assert reference > 1.0  # the random extractor tells the two distributions apart
    assert result.primary.mean == pytest.approx(reference, rel=1e-4)
    assert result.primary.ci_low < result.primary.mean < result.primary.ci_high
    assert result.per_image == {} and result.primary.n == N


def test_fid_of_a_set_against_itself_is_zero(sets, cache):
    same = EditSet(edited=sets.original, original=sets.original)
    value = fid_metric(cache, bootstrap_resamples=0).compute(same).primary.mean
    assert abs(value) < 1e-6


def test_fid_does_not_depend_on_image_order(sets, cache, tmp_path):
    base = fid_metric(cache, bootstrap_resamples=0).compute(sets).primary.mean
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    shuffled = EditSet(edited=sets.edited[perm], original=sets.original.flip(0))
    assert fid_metric(tmp_path, bootstrap_resamples=0).compute(shuffled).primary.mean == pytest.approx(base, rel=1e-6)


def test_features_are_cached_by_content_and_spec(tmp_path):
    sets = EditSet(edited=random_images(4, 32, seed=30), original=random_images(4, 32, seed=31))
    metric = fid_metric(tmp_path, bootstrap_resamples=0)
    first = metric.compute(sets)
    second = metric.compute(sets)
    assert first.provenance["feature_cache_hits"] == {"edited": False, "reference": False}
    assert second.provenance["feature_cache_hits"] == {"edited": True, "reference": True}
    assert second.primary.mean == first.primary.mean
    assert len(list((tmp_path / "metrics" / "features").glob("*.safetensors"))) == 2
    changed = sets.edited.clone()
    changed[0, 0, 0, 0] ^= 1  # one bit of one pixel
    third = metric.compute(EditSet(edited=changed, original=sets.original))
    assert third.provenance["feature_cache_hits"] == {"edited": False, "reference": True}
    other_layer = get_metric("fid@1", backend="tiny-inception-random", device="cpu", feature_layer="192",
                             cache_dir=tmp_path, bootstrap_resamples=0).compute(sets)
    assert other_layer.provenance["feature_cache_hits"] == {"edited": False, "reference": False}


def test_fid_against_the_reconstruction(sets, cache):
    to_orig = fid_metric(cache, bootstrap_resamples=0).compute(sets).primary.mean
    to_recon = fid_metric(cache, bootstrap_resamples=0, reference="reconstruction").compute(sets).primary.mean
    assert to_recon < to_orig  # edited and reconstruction share the same pixel distribution here


def _unbiased_poly_mmd2(x, y, degree=3, coef0=1.0):
    """Unbiased MMD² with k(a, b) = (a·b / D + coef0)^degree, written out independently of torch-fidelity."""
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + coef0) ** degree, ((y @ y.T) / d + coef0) ** degree, ((x @ y.T) / d + coef0) ** degree
    m, n = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.sum() / (m * n))


def test_kid_fits_its_subset_to_n_and_matches_a_hand_written_mmd(sets, features, cache):
    result = get_metric("kid@1", backend="tiny-inception-random", device="cpu", feature_layer="64",
                        cache_dir=cache, bootstrap_resamples=50).compute(sets)
    assert result.spec["kid_subset_size_effective"] == N and result.spec["kid_subsets_effective"] == 1
    expected = _unbiased_poly_mmd2(features["edited"], features["original"])
    assert result.primary.mean == pytest.approx(expected, rel=1e-6)
    assert result.primary.ci_low is not None and result.direction == "lower"


def test_the_standard_2048_layer_runs_the_whole_network():
    extractor = load_backend("fid-features", "tiny-inception-random", device="cpu", layer="2048",
                             internal_dtype="float32")
    feats = extractor.features(random_images(3, 32, seed=20))
    assert feats.shape == (3, 2048) and feats.dtype == torch.float64
    assert extractor.identity()["layer"] == "2048"
    assert feats.std(0).mean() > 0  # re-initialised convolutions: features differ between images


KID_SPEC = {"kid_degree": 3, "kid_coef0": 1.0}


def _brute_force_kid(x, y, idx):
    """An independent loop: the unbiased MMD² over pairs of positions holding distinct images."""
    kernel = lambda a, b: (float(np.dot(a, b)) / len(a) + 1.0) ** 3  # noqa: E731
    within_x, within_y, count, cross = 0.0, 0.0, 0, 0.0
    for a in range(len(idx)):
        for b in range(len(idx)):
            cross += kernel(x[idx[a]], y[idx[b]])
            if idx[a] != idx[b]:
                within_x += kernel(x[idx[a]], x[idx[b]])
                within_y += kernel(y[idx[a]], y[idx[b]])
                count += 1
    return within_x / count + within_y / count - 2 * cross / len(idx) ** 2


def test_kid_replicate_without_repeats_is_torch_fidelity_mmd():
    from torch_fidelity.metric_kid import kernel_mmd

    from metrics.fid import kid_replicate

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 16)), rng.normal(0.3, 1.0, size=(9, 16))
    expected = kernel_mmd(x, y, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                          kid_kernel_poly_coef0=1.0)
    assert kid_replicate(x, y, KID_SPEC) == pytest.approx(float(expected), rel=1e-9)


def test_kid_replicate_leaves_out_pairs_of_a_repeated_image():
    from metrics.fid import kid_replicate

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 8)), rng.normal(0.5, 1.0, size=(6, 8))
    idx = np.array([0, 0, 2, 3, 3, 3])
    assert kid_replicate(x, y, KID_SPEC, idx) == pytest.approx(_brute_force_kid(x, y, idx), rel=1e-9)


def test_kid_bootstrap_interval_brackets_its_value():
    """Repeats used to bias every replicate upwards, so the CI of 8 images could lie wholly above the value."""
    from metrics.fid import kid_from_features

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(8, 32)), rng.normal(0.2, 1.0, size=(8, 32))
    spec = {**KID_SPEC, "kid_subset_size": "auto", "kid_subsets": 100, "kid_seed": 0, "bootstrap_resamples": 200,
            "bootstrap_seed": 0}
    agg = kid_from_features(x.astype(np.float32), y.astype(np.float32), spec)
    assert agg.ci_low <= agg.mean <= agg.ci_high
