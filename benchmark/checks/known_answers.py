"""Known-answer checks of a suite (the synthetic world's equivalent of paper values; issue #5 item 6).

A suite manifest's `known_answers:` section lists checks, each with a band set from what the method should achieve
and a rationale. `KnownAnswerGates` is the suite's extra gate (`SuitePlan.extra_gates`): after the run's stages it
computes each check from the run's own inversions, f_t and edits, plus the h-space properties
(`benchmark.checks.hspace_properties`) on the first `n_images` test images, through the stage cache. Each check becomes

- a value in `results.metrics[<attribute>][<key>]` (mean, 95% bootstrap CI, N),
- a reference with column `known-answer` and its band (so the tables show band and verdict), and
- a gate when the band gates, so `run --gate` exits 1 when it fails. A failing check is a finding, reported with
  its value; bands are never moved to make a check pass.

The measure is the suite's factor oracle: `measure(pixels in [-1, 1]) -> N×K` with `names` (K factor names) and
`ranges` (name -> (low, high), to put factors on one scale).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from benchmark.checks import hspace_properties as hp
from benchmark.core.hashing import json_digest, sha256_file
from benchmark.core.images import from_uint8, to_uint8
from benchmark.core.registry import Registry
from benchmark.outputs.gates import evaluate_gates
from benchmark.outputs.results import (
    KNOWN_ANSWER_COLUMN,
    PAPER_CLAIM_COLUMN,
    Band,
    Gate,
    MetricValue,
    ReferenceValue,
)
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Stage
from benchmark.run.stages.invert import gather
from metrics.aggregate import Aggregate, aggregate_per_image

PROPERTIES = Stage("properties", 1)
COLUMN = KNOWN_ANSWER_COLUMN
CLAIM_COLUMN = PAPER_CLAIM_COLUMN  # the real world's bands: what the paper claims, reported, no answer known
DDIM = "ddim"  # the "attribute" key of checks on plain DDIM (reconstruction, Δh = 0)
PROVENANCE = "known answer of the synthetic world (suite manifest `known_answers`)"
CLIP_PROVENANCE = ("h-space property on real faces, measured as the change of cos(E_I(image), ΔT) along each "
                   "attribute's CLIP text direction (metrics.clip_projection); no answer is known, so the band is "
                   "the paper's claim, reported (suite manifest `known_answers`)")


class FactorMeasure(Protocol):
    names: Sequence[str]
    ranges: Mapping[str, tuple[float, float]]
    digest: str
    column: str  # the reference column its bands go under
    provenance: str
    label: str  # what the figures call it ("oracle", "CLIP projection")

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class CallableMeasure:
    """A `FactorMeasure` from a function and its factor names and ranges."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    names: tuple[str, ...]
    ranges: Mapping[str, tuple[float, float]]
    digest: str
    column: str = COLUMN
    provenance: str = PROVENANCE
    label: str = "oracle"

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.fn(pixels)


def factor_measure(loaded: Any, *, digest: str, column: str = COLUMN, provenance: str = PROVENANCE,
                   label: str = "oracle") -> FactorMeasure:
    """The measure of a loaded factor oracle: `factor_names` and `measure(uint8 images) -> N×K` (the metric
    back-end of kind `factor-oracle`, or `metrics.clip_projection`); ranges from its `factor_ranges`, or the
    renderer's when it measures the synthetic world's factors. Pixels are quantised to uint8 first, as every stored
    image is."""
    from benchmark.core.errors import ManifestError

    names = tuple(getattr(loaded, "factor_names", ()))
    if not names or not callable(getattr(loaded, "measure", None)):
        raise ManifestError(f"the known-answer measure ({type(loaded).__name__}) has no factor_names and measure()",
                            fix="name a factor oracle (a back-end of kind factor-oracle) as `known_answers.measure`")
    ranges = getattr(loaded, "factor_ranges", None)
    if ranges is None:
        from benchmark.synthetic.renderer import FACTOR_RANGES

        if not set(names) <= set(FACTOR_RANGES):
            raise ManifestError(f"the measure's factors {names} have no ranges", fix="give it `factor_ranges`")
        ranges = {n: FACTOR_RANGES[n] for n in names}
    return CallableMeasure(lambda pixels: loaded.measure(to_uint8(pixels)).float(), names, dict(ranges), digest,
                           column, provenance, label)


