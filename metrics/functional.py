"""The math of every metric, as pure functions on tensors, so it can be checked on its own.

The registered metrics call these functions; they never re-implement them. Inputs are embeddings, label maps or
Gaussian statistics, never images: turning images into those is a back-end's job (`metrics.backends`).
"""

from __future__ import annotations

import numpy as np
import torch

from benchmark.core.errors import DataError

#: Below this L2 norm an image direction ΔI counts as zero (the edit did not move the embedding).
ZERO_DIRECTION_EPS = 1e-8


def _as_rows(x: torch.Tensor, name: str, n: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{name}: expected a torch.Tensor of embeddings, got {type(x).__name__}")
    if not x.is_floating_point():
        raise DataError(f"{name}: expected floating-point embeddings, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2:
        raise DataError(f"{name}: expected embeddings of shape N×D or D, got shape {tuple(x.shape)}")
    if n is not None and x.shape[0] not in (1, n):
        raise DataError(f"{name}: expected 1 or {n} rows (one per image), got {x.shape[0]}")
    if not torch.isfinite(x).all():
        raise DataError(f"{name}: embeddings contain NaN or Inf")
    return x.double()


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def image_direction(img_src: torch.Tensor, img_edit: torch.Tensor) -> torch.Tensor:
    """ΔI = n(E_I(edit)) − n(E_I(src)) per row, with n the L2 normalisation. Shape N×D, float64."""
    src = _as_rows(img_src, "img_src")
    edit = _as_rows(img_edit, "img_edit", n=src.shape[0])
    if src.shape[-1] != edit.shape[-1]:
        raise DataError(f"img_src and img_edit have different widths ({src.shape[-1]} vs {edit.shape[-1]})")
    return _normalise(edit) - _normalise(src)


def directional_similarity(img_src: torch.Tensor, img_edit: torch.Tensor, txt_src: torch.Tensor,
                           txt_trg: torch.Tensor) -> torch.Tensor:
    """S_dir per image: cos(ΔI, ΔT) with ΔI = n(img_edit) − n(img_src) and ΔT = n(txt_trg) − n(txt_src).

    `img_*` are N×D image embeddings; `txt_*` are D or N×D text embeddings (one prompt pair for all images, or one
    per image). Every embedding is L2-normalised first. Where ΔI is zero (the edit left the embedding unchanged)
    the cosine is undefined; this returns 0 there, and the metric flags those images. A zero ΔT (source and target
    text embed identically) is an error, because no image can be scored against it. Returns float64, shape N.
    """
    delta_i = image_direction(img_src, img_edit)
    n = delta_i.shape[0]
    src_t = _as_rows(txt_src, "txt_src", n=n)
    trg_t = _as_rows(txt_trg, "txt_trg", n=n)
    if src_t.shape[-1] != delta_i.shape[-1] or trg_t.shape[-1] != delta_i.shape[-1]:
        raise DataError("text and image embeddings have different widths "
                        f"({src_t.shape[-1]}/{trg_t.shape[-1]} vs {delta_i.shape[-1]}); use one CLIP model for both")
    delta_t = (_normalise(trg_t) - _normalise(src_t)).expand_as(delta_i)
    t_norm = delta_t.norm(dim=-1)
    if (t_norm < ZERO_DIRECTION_EPS).any():
        raise DataError("source and target texts have the same embedding (ΔT = 0), so S_dir is undefined",
                        fix="use different source and target prompts")
    i_norm = delta_i.norm(dim=-1)
    cos = (delta_i * delta_t).sum(-1) / (i_norm.clamp_min(ZERO_DIRECTION_EPS) * t_norm)
    return torch.where(i_norm < ZERO_DIRECTION_EPS, torch.zeros_like(cos), cos)


def text_directions(txt_src: torch.Tensor, txt_trg: torch.Tensor) -> torch.Tensor:
    """Unit text directions n(n(txt_trg) − n(txt_src)), one row per prompt pair (K×D, float64)."""
    src = _as_rows(txt_src, "txt_src")
    trg = _as_rows(txt_trg, "txt_trg", n=src.shape[0])
    delta = _normalise(trg) - _normalise(src)
    if (delta.norm(dim=-1) < ZERO_DIRECTION_EPS).any():
        raise DataError("a source and target text have the same embedding (ΔT = 0): no direction to project on",
                        fix="use different source and target prompts")
    return _normalise(delta)


def direction_projection(images: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """cos(E_I(image), ΔT_k) for every image and direction: n(images) @ directionsᵀ, N×K float64 in [−1, 1].

    An edit's change of this value is the component of its image-embedding change (on the unit sphere) along the
    text direction: S_dir's numerator without its per-image normalisation, so it can be compared across images,
    Δh scales and timesteps as one number per attribute (the real world's factor measure for h-space properties).
    """
    img = _as_rows(images, "images")
    dirs = _as_rows(directions, "directions")
    if img.shape[-1] != dirs.shape[-1]:
        raise DataError(f"image embeddings ({img.shape[-1]}-d) and text directions ({dirs.shape[-1]}-d) differ in "
                        "width; use one CLIP model for both")
    return _normalise(img) @ _normalise(dirs).T


def _check_label_maps(a: torch.Tensor, b: torch.Tensor, num_classes: int | None = None) -> None:
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor):
            raise DataError(f"label map {name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise DataError(f"label map {name}: expected integer labels (N×H×W), got dtype {x.dtype}; "
                            "take the argmax over the class axis first")
        if x.ndim != 3:
            raise DataError(f"label map {name}: expected shape N×H×W, got {tuple(x.shape)}")
        if num_classes is not None and x.numel() and (x.min() < 0 or x.max() >= num_classes):
            raise DataError(f"label map {name}: labels must lie in [0, {num_classes}), "
                            f"got range [{int(x.min())}, {int(x.max())}]")
    if a.shape != b.shape:
        raise DataError(f"label maps have different shapes {tuple(a.shape)} and {tuple(b.shape)}; "
                        "parse both image sets at the same resolution")


def label_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels whose labels agree, per image: (a == b).sum((1, 2)) / (H·W).

    This is the authors' segmentation consistency (the leftover `sc_loss` in their repository). Returns float64, N.
    """
    _check_label_maps(a, b)
    return (a == b).double().mean(dim=(1, 2))


def label_miou(a: torch.Tensor, b: torch.Tensor, num_classes: int = 19) -> torch.Tensor:
    """Mean intersection-over-union per image, over the classes present in either map. Returns float64, N.

    A class absent from both maps is skipped (it would be 0/0); a class present in only one map scores 0.
    """
    _check_label_maps(a, b, num_classes)
    n = a.shape[0]
    offsets = torch.arange(n, device=a.device).view(n, 1) * num_classes
    a_flat = (a.reshape(n, -1).long() + offsets).reshape(-1)
    b_flat = (b.reshape(n, -1).long() + offsets).reshape(-1)
    size = n * num_classes
    count_a = torch.bincount(a_flat, minlength=size).view(n, num_classes)
    count_b = torch.bincount(b_flat, minlength=size).view(n, num_classes)
    same = a_flat[a_flat == b_flat]
    inter = torch.bincount(same, minlength=size).view(n, num_classes)
    union = count_a + count_b - inter
    present = union > 0
    iou = torch.where(present, inter.double() / union.clamp_min(1).double(), torch.zeros_like(inter, dtype=torch.float64))
    return iou.sum(1) / present.sum(1).double()


def identity_similarity(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of L2-normalised identity embeddings, per image pair. Returns float64, N."""
    a = _as_rows(emb_a, "emb_a")
    b = _as_rows(emb_b, "emb_b", n=a.shape[0])
    if a.shape != b.shape:
        raise DataError(f"identity embeddings have shapes {tuple(a.shape)} and {tuple(b.shape)}; "
                        "embed both sets with the same model, one row per image")
    return (_normalise(a) * _normalise(b)).sum(-1)


def _as_stats(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu.detach().cpu() if isinstance(mu, torch.Tensor) else mu, dtype=np.float64)
    sigma = np.asarray(sigma.detach().cpu() if isinstance(sigma, torch.Tensor) else sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise DataError(f"{name}: expected a mean of shape D and a covariance of shape D×D, "
                        f"got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{name}: statistics contain NaN or Inf")
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ‖mu1 − mu2‖² + tr(sigma1) + tr(sigma2) − 2·tr((sigma1·sigma2)^½).

    Computed by torch-fidelity's own `fid_statistics_to_metric` (eigenvalues of sigma1·sigma2 in float64), so the
    value is the library's FID, not a re-implementation. Accepts numpy arrays or tensors.
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    mu1, sigma1 = _as_stats(mu1, sigma1, "statistics 1")
    mu2, sigma2 = _as_stats(mu2, sigma2, "statistics 2")
    if mu1.shape != mu2.shape:
        raise DataError(f"the two statistics have different widths ({mu1.shape[0]} vs {mu2.shape[0]}); "
                        "extract both feature sets with the same extractor and layer")
    return float(fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2},
                                          verbose=False)[KEY_METRIC_FID])


def frechet_distance_from_features(feat1, feat2) -> float:
    """The Fréchet distance of two feature sets' sample Gaussians, without forming D×D matrices.

    With A_i the centred features (n_i × D) and sigma_i = A_iᵀA_i / (n_i − 1), the non-zero eigenvalues of
    sigma1·sigma2 are the squared singular values of A1·A2ᵀ / sqrt((n1 − 1)(n2 − 1)), so
    tr((sigma1·sigma2)^½) is that matrix's nuclear norm. Exact, and O(n²·D) instead of O(D³): it makes bootstrap
    resampling of FID affordable. It is also an independent second implementation of `frechet_distance`.
    """
    f1 = np.asarray(feat1, dtype=np.float64)
    f2 = np.asarray(feat2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise DataError(f"expected two feature matrices N×D of equal width, got {f1.shape} and {f2.shape}")
    n1, n2 = f1.shape[0], f2.shape[0]
    if min(n1, n2) < 2:
        raise DataError(f"a Fréchet distance needs at least 2 samples per set, got {n1} and {n2}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    a1, a2 = f1 - mu1, f2 - mu2
    tr1 = (a1 * a1).sum() / (n1 - 1)
    tr2 = (a2 * a2).sum() / (n2 - 1)
    cross = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return float(diff @ diff + tr1 + tr2 - 2 * cross)
