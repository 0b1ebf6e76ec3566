"""The known-answer gate of a suite: runs its checks on a finished run and files what they found.

`KnownAnswerGates` is the suite's extra gate (`SuitePlan.extra_gates`): after the run's stages it computes each check
of the suite manifest's `known_answers:` (`benchmark.checks.known_answers.CHECKS`) from the run's own inversions,
f_t and edits, plus the h-space properties on the first `n_images` test images, through the stage cache
(`benchmark.checks.context`). Each check becomes

- a value in `results.metrics[<attribute>][<key>]` (mean, 95% bootstrap CI, N),
- a reference in the measure's column (`known-answer`, or `paper-claim` for the CLIP projection on real faces)
  with its band and the check's kind (so the tables show band and verdict), and
- a verdict (`Gate`) of the check's kind when the band has an end: a known answer passes or fails, and
  `run --gate` exits 1 when one fails; a claim holds or does not hold in this world and never fails a run. A
  failing check is a finding, reported with its value; bands are never moved to make a check pass.

The figure data of the property experiments (`figure_data`) goes to `RunState.properties`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmark.checks.context import PROPERTIES, Context
from benchmark.checks.known_answers import CHECKS, DDIM, Outcome
from benchmark.checks.measure import FactorMeasure
from benchmark.outputs.gates import evaluate_gates
from benchmark.outputs.results import Gate, MetricValue, ReferenceValue
from benchmark.run.executors.lazy import Pending


def _direction(band) -> str:
    return "lower" if band.high is not None and band.low is None else "higher"


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
                          provenance=measure.provenance, band=band.interval(), gated=check.has_verdict,
                          kind=check.kind, band_rationale=band.rationale, settings=dict(check.options))


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
            for figure in self.figures(ctx):
                figure()
        for attribute, per_key in values.items():
            state.metrics.setdefault(attribute, {}).update(per_key)
        state.references.extend(refs)
        state.properties.update(figure_data(ctx))
        return evaluate_gates(values, refs)

    def figures(self, ctx: Context) -> list[Callable[[], Any]]:
        """The property units that only figures read (computed even when no check reads them)."""
        steps: list[Callable[[], Any]] = []
        if self.spec.combination and all(ctx.has(a) for a in self.spec.combination):
            steps.append(ctx.combination)  # its 2-D grid is a figure even when no check reads it
        steps += [functools.partial(ctx.t_edit_sweep, a) for a in t_edit_sweep_attributes(self.spec) if ctx.has(a)]
        return steps

    def discover(self, state) -> None:
        """Meet every property unit without needing a value that is not computed yet: each check (or figure)
        that reads such a value is skipped where it reads it. An executor learns the gate's units this way
        before it computes them (`benchmark.run.executors`)."""
        ctx = Context(state, self.spec, self.measure)
        steps = [functools.partial(CHECKS.get(c.check), ctx, c) for c in self.applicable(ctx)] + self.figures(ctx)
        for step in steps:
            with contextlib.suppress(Pending):
                step()


# ---------------------------------------------------------------------------------------------------------------
# Figure data (curves with CIs and image grids), written by the pipeline beside results.json
# ---------------------------------------------------------------------------------------------------------------

def figure_data(ctx: Context) -> dict[str, Any]:
    """Everything the property figures need, from the units computed above (nothing is recomputed here)."""
    out: dict[str, Any] = {"measure": ctx.measure.label, "curves": {}, "grids": {}}
    ids = ctx.ids(ctx.figure_count())
    for label, entry in ctx.units.items():
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