@dataclass(frozen=True)
class Outcome:
    """One check's value: an aggregate over images (or a single number with n = 1), and an optional note."""

    key: str
    attribute: str
    value: Aggregate
    note: str = ""


@functools.cache
def _code_digest() -> str:
    """The property code's version: a change to how a property is computed, or to how its CI is (metrics/aggregate),
    invalidates its cached units."""
    from metrics import aggregate

    return json_digest([sha256_file(hp.__file__), sha256_file(__file__), sha256_file(aggregate.__file__)])


def single(value: float) -> Aggregate:
    return Aggregate(mean=float(value), std=0.0, ci_low=None, ci_high=None, n=1)


def from_dict(d: Mapping[str, Any]) -> Aggregate:
    return Aggregate(**{k: d[k] for k in ("mean", "std", "ci_low", "ci_high", "n")})


CHECKS: Registry[Callable[[Context, Any], Outcome]] = Registry("known-answer check")


# ---------------------------------------------------------------------------------------------------------------
# The context: the run's state, and the property computations (each one cached unit)
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Context:
    state: Any  # benchmark.run.pipeline.RunState
    spec: Any  # benchmark.inputs.manifests.KnownAnswers
    measure: FactorMeasure
    _units: dict[str, CacheEntry] = field(default_factory=dict)
    _fts: dict[str, Any] = field(default_factory=dict)
    _contexts: dict[tuple, hp.EditContext] = field(default_factory=dict)
    _measured: dict[Any, np.ndarray] = field(default_factory=dict)

    # -- what the run already has -------------------------------------------------------------------------------
    @property
    def plan(self):
        return self.state.plan

    @property
    def engine(self):
        return self.state.plan.engine

    def attribute(self, name: str):
        for a in self.plan.attributes:
            if a.name == name:
                return a
        raise KeyError(f"the run has no attribute {name!r}")

    def has(self, name: str) -> bool:
        return any(a.name == name for a in self.plan.attributes)

    def factor(self, attribute: str) -> tuple[int, int]:
        """(column of the attribute's target factor in the measure's output, its expected sign)."""
        target = self.spec.targets[attribute]
        return self._column(target.factor), target.sign

    def _column(self, factor: str) -> int:
        names = list(self.measure.names)
        if factor not in names:
            raise KeyError(f"the measure has no factor {factor!r}; it has {names}")
        return names.index(factor)

    def ranges(self) -> np.ndarray:
        return np.array([self.measure.ranges[n][1] - self.measure.ranges[n][0] for n in self.measure.names])

    def measure_np(self, pixels: torch.Tensor) -> np.ndarray:
        return hp.measure_np(self.measure, pixels.to(self.engine.model.device))

    def ids(self, n: int | None = None) -> list[str]:
        ids = [it.id for it in self.plan.images]
        return ids if n is None else ids[:n]

    def n(self) -> int:
        return min(self.spec.n_images, len(self.plan.images))

    def originals(self) -> torch.Tensor:
        return torch.stack([it.pixels for it in self.plan.images])

    def reconstructions(self) -> torch.Tensor:
        return gather(self.state.test_inversions, "reconstruction")

    def edits(self, attribute: str) -> torch.Tensor:
        return self.state.edits[attribute].output.tensors["edited"]

    def ft(self, attribute: str, entry: CacheEntry | None = None, engine=None):
        """The attribute's f_t module (one object per attribute, so edits with it are remembered)."""
        # The attribute's plan carries its f_t arm (an ablation suite), so the weights load into the right module.
        plan = next((a for a in self.plan.attributes if a.name == attribute), None)
        if entry is not None:
            return (engine or self.engine).load_ft(entry.output.tensors, plan)
        if attribute not in self._fts:
            self._fts[attribute] = self.engine.load_ft(self.state.ft[attribute].output.tensors, plan)
        return self._fts[attribute]

    def edit_context(self, attribute: str, *, t_edit: int | None = None) -> hp.EditContext:
        """The first `n_images` with the attribute's schedule (one context per setting: it remembers edits)."""
        key = (attribute, t_edit)
        if key not in self._contexts:
            n = self.n()
            schedule = self.engine.schedule(self.attribute(attribute))
            if t_edit is not None:
                schedule = schedule.model_copy(update={"t_edit": int(t_edit),
                                                       "t_boost": min(schedule.t_boost, int(t_edit))})
            x_T = gather(self.state.test_inversions, "x_T")[:n].to(self.engine.model.device)
            ids = self.ids(n)
            self._contexts[key] = hp.EditContext(self.engine.model, x_T, schedule,
                                                 noise=lambda ids=ids: self.engine.noise_generators(ids))
        return self._contexts[key]

    # -- cached property units ----------------------------------------------------------------------------------
    def unit(self, kind: str, attributes: Sequence[str], compute: Callable[[], StageOutput], extra: Mapping[str, Any],
             fts: Mapping[str, CacheEntry] | None = None) -> CacheEntry:
        label = f"{kind} {'+'.join(attributes)}"
        if label in self._units:
            return self._units[label]
        spec = {"kind": kind, "attributes": [self.attribute(a).ref for a in attributes],
                "settings": [dict(self.attribute(a).settings) for a in attributes], "n_images": self.n(),
                "ids": self.ids(self.n()), "measure": self.measure.digest,
                **self.engine.spec_for("edit"), **extra,
                # after the engine's spec, whose own "code" (the models package) must not overwrite this one
                "property_code": _code_digest()}
        upstream = {f"invert{i}": e for i, e in enumerate(self.state.test_inversions)}
        upstream.update({f"ft:{a}": self.state.ft[a] for a in attributes})
        upstream.update({f"extra_ft:{k}": e for k, e in (fts or {}).items()})
        entry = self.state.runner.unit(PROPERTIES, label, spec, compute, digests=self.engine.digests,
                                       upstream=upstream)
        self._units[label] = entry
        return entry

    def figure_count(self) -> int:
        return min(self.spec.figure_images, self.n())

    def linearity(self, attribute: str) -> CacheEntry:
        scales = [float(s) for s in self.spec.linearity_scales]

        def compute() -> StageOutput:
            column, _ = self.factor(attribute)
            run = hp.run_linearity(self.edit_context(attribute), self.ft(attribute), self.measure, column,
                                   scales=scales, seed=self._seed())
            k = self.figure_count()
            return StageOutput(tensors={"images": torch.stack([to_uint8(run.images[s][:k]) for s in scales])},
                               data={"score": run.score.summary(), "curves": run.score.curves.tolist()})

        return self.unit("linearity", [attribute], compute, {"scales": scales})

    def global_ft_entry(self, attribute: str) -> CacheEntry:
        from benchmark.run.stages.train import train_attribute

        return train_attribute(self.state.runner, self.global_engine(), self.attribute(attribute),
                               self.plan.train_images, self.state.train_inversions)

    def global_engine(self):
        return dataclasses.replace(self.engine, ft_name="global", ft_options={})

    def wants_global(self, attribute: str) -> bool:
        return any(c.check == "timestep_consistency" and c.attribute == attribute
                   and c.options.get("variant") == "global" for c in self.spec.checks)

    def consistency(self, attribute: str) -> CacheEntry:
        with_global = self.wants_global(attribute)
        fts = {"global": self.global_ft_entry(attribute)} if with_global else {}

        def compute() -> StageOutput:
            column, _ = self.factor(attribute)
            ctx = self.edit_context(attribute)
            glob = self.ft(attribute, fts["global"], self.global_engine()) if with_global else None
            run = hp.run_consistency(ctx, self.ft(attribute), self.measure, column, global_ft=glob,
                                     seed=self._seed())
            plain, edit = run.images["plain"], run.images["delta_h_t"]
            factor_shift = (self.measure_np(edit) - self.measure_np(plain)) / self.ranges()
            homogeneity = {
                "factor": hp.homogeneity_score(factor_shift, seed=self._seed()).to_dict(),
                "pixel": hp.homogeneity_score((edit - plain).double().cpu().numpy(), seed=self._seed()).to_dict(),
                "delta_h": hp.homogeneity_score(hp.delta_h_directions(
                    {t: d.cpu() for t, d in run.delta_h.items()}), seed=self._seed()).to_dict(),
            }
            k = self.figure_count()
            variants = list(run.images)
            return StageOutput(
                tensors={"images": torch.stack([to_uint8(run.images[v][:k]) for v in variants])},
                data={"variants": variants, "scores": {v: s.summary() for v, s in run.scores.items()},
                      "homogeneity": homogeneity})

        return self.unit("consistency", [attribute], compute, {"global": with_global}, fts)

    def combination(self) -> CacheEntry:
        """Scores on the {0, 1}² corners over `n_images`; the finer 2-D grid of `combination_coefficients` for
        the figure on two images only (it costs one generation per cell)."""
        a, b = self.spec.combination
        coefficients = sorted({float(c) for c in self.spec.combination_coefficients} | {0.0, 1.0})

        def compute() -> StageOutput:
            (ca, _), (cb, _) = self.factor(a), self.factor(b)
            names = (self.spec.targets[a].factor, self.spec.targets[b].factor)
            ctx = self.edit_context(a)
            run = hp.run_combination(ctx, self.ft(a), self.ft(b), self.measure, (ca, cb), names, seed=self._seed())
            shown = hp.run_combination(ctx.subset(min(2, self.n())), self.ft(a), self.ft(b), self.measure, (ca, cb),
                                       names, coefficients=coefficients, seed=self._seed())
            grid = torch.stack([torch.stack([to_uint8(shown.images[x, y]) for y in coefficients])
                                for x in coefficients])  # A's coefficient × B's × image
            return StageOutput(tensors={"images": grid},
                               data={"score": run.score.summary(), "coefficients": coefficients})

        return self.unit("combination", [a, b], compute, {"coefficients": coefficients})

    def t_edit_sweep(self, attribute: str) -> CacheEntry:
        """The trained f_t applied from other t_edit values, on the figure images (a figure, not a check)."""
        t_edits = sorted({int(t) for t in self.spec.t_edit_sweep}, reverse=True)

        def compute() -> StageOutput:
            column, _ = self.factor(attribute)
            ft, k = self.ft(attribute), self.figure_count()
            base = self.measure_np(self.edit_context(attribute).subset(k).plain())[:, column]
            images, shifts = [], []
            for t in t_edits:
                edited = self.edit_context(attribute, t_edit=t).subset(k).generate([(ft, 1.0)]).images
                images.append(to_uint8(edited))
                shifts.append(aggregate_per_image(self.measure_np(edited)[:, column] - base,
                                                  seed=self._seed()).to_dict())
            return StageOutput(tensors={"images": torch.stack(images)},
                               data={"t_edit": t_edits, "shift": shifts,
                                     "trained_t_edit": int(self.attribute(attribute).settings["t_edit"])})

        return self.unit("t_edit_sweep", [attribute], compute, {"t_edits": t_edits, "k": self.figure_count()})

    def _seed(self) -> int:
        return int(self.plan.seeds.get("bootstrap", 0))


