"""Known-answer checks of a suite (the synthetic world's equivalent of paper values): the `CHECKS` registry.

A suite manifest's `known_answers:` section lists checks, each with a band set from what the method should achieve
and a rationale. Each check is a function `(Context, check) -> Outcome` registered under its manifest name: it
reads the run's own inversions, f_t, edits and metrics, or the h-space property experiments of the context
(`benchmark.checks.context`), and gives one value. The gate (`benchmark.checks.gate.KnownAnswerGates`) files the
values, references and gates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.checks import hspace_properties as hp
from benchmark.checks.context import Context
from benchmark.core.registry import Registry
from benchmark.run.cache import StageOutput
from metrics.aggregate import Aggregate, aggregate_per_image

DDIM = "ddim"  # the "attribute" key of checks on plain DDIM (reconstruction, Δh = 0)


@dataclass(frozen=True)
class Outcome:
    """One check's value: an aggregate over images (or a single number with n = 1), and an optional note."""

    key: str
    attribute: str
    value: Aggregate
    note: str = ""


def single(value: float) -> Aggregate:
    return Aggregate(mean=float(value), std=0.0, ci_low=None, ci_high=None, n=1)


def from_dict(d: Mapping[str, Any]) -> Aggregate:
    return Aggregate(**{k: d[k] for k in ("mean", "std", "ci_low", "ci_high", "n")})


CHECKS: Registry[Callable[[Context, Any], Outcome]] = Registry("known-answer check")


@CHECKS.register("reconstruction_psnr")
def reconstruction_psnr(ctx: Context, check) -> Outcome:
    """PSNR (dB) of the DDIM reconstruction against the input, per test image."""
    from skimage.metrics import peak_signal_noise_ratio

    orig, rec = ctx.originals().numpy(), ctx.reconstructions().numpy()
    values = [peak_signal_noise_ratio(o, r, data_range=255) for o, r in zip(orig, rec, strict=True)]
    return Outcome("recon_psnr_db", DDIM, aggregate_per_image(values, seed=ctx.seed()))


@CHECKS.register("zero_delta_exact")
def zero_delta_exact(ctx: Context, check) -> Outcome:
    """Max |x| difference between Asyrp's process with the trained f_t at Δh scale 0 and plain DDIM
    (`models.plain_reverse`, a separate code path), on the first two images, without boost noise. With option
    `attribute_ft` (e.g. an arm at another h-space layer) the value is filed under that attribute, and the plain
    path runs on the suite's own model, so a layer split that changed ε would show."""
    import models

    named = check.options.get("attribute_ft")
    attribute = named or ctx.plan.attributes[0].name

    def compute() -> StageOutput:
        ec = ctx.edit_context(attribute).subset(min(2, ctx.n()))
        schedule = ec.schedule.model_copy(update={"t_boost": 0, "delta_scale": 0.0})
        edited = models.generate(ec.model, ec.x_T, [(ctx.ft(attribute), 1.0)], schedule).latents
        plain, _ = models.plain_reverse(ctx.engine.model if named else ec.model, ec.x_T, schedule.n_steps,
                                        schedule.t0)
        return StageOutput(data={"max_abs": float((edited - plain).abs().max())})

    entry = ctx.unit("zero_delta", [attribute], compute, {})
    return Outcome("zero_delta_max_abs", named or DDIM, single(entry.output.data["max_abs"]))


@CHECKS.register("target_shift")
def target_shift(ctx: Context, check) -> Outcome:
    """The target factor's change (edit − reconstruction), signed so that the intended direction is positive."""
    column, sign = ctx.factor(check.attribute)
    shift = sign * ctx.shifts(check.attribute)[:, column]
    return Outcome("target_shift", check.attribute, aggregate_per_image(shift, seed=ctx.seed()))


@CHECKS.register("non_target_shift")
def non_target_shift(ctx: Context, check) -> Outcome:
    """The largest mean |change| of any other factor, as a fraction of that factor's range."""
    column, _ = ctx.factor(check.attribute)
    ignore = {column, *(ctx.column(f) for f in check.options.get("ignore", []))}
    rel = np.abs(ctx.shifts(check.attribute)) / ctx.ranges()
    others = [j for j in range(rel.shape[1]) if j not in ignore]
    worst = max(others, key=lambda j: rel[:, j].mean())
    agg = aggregate_per_image(rel[:, worst], seed=ctx.seed())
    return Outcome("non_target_shift", check.attribute, agg, note=f"largest: {ctx.measure.names[worst]}")


