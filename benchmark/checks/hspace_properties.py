"""h-space properties as numbers: linearity, linear combination, homogeneity and consistency across timesteps,
each a score with a 95% bootstrap CI over images (`metrics.aggregate`).

The paper shows these properties only as pictures (asyrp-reference.md: "Linearity, homogeneity, robustness and
consistency across timesteps appear in the paper only as qualitative figures"). Here each is measured with a
*measure*: a function from pixels (float N×3×H×W in [-1, 1]) to N×K numbers. In the synthetic world it is the
oracle's factor regressor (the true mouth curvature, skin tone, ...); on CelebA-HQ a projection of CLIP image
features on a text direction serves the same purpose. Nothing here knows which world it runs in.

Two layers:
- statistics on arrays (`linearity_scores`, `homogeneity_score`, `combination_scores`, `consistency_scores`),
  which are plain numpy and hand-checkable;
- drivers that make the images with `models.generate` through an `EditContext` (the attribute's schedule, the
  inverted x_T and the boost noise, identical for every variant so only Δh differs between them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from metrics.aggregate import Aggregate, aggregate_per_image, aggregate_set_statistic

LINEARITY_SCALES = (-1.0, -0.5, 0.0, 0.5, 1.0)  # negative scales were never trained (paper Fig. 7)

Measure = Callable[[torch.Tensor], torch.Tensor]  # pixels [-1, 1], N×3×H×W -> N×K


# ---------------------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------------------

def r_squared(x: Sequence[float], y: Sequence[float]) -> float:
    """R² of the least-squares line through (x, y); 1 for an exactly linear y, and 1 for a constant y (a flat
    line fits it exactly) so that "no response" is judged by the slope, not by R²."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0.0:
        return 1.0
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(((y - (slope * x + intercept)) ** 2).sum())
    return 1.0 - residual / total


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    return float(np.polyfit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), 1)[0])


def is_monotone(values: Sequence[float], direction: int) -> bool:
    """Non-decreasing (direction +1) or non-increasing (−1) along the given order."""
    diffs = np.diff(np.asarray(values, dtype=np.float64))
    return bool(np.all(direction * diffs >= 0))


@dataclass(frozen=True)
class LinearityScore:
    """Response of one factor over the Δh scale. `curves` is N×S (responses minus the response at scale 0 when
    0 is among the scales); `direction` is the sign of the mean curve's slope, the sense monotone is judged in."""

    scales: tuple[float, ...]
    curves: np.ndarray
    direction: int
    mean_curve: list[Aggregate]  # per scale: mean over images with its CI
    monotone_fraction: Aggregate  # images whose own curve is monotone in `direction`
    mean_curve_monotone: bool
    r2_mean_curve: Aggregate  # R² of a line through the mean curve; CI by resampling images
    r2_per_image: Aggregate
    slope: Aggregate  # per-image slopes

    def summary(self) -> dict[str, Any]:
        return {"scales": list(self.scales), "direction": self.direction,
                "mean_curve": [a.to_dict() for a in self.mean_curve],
                "monotone_fraction": self.monotone_fraction.to_dict(),
                "mean_curve_monotone": self.mean_curve_monotone,
                "r2_mean_curve": self.r2_mean_curve.to_dict(), "r2_per_image": self.r2_per_image.to_dict(),
                "slope": self.slope.to_dict()}


def linearity_scores(scales: Sequence[float], responses: np.ndarray, *, seed: int = 0) -> LinearityScore:
    """Scores of an N×S array of one factor's value per image and Δh scale."""
    scales = tuple(float(s) for s in scales)
    if list(scales) != sorted(scales) or len(set(scales)) != len(scales):
        raise ValueError(f"scales must be strictly increasing, got {scales}")
    curves = np.asarray(responses, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] != len(scales):
        raise ValueError(f"responses must be N×{len(scales)}, got {curves.shape}")
    if 0.0 in scales:
        curves = curves - curves[:, [scales.index(0.0)]]
    mean = curves.mean(axis=0)
    direction = 1 if slope(scales, mean) >= 0 else -1
    monotone = [float(is_monotone(c, direction)) for c in curves]
    n = curves.shape[0]
    return LinearityScore(
        scales=scales, curves=curves, direction=direction,
        mean_curve=[aggregate_per_image(curves[:, j], seed=seed) for j in range(len(scales))],
        monotone_fraction=aggregate_per_image(monotone, seed=seed),
        mean_curve_monotone=is_monotone(mean, direction),
        r2_mean_curve=aggregate_set_statistic(lambda idx: r_squared(scales, curves[idx].mean(axis=0)), n,
                                              value=r_squared(scales, mean), seed=seed),
        r2_per_image=aggregate_per_image([r_squared(scales, c) for c in curves], seed=seed),
        slope=aggregate_per_image([slope(scales, c) for c in curves], seed=seed))


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