# ---------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------

@CHECKS.register("reconstruction_psnr")
def _reconstruction_psnr(ctx: Context, check) -> Outcome:
    """PSNR (dB) of the DDIM reconstruction against the input, per test image."""
    from skimage.metrics import peak_signal_noise_ratio

    orig, rec = ctx.originals().numpy(), ctx.reconstructions().numpy()
    values = [peak_signal_noise_ratio(o, r, data_range=255) for o, r in zip(orig, rec, strict=True)]
    return Outcome("recon_psnr_db", DDIM, aggregate_per_image(values, seed=ctx._seed()))


@CHECKS.register("zero_delta_exact")
def _zero_delta_exact(ctx: Context, check) -> Outcome:
    """Max |x| difference between Asyrp's process with the trained f_t at Δh scale 0 and plain DDIM
    (`models.plain_reverse`, a separate code path), on the first two images, without boost noise."""
    import models

    attribute = check.options.get("attribute_ft") or ctx.plan.attributes[0].name

    def compute() -> StageOutput:
        ec = ctx.edit_context(attribute).subset(min(2, ctx.n()))
        schedule = ec.schedule.model_copy(update={"t_boost": 0, "delta_scale": 0.0})
        edited = models.generate(ec.model, ec.x_T, [(ctx.ft(attribute), 1.0)], schedule).latents
        plain, _ = models.plain_reverse(ec.model, ec.x_T, schedule.n_steps, schedule.t0)
        return StageOutput(data={"max_abs": float((edited - plain).abs().max())})

    entry = ctx.unit("zero_delta", [attribute], compute, {})
    return Outcome("zero_delta_max_abs", DDIM, single(entry.output.data["max_abs"]))


