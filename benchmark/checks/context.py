"""The experiment context of the known-answer checks: a finished run's state, and the property experiments.

`Context` gives the checks (`benchmark.checks.known_answers`) what the run already has (inversions, f_t, edits,
metrics) and computes what it lacks: the h-space properties (`benchmark.checks.hspace_properties`) on the first
`n_images` test images, each experiment one unit of the stage cache (stage `properties`). A unit's cache key holds
the f_t, the inversions, the settings, the measure's digest and the digest of the code that computes property values
(`property_code_digest`), so a change to that code recomputes every unit.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmark.checks import hspace_properties as hp
from benchmark.checks.measure import FactorMeasure
from benchmark.core.hashing import json_digest, sha256_file
from benchmark.core.images import from_uint8, to_uint8
from benchmark.run.cache import CacheEntry, StageOutput
from benchmark.run.runner import Stage
from benchmark.run.stages.invert import gather
from metrics.aggregate import aggregate_per_image

PROPERTIES = Stage("properties", 1)

#: The modules whose code computes property values (and their CIs): a change to any of them invalidates the
#: cached property units. The gate (`benchmark.checks.gate`) only files the values, so it is not among them.
PROPERTY_CODE = ("benchmark.checks.measure", "benchmark.checks.context", "benchmark.checks.known_answers",
                 "benchmark.checks.hspace_properties", "metrics.aggregate")


def property_code_files() -> list[str]:
    """The source files of `PROPERTY_CODE` (found without importing them, so this module imports no check)."""
    return [importlib.util.find_spec(name).origin for name in PROPERTY_CODE]


@functools.cache
def property_code_digest() -> str:
    """The property code's version: the digest of every file of `PROPERTY_CODE`."""
    return json_digest([sha256_file(path) for path in property_code_files()])


@dataclass
class Context:
    state: Any  # benchmark.run.pipeline.RunState
    spec: Any  # benchmark.inputs.manifests.KnownAnswers
    measure: FactorMeasure
    #: label ("linearity smiling") -> the property units computed or loaded so far (the figures draw them)
    units: dict[str, CacheEntry] = field(default_factory=dict, init=False)
    _fts: dict[str, Any] = field(default_factory=dict, init=False)
    _contexts: dict[tuple, hp.EditContext] = field(default_factory=dict, init=False)
    _measured: dict[Any, np.ndarray] = field(default_factory=dict, init=False)

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
        return self.column(target.factor), target.sign

    def column(self, factor: str) -> int:
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

    def figure_count(self) -> int:
        return min(self.spec.figure_images, self.n())

    def seed(self) -> int:
        """The bootstrap seed of every CI."""
        return int(self.plan.seeds.get("bootstrap", 0))

    def originals(self) -> torch.Tensor:
        return torch.stack([it.pixels for it in self.plan.images])

    def reconstructions(self) -> torch.Tensor:
        return gather(self.state.test_inversions, "reconstruction")

    def edits(self, attribute: str) -> torch.Tensor:
        return self.state.edits[attribute].output.tensors["edited"]

    def shifts(self, attribute: str) -> np.ndarray:
        """Per image and factor, the edit's change relative to the DDIM reconstruction (all test images)."""
        key = ("shift", attribute)
        if key not in self._measured:
            if "reconstruction" not in self._measured:
                self._measured["reconstruction"] = self.measure_np(from_uint8(self.reconstructions()))
            self._measured[key] = self.measure_np(from_uint8(self.edits(attribute))) - self._measured["reconstruction"]
        return self._measured[key]

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
            # an arm may take h at another layer than the suite (an h-space layer ablation)
            model_for = getattr(self.engine, "model_for", None)
            model = model_for(self.attribute(attribute)) if model_for is not None else self.engine.model
            self._contexts[key] = hp.EditContext(model, x_T, schedule,
                                                 noise=lambda ids=ids: self.engine.noise_generators(ids))
        return self._contexts[key]

    # -- cached property units ----------------------------------------------------------------------------------
    def unit(self, kind: str, attributes: Sequence[str], compute: Callable[[], StageOutput], extra: Mapping[str, Any],
             fts: Mapping[str, CacheEntry] | None = None) -> CacheEntry:
        """The property unit `kind` of `attributes` from the stage cache, computed by `compute` on a miss."""
        label = f"{kind} {'+'.join(attributes)}"
        if label in self.units:
            return self.units[label]
        spec = {"kind": kind, "attributes": [self.attribute(a).ref for a in attributes],
                "settings": [dict(self.attribute(a).settings) for a in attributes], "n_images": self.n(),
                "ids": self.ids(self.n()), "measure": self.measure.digest,
                **self.engine.spec_for("edit"), **extra,
                # after the engine's spec, whose own "code" (the models package) must not overwrite this one
                "property_code": property_code_digest()}
        upstream = {f"invert{i}": e for i, e in enumerate(self.state.test_inversions)}
        upstream.update({f"ft:{a}": self.state.ft[a] for a in attributes})
        upstream.update({f"extra_ft:{k}": e for k, e in (fts or {}).items()})
        entry = self.state.runner.unit(PROPERTIES, label, spec, compute, digests=self.engine.digests,
                                       upstream=upstream)
        self.units[label] = entry
        return entry

    def linearity(self, attribute: str) -> CacheEntry:
        scales = [float(s) for s in self.spec.linearity_scales]

        def compute() -> StageOutput:
            column, _ = self.factor(attribute)
            run = hp.run_linearity(self.edit_context(attribute), self.ft(attribute), self.measure, column,
                                   scales=scales, seed=self.seed())
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
                                     seed=self.seed())
            plain, edit = run.images["plain"], run.images["delta_h_t"]
            factor_shift = (self.measure_np(edit) - self.measure_np(plain)) / self.ranges()
            homogeneity = {
                "factor": hp.homogeneity_score(factor_shift, seed=self.seed()).to_dict(),
                "pixel": hp.homogeneity_score((edit - plain).double().cpu().numpy(), seed=self.seed()).to_dict(),
                "delta_h": hp.homogeneity_score(hp.delta_h_directions(
                    {t: d.cpu() for t, d in run.delta_h.items()}), seed=self.seed()).to_dict(),
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
            run = hp.run_combination(ctx, self.ft(a), self.ft(b), self.measure, (ca, cb), names, seed=self.seed())
            shown = hp.run_combination(ctx.subset(min(2, self.n())), self.ft(a), self.ft(b), self.measure, (ca, cb),
                                       names, coefficients=coefficients, seed=self.seed())
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
                                                  seed=self.seed()).to_dict())
            return StageOutput(tensors={"images": torch.stack(images)},
                               data={"t_edit": t_edits, "shift": shifts,
                                     "trained_t_edit": int(self.attribute(attribute).settings["t_edit"])})

        return self.unit("t_edit_sweep", [attribute], compute, {"t_edits": t_edits, "k": self.figure_count()})