def mean_cosine_to_others(vectors: np.ndarray) -> np.ndarray:
    """Per image i, the mean cosine of its vector with every other image's: their mean is the mean pairwise
    cosine. A zero vector has cosine 0 with everything (an image the edit did not move has no direction)."""
    u = _unit_rows(vectors)
    n = len(u)
    if n < 2:
        raise ValueError("homogeneity needs at least two images")
    cos = u @ u.T
    return (cos.sum(axis=1) - np.diag(cos)) / (n - 1)


def homogeneity_score(vectors: np.ndarray, *, seed: int = 0) -> Aggregate:
    """Mean pairwise cosine of the edit's direction across images (N×D). The CI resamples the per-image means;
    they share pairs, so it is an approximation (a narrower interval than fully independent images would give)."""
    return aggregate_per_image(mean_cosine_to_others(vectors), seed=seed)


@dataclass(frozen=True)
class CombinationScore:
    """Two attributes A and B edited together with coefficients (a, b). Shifts are relative to (0, 0).

    - `own`: factor A's shift at (1, 0) and factor B's at (0, 1): each responds to its own coefficient;
    - `cross`: A's shift at (0, 1) and B's at (1, 0): leakage into the other factor;
    - `retention`: A's mean shift at (1, 1) over its mean shift at (1, 0) (and B's likewise): each factor still
      responds to its own coefficient when both are on (1 = unchanged, 0 = lost);
    - `additivity_error`: per image ‖δ(1,1) − δ(1,0) − δ(0,1)‖ / (‖δ(1,0)‖ + ‖δ(0,1)‖) over the two factors
      (0 = the joint edit is exactly the sum of the single ones).
    """

    factors: tuple[str, str]
    own: dict[str, Aggregate]
    cross: dict[str, Aggregate]
    retention: dict[str, Aggregate]
    additivity_error: Aggregate

    def summary(self) -> dict[str, Any]:
        return {"factors": list(self.factors), "additivity_error": self.additivity_error.to_dict(),
                **{f"{kind}_{f}": agg.to_dict() for kind, d in (("own", self.own), ("cross", self.cross),
                                                               ("retention", self.retention))
                   for f, agg in d.items()}}


def _ratio_of_means(num: np.ndarray, den: np.ndarray, *, seed: int) -> Aggregate:
    def stat(idx):
        d = den[idx].mean()
        return float(num[idx].mean() / d) if d != 0 else 0.0

    return aggregate_set_statistic(stat, len(num), value=stat(np.arange(len(num))), seed=seed)


def combination_scores(grid: Mapping[tuple[float, float], np.ndarray], factors: tuple[str, str], *,
                       seed: int = 0) -> CombinationScore:
    """`grid[(a, b)]`: N×2 values of (factor A, factor B) for the edit with coefficients (a, b); needs the four
    corners (0, 0), (1, 0), (0, 1), (1, 1)."""
    missing = [c for c in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)) if c not in grid]
    if missing:
        raise ValueError(f"the combination grid lacks {missing}")
    base = np.asarray(grid[0.0, 0.0], dtype=np.float64)
    d10, d01, d11 = (np.asarray(grid[c], dtype=np.float64) - base for c in ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0)))
    a, b = factors
    denom = np.linalg.norm(d10, axis=1) + np.linalg.norm(d01, axis=1)
    error = np.linalg.norm(d11 - d10 - d01, axis=1) / np.where(denom == 0, 1.0, denom)
    return CombinationScore(
        factors=factors,
        own={a: aggregate_per_image(d10[:, 0], seed=seed), b: aggregate_per_image(d01[:, 1], seed=seed)},
        cross={a: aggregate_per_image(d01[:, 0], seed=seed), b: aggregate_per_image(d10[:, 1], seed=seed)},
        retention={a: _ratio_of_means(d11[:, 0], d10[:, 0], seed=seed),
                   b: _ratio_of_means(d11[:, 1], d01[:, 1], seed=seed)},
        additivity_error=aggregate_per_image(error, seed=seed))