def _shifts(ctx: Context, attribute: str) -> np.ndarray:
    """Per image and factor, the edit's change relative to the DDIM reconstruction (all test images)."""
    key = ("shift", attribute)
    if key not in ctx._measured:
        if "reconstruction" not in ctx._measured:
            ctx._measured["reconstruction"] = ctx.measure_np(from_uint8(ctx.reconstructions()))
        ctx._measured[key] = ctx.measure_np(from_uint8(ctx.edits(attribute))) - ctx._measured["reconstruction"]
    return ctx._measured[key]


@CHECKS.register("target_shift")
def _target_shift(ctx: Context, check) -> Outcome:
    """The target factor's change (edit − reconstruction), signed so that the intended direction is positive."""
    column, sign = ctx.factor(check.attribute)
    shift = sign * _shifts(ctx, check.attribute)[:, column]
    return Outcome("target_shift", check.attribute, aggregate_per_image(shift, seed=ctx._seed()))


@CHECKS.register("non_target_shift")
def _non_target_shift(ctx: Context, check) -> Outcome:
    """The largest mean |change| of any other factor, as a fraction of that factor's range."""
    column, _ = ctx.factor(check.attribute)
    ignore = {column, *(ctx._column(f) for f in check.options.get("ignore", []))}
    rel = np.abs(_shifts(ctx, check.attribute)) / ctx.ranges()
    others = [j for j in range(rel.shape[1]) if j not in ignore]
    worst = max(others, key=lambda j: rel[:, j].mean())
    agg = aggregate_per_image(rel[:, worst], seed=ctx._seed())
    return Outcome("non_target_shift", check.attribute, agg, note=f"largest: {ctx.measure.names[worst]}")