@CHECKS.register("sdir_ci_low")
def sdir_ci_low(ctx: Context, check) -> Outcome:
    """The lower end of the 95% CI of the run's S_dir (raw cosine): above 0 means the CI excludes 0."""
    mv = ctx.state.metrics[check.attribute][check.options.get("metric", "sdir")]
    return Outcome("sdir_ci_low", check.attribute, Aggregate(mean=mv.ci_low, std=0.0, ci_low=mv.ci_low,
                                                             ci_high=mv.ci_high, n=mv.n))


@CHECKS.register("linearity_monotone")
def linearity_monotone(ctx: Context, check) -> Outcome:
    """Fraction of images whose target-factor response is monotone over the Δh scales, in the sense of the
    attribute's sign (the mean curve's own direction is in the figures)."""
    data = ctx.linearity(check.attribute).output.data
    _, sign = ctx.factor(check.attribute)
    curves = np.asarray(data["curves"])
    monotone = [float(hp.is_monotone(c, sign)) for c in curves]
    return Outcome("linearity_monotone", check.attribute, aggregate_per_image(monotone, seed=ctx.seed()))


@CHECKS.register("linearity_mean_monotone")
def linearity_mean_monotone(ctx: Context, check) -> Outcome:
    """1 when the mean response curve is monotone in the attribute's sign, else 0."""
    curves = np.asarray(ctx.linearity(check.attribute).output.data["curves"])
    _, sign = ctx.factor(check.attribute)
    return Outcome("linearity_mean_monotone", check.attribute, single(float(hp.is_monotone(curves.mean(0), sign))))


@CHECKS.register("linearity_r2")
def linearity_r2(ctx: Context, check) -> Outcome:
    """R² of a line through the mean response curve over the Δh scales (CI: resampled images)."""
    data = ctx.linearity(check.attribute).output.data
    return Outcome("linearity_r2", check.attribute, from_dict(data["score"]["r2_mean_curve"]))


@CHECKS.register("homogeneity")
def homogeneity(ctx: Context, check) -> Outcome:
    """Mean pairwise cosine, across images, of the edit's direction in option `space`: factor (the oracle
    shift, each factor over its range), pixel, or delta_h (the f_t's Δh over the edit's timesteps)."""
    space = check.options.get("space", "factor")
    data = ctx.consistency(check.attribute).output.data
    return Outcome(f"homogeneity_{space}", check.attribute, from_dict(data["homogeneity"][space]))


@CHECKS.register("timestep_consistency")
def timestep_consistency(ctx: Context, check) -> Outcome:
    """A replacement of Δh_t (`variant`: time_mean, image_mean or global) against the Δh_t edit; `score`:
    relative_distance (pixels) or shift_ratio (the target factor)."""
    variant = check.options.get("variant", "time_mean")
    score = check.options.get("score", "relative_distance")
    data = ctx.consistency(check.attribute).output.data
    return Outcome(f"consistency_{variant}_{score}", check.attribute, from_dict(data["scores"][variant][score]))


@CHECKS.register("combination_retention")
def combination_retention(ctx: Context, check) -> Outcome:
    """The smaller of the two factors' retention in the joint edit (1 = each keeps its single-edit shift)."""
    data = ctx.combination().output.data["score"]
    a, b = (ctx.spec.targets[x].factor for x in ctx.spec.combination)
    worst = min((data[f"retention_{a}"], data[f"retention_{b}"]), key=lambda d: d["mean"])
    return Outcome("combination_retention", "+".join(ctx.spec.combination), from_dict(worst))


@CHECKS.register("combination_additivity")
def combination_additivity(ctx: Context, check) -> Outcome:
    """‖δ(1,1) − δ(1,0) − δ(0,1)‖ / (‖δ(1,0)‖ + ‖δ(0,1)‖) over the two target factors (0 = additive)."""
    data = ctx.combination().output.data["score"]
    return Outcome("combination_additivity_error", "+".join(ctx.spec.combination),
                   from_dict(data["additivity_error"]))