@dataclass(frozen=True)
class ConsistencyScore:
    """One replacement of the per-timestep Δh_t (e.g. its mean over t) against the Δh_t edit itself.

    - `relative_distance`: per image ‖x_variant − x_Δh_t‖ / ‖x_Δh_t − x_0‖ in pixels, x_0 being the same
      generation without Δh (0 = the same image; 1 = as far from the Δh_t edit as no edit at all);
    - `shift_ratio`: the variant's mean target-factor shift over the Δh_t edit's (1 = the same effect).
    """

    variant: str
    relative_distance: Aggregate
    shift_ratio: Aggregate

    def summary(self) -> dict[str, Any]:
        return {"variant": self.variant, "relative_distance": self.relative_distance.to_dict(),
                "shift_ratio": self.shift_ratio.to_dict()}


def consistency_scores(variant: str, *, plain: torch.Tensor, edit: torch.Tensor, other: torch.Tensor,
                       shift_edit: np.ndarray, shift_other: np.ndarray, seed: int = 0) -> ConsistencyScore:
    """`plain`, `edit`, `other`: N×3×H×W pixels without Δh, with Δh_t, with the variant; shifts: N target-factor
    shifts of the edit and of the variant (relative to `plain`)."""
    flat = lambda x: x.detach().double().reshape(len(x), -1).cpu().numpy()  # noqa: E731
    p, e, o = flat(plain), flat(edit), flat(other)
    size = np.linalg.norm(e - p, axis=1)
    dist = np.linalg.norm(o - e, axis=1) / np.where(size == 0, 1.0, size)
    return ConsistencyScore(variant=variant, relative_distance=aggregate_per_image(dist, seed=seed),
                            shift_ratio=_ratio_of_means(np.asarray(shift_other, dtype=np.float64),
                                                        np.asarray(shift_edit, dtype=np.float64), seed=seed))


# ---------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class EditContext:
    """What every variant of an edit shares: the frozen model, x_T, the attribute's schedule (Δh scale 1), and a
    factory of fresh noise generators (the same η = 1 noise for every variant, so only Δh differs).

    Edits made only of f_t (no fixed Δh) are remembered, with their Δh: the linearity strip's scale 1, the
    consistency's Δh_t edit and the combination's (1, 0) corner are one generation, not three.
    """

    model: Any  # models.DiffusionModel
    x_T: torch.Tensor
    schedule: Any  # models.EditSchedule
    noise: Callable[[], Any] | None = None
    progress: bool = False
    _memo: dict = field(default_factory=dict, repr=False)

    def generate(self, edits: Sequence[tuple[Any, float]] = (), *, scale: float = 1.0,
                 delta_h: Any = None, return_delta_h: bool = False):
        import models

        edits = [(f, float(c)) for f, c in edits if float(c) != 0.0]
        key = (tuple((id(f), c) for f, c in edits), float(scale) if edits else 0.0)
        remembered = self._memo.get(key) if delta_h is None else None
        if remembered is not None and all(a is f for a, (f, _) in zip(remembered[0], edits, strict=True)):
            return remembered[1]
        schedule = self.schedule.model_copy(update={"delta_scale": float(scale)})
        out = models.generate(self.model, self.x_T, edits, schedule,
                              self.noise() if self.noise is not None else None, delta_h=delta_h,
                              return_delta_h=return_delta_h or (delta_h is None and bool(edits)),
                              progress=self.progress)
        if delta_h is None:
            # An id is an address that CPython gives to the next object once this one is freed: the f_t are kept
            # with their generation, so that no other f_t can take their ids while the memo holds it.
            self._memo[key] = (tuple(f for f, _ in edits), out)
        return out

    def plain(self) -> torch.Tensor:
        """The same generation without any Δh (η = 1 noise included below t_boost)."""
        return self.generate().images

    def subset(self, n: int) -> EditContext:
        """The first `n` images (figures that need many variants use a few images only)."""
        noise = self.noise
        return EditContext(self.model, self.x_T[:n], self.schedule,
                           noise=None if noise is None else (lambda: _first(noise(), n)), progress=self.progress)