@CHECKS.register("sdir_ci_low")
def _sdir_ci_low(ctx: Context, check) -> Outcome:
    """The lower end of the 95% CI of the run's S_dir (raw cosine): above 0 means the CI excludes 0."""
    mv = ctx.state.metrics[check.attribute][check.options.get("metric", "sdir")]
    return Outcome("sdir_ci_low", check.attribute, Aggregate(mean=mv.ci_low, std=0.0, ci_low=mv.ci_low,
                                                             ci_high=mv.ci_high, n=mv.n))


@CHECKS.register("linearity_monotone")
def _linearity_monotone(ctx: Context, check) -> Outcome:
    """Fraction of images whose target-factor response is monotone over the Δh scales, in the sense of the
    attribute's sign (the mean curve's own direction is in the figures)."""
    data = ctx.linearity(check.attribute).output.data
    _, sign = ctx.factor(check.attribute)
    curves = np.asarray(data["curves"])
    monotone = [float(hp.is_monotone(c, sign)) for c in curves]
    return Outcome("linearity_monotone", check.attribute, aggregate_per_image(monotone, seed=ctx._seed()))


@CHECKS.register("linearity_mean_monotone")
def _linearity_mean_monotone(ctx: Context, check) -> Outcome:
    """1 when the mean response curve is monotone in the attribute's sign, else 0."""
    curves = np.asarray(ctx.linearity(check.attribute).output.data["curves"])
    _, sign = ctx.factor(check.attribute)
    return Outcome("linearity_mean_monotone", check.attribute, single(float(hp.is_monotone(curves.mean(0), sign))))


@CHECKS.register("linearity_r2")
def _linearity_r2(ctx: Context, check) -> Outcome:
    """R² of a line through the mean response curve over the Δh scales (CI: resampled images)."""
    data = ctx.linearity(check.attribute).output.data
    return Outcome("linearity_r2", check.attribute, from_dict(data["score"]["r2_mean_curve"]))