def _first(generators: Any, n: int) -> Any:
    return generators if isinstance(generators, torch.Generator) else list(generators)[:n]


def measure_np(measure: Measure, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return measure(images).detach().double().cpu().numpy()


@dataclass(frozen=True)
class LinearityRun:
    score: LinearityScore
    images: dict[float, torch.Tensor]  # scale -> pixels


def run_linearity(ctx: EditContext, ft, measure: Measure, factor: int, *,
                  scales: Sequence[float] = LINEARITY_SCALES, seed: int = 0) -> LinearityRun:
    """Edit at each Δh scale and score the response of factor column `factor`."""
    images = {float(s): ctx.generate([(ft, 1.0)], scale=s).images for s in scales}
    values = np.stack([measure_np(measure, images[float(s)])[:, factor] for s in scales], axis=1)
    return LinearityRun(linearity_scores(scales, values, seed=seed), images)


@dataclass(frozen=True)
class CombinationRun:
    score: CombinationScore
    images: dict[tuple[float, float], torch.Tensor]


def run_combination(ctx: EditContext, ft_a, ft_b, measure: Measure, factors: tuple[int, int],
                    names: tuple[str, str], *, coefficients: Sequence[float] = (0.0, 1.0),
                    seed: int = 0) -> CombinationRun:
    """Δh = a·f_A + b·f_B over a grid of coefficients (must include 0 and 1); scores the two factors."""
    coefficients = sorted({float(c) for c in coefficients} | {0.0, 1.0})
    images: dict[tuple[float, float], torch.Tensor] = {}
    for a in coefficients:
        for b in coefficients:
            images[a, b] = ctx.generate([(ft_a, a), (ft_b, b)]).images
    grid = {k: measure_np(measure, v)[:, list(factors)] for k, v in images.items()}
    return CombinationRun(combination_scores(grid, names, seed=seed), images)


def time_mean(delta_h: Mapping[int, torch.Tensor]) -> torch.Tensor:
    """Each image's Δh averaged over the edit's timesteps (one fixed N×C×H×W direction for every t)."""
    return torch.stack([delta_h[t] for t in sorted(delta_h)]).mean(dim=0)


def image_mean(delta_h: Mapping[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """The paper's Δh_t^mean: at each t, Δh averaged over the images (the same direction for every image)."""
    return {t: d.mean(dim=0, keepdim=True) for t, d in delta_h.items()}


@dataclass(frozen=True)
class ConsistencyRun:
    scores: dict[str, ConsistencyScore]
    images: dict[str, torch.Tensor]  # "plain", "delta_h_t", and one per variant
    delta_h: dict[int, torch.Tensor]


def run_consistency(ctx: EditContext, ft, measure: Measure, factor: int, *, global_ft=None,
                    seed: int = 0) -> ConsistencyRun:
    """The Δh_t edit against (a) each image's Δh averaged over t, (b) Δh_t averaged over images (the paper's
    Δh_t^mean) and, when given, (c) a trained global Δh (`models.build_ft("global")`, paper §5.3)."""
    edit = ctx.generate([(ft, 1.0)], return_delta_h=True)
    images = {"plain": ctx.plain(), "delta_h_t": edit.images,
              "time_mean": ctx.generate(delta_h=time_mean(edit.delta_h)).images,
              "image_mean": ctx.generate(delta_h=image_mean(edit.delta_h)).images}
    if global_ft is not None:
        images["global"] = ctx.generate([(global_ft, 1.0)]).images
    values = {k: measure_np(measure, v)[:, factor] for k, v in images.items()}
    shift = {k: v - values["plain"] for k, v in values.items()}
    scores = {k: consistency_scores(k, plain=images["plain"], edit=images["delta_h_t"], other=images[k],
                                    shift_edit=shift["delta_h_t"], shift_other=shift[k], seed=seed)
              for k in images if k not in ("plain", "delta_h_t")}
    return ConsistencyRun(scores, images, edit.delta_h)


def delta_h_directions(delta_h: Mapping[int, torch.Tensor]) -> np.ndarray:
    """Each image's Δh over all edit timesteps, flattened (N×D): the h-space side of homogeneity."""
    return torch.cat([delta_h[t].reshape(len(delta_h[t]), -1) for t in sorted(delta_h)], dim=1).double().numpy()