@CHECKS.register("homogeneity")
def _homogeneity(ctx: Context, check) -> Outcome:
    """Mean pairwise cosine, across images, of the edit's direction in option `space`: factor (the oracle
    shift, each factor over its range), pixel, or delta_h (the f_t's Δh over the edit's timesteps)."""
    space = check.options.get("space", "factor")
    data = ctx.consistency(check.attribute).output.data
    return Outcome(f"homogeneity_{space}", check.attribute, from_dict(data["homogeneity"][space]))


@CHECKS.register("timestep_consistency")
def _timestep_consistency(ctx: Context, check) -> Outcome:
    """A replacement of Δh_t (`variant`: time_mean, image_mean or global) against the Δh_t edit; `score`:
    relative_distance (pixels) or shift_ratio (the target factor)."""
    variant = check.options.get("variant", "time_mean")
    score = check.options.get("score", "relative_distance")
    data = ctx.consistency(check.attribute).output.data
    return Outcome(f"consistency_{variant}_{score}", check.attribute, from_dict(data["scores"][variant][score]))


@CHECKS.register("combination_retention")
def _combination_retention(ctx: Context, check) -> Outcome:
    """The smaller of the two factors' retention in the joint edit (1 = each keeps its single-edit shift)."""
    data = ctx.combination().output.data["score"]
    a, b = (ctx.spec.targets[x].factor for x in ctx.spec.combination)
    worst = min((data[f"retention_{a}"], data[f"retention_{b}"]), key=lambda d: d["mean"])
    return Outcome("combination_retention", "+".join(ctx.spec.combination), from_dict(worst))


@CHECKS.register("combination_additivity")
def _combination_additivity(ctx: Context, check) -> Outcome:
    """‖δ(1,1) − δ(1,0) − δ(0,1)‖ / (‖δ(1,0)‖ + ‖δ(0,1)‖) over the two target factors (0 = additive)."""
    data = ctx.combination().output.data["score"]
    return Outcome("combination_additivity_error", "+".join(ctx.spec.combination),
                   from_dict(data["additivity_error"]))


# ---------------------------------------------------------------------------------------------------------------
# The extra gate
# ---------------------------------------------------------------------------------------------------------------

def _direction(band) -> str:
    return "lower" if band.upper is not None and band.lower is None else "higher"


def _metric_value(outcome: Outcome, check, measure: FactorMeasure) -> MetricValue:
    v = outcome.value
    spec = {"metric": f"{measure.column}:{check.check}", "check": check.check, "options": dict(check.options),
            "measure": measure.digest}
    if outcome.note:
        spec["note"] = outcome.note
    return MetricValue(mean=v.mean, ci_low=v.ci_low, ci_high=v.ci_high, n=v.n, std=v.std,
                       direction=_direction(check.band), spec=spec)


def _reference(outcome: Outcome, check, measure: FactorMeasure) -> ReferenceValue:
    band = check.band
    return ReferenceValue(metric=outcome.key, attribute=outcome.attribute, column=measure.column, value=None,
                          provenance=measure.provenance, band=Band(low=band.lower, high=band.upper), gated=band.gate,
                          band_rationale=band.rationale, settings=dict(check.options))


@dataclass
class KnownAnswerGates:
    """`SuitePlan.extra_gates` entry: runs every check of `spec` on a finished run (see the module docstring)."""

    spec: Any  # benchmark.inputs.manifests.KnownAnswers
    measure: FactorMeasure

    def __post_init__(self) -> None:
        for check in self.spec.checks:
            CHECKS.get(check.check)  # an unknown check fails before any compute, with did-you-mean

    def involved(self, check) -> set[str]:
        names = set(check.attribute.split("+")) if check.attribute else set()
        if check.check.startswith("combination"):
            names |= set(self.spec.combination or [])
        return names - {DDIM}

    def applicable(self, ctx: Context) -> list:
        """Checks whose attributes this run edited (`--attributes` may leave some out)."""
        return [c for c in self.spec.checks if all(ctx.has(a) for a in self.involved(c))]

    def __call__(self, state) -> list[Gate]:
        ctx = Context(state, self.spec, self.measure)
        checks = self.applicable(ctx)
        refs, values = [], {}
        with state.runner.stage(PROPERTIES, total=len(checks), unit="check"):
            for check in checks:
                outcome = CHECKS.get(check.check)(ctx, check)
                if not math.isfinite(outcome.value.mean):
                    raise ValueError(f"known-answer check {check.check} gave {outcome.value.mean}")
                values.setdefault(outcome.attribute, {})[outcome.key] = _metric_value(outcome, check, self.measure)
                refs.append(_reference(outcome, check, self.measure))
                if not check.band.gate:
                    reached = Band(low=check.band.lower, high=check.band.upper).contains(outcome.value.mean)
                    state.notes.append(f"{self.measure.column} {outcome.key}/{outcome.attribute} (not gated): "
                                            f"{outcome.value.mean:.4g}, band {refs[-1].band.describe()}: "
                                            f"{'reached' if reached else 'NOT reached'}")
            if self.spec.combination and all(ctx.has(a) for a in self.spec.combination):
                ctx.combination()  # its 2-D grid is a figure even when no check reads it
            for attribute in t_edit_sweep_attributes(self.spec):
                if ctx.has(attribute):
                    ctx.t_edit_sweep(attribute)
        for attribute, per_key in values.items():
            state.metrics.setdefault(attribute, {}).update(per_key)
        state.references.extend(refs)
        state.properties.update(figure_data(ctx))
        return evaluate_gates(values, refs)


# ---------------------------------------------------------------------------------------------------------------
# Figure data (curves with CIs and image grids), written by the pipeline beside results.json
# ---------------------------------------------------------------------------------------------------------------

def figure_data(ctx: Context) -> dict[str, Any]:
    """Everything the property figures need, from the units computed above (nothing is recomputed here)."""
    out: dict[str, Any] = {"measure": ctx.measure.label, "curves": {}, "grids": {}}
    ids = ctx.ids(ctx.figure_count())
    for label, entry in ctx._units.items():
        kind, _, attrs = label.partition(" ")
        data, images = entry.output.data, entry.output.tensors.get("images")
        if kind == "linearity":
            out["curves"][f"linearity/{attrs}"] = {"scales": data["score"]["scales"],
                                                   "mean_curve": data["score"]["mean_curve"],
                                                   "factor": ctx.spec.targets[attrs].factor}
            out["grids"][f"linearity_{attrs}"] = {
                "title": f"{attrs}: Δh scale", "rows": ids,
                "cols": [f"{s:g}" for s in data["score"]["scales"]], "images": images.transpose(0, 1)}
        elif kind == "consistency":
            out["curves"][f"consistency/{attrs}"] = {"scores": data["scores"], "homogeneity": data["homogeneity"]}
            out["grids"][f"consistency_{attrs}"] = {"title": f"{attrs}: Δh_t and its replacements", "rows": ids,
                                                    "cols": data["variants"], "images": images.transpose(0, 1)}
        elif kind == "combination":
            coeffs = [f"{c:g}" for c in data["coefficients"]]
            a, b = attrs.split("+")
            for i, image_id in enumerate(ids[:2]):
                out["grids"][f"combination_{image_id}"] = {
                    "title": f"{image_id}: rows {a} coefficient, columns {b} coefficient", "rows": coeffs,
                    "cols": coeffs, "images": images[:, :, i]}
            out["curves"]["combination"] = data["score"]
        elif kind == "t_edit_sweep":
            out["curves"][f"t_edit_sweep/{attrs}"] = {"t_edit": data["t_edit"], "shift": data["shift"],
                                                      "trained_t_edit": data["trained_t_edit"],
                                                      "factor": ctx.spec.targets[attrs].factor}
            out["grids"][f"t_edit_{attrs}"] = {"title": f"{attrs}: t_edit (trained at {data['trained_t_edit']})",
                                               "rows": ids, "cols": [str(t) for t in data["t_edit"]],
                                               "images": images.transpose(0, 1)}
    return out


def t_edit_sweep_attributes(spec) -> list[str]:
    return [c.attribute for c in spec.checks if c.check == "target_shift"][:1] if spec.t_edit_sweep else []
