"""Conformance of every known-answer check (`benchmark.checks.known_answers.CHECKS`), per entry.

Every check is named in a suite manifest's `known_answers:` or documented (docs/*.md), and computes an `Outcome`
(a key, the attribute it is about, a finite `Aggregate`) from a stand-in `Context`: the real `Context` code and the
real h-space property experiments, over a stand-in run state (a micro UNet, seeded f_t, 4 DDIM steps, a mean-colour
measure), with the stage cache replaced by direct computation. The checks' values are checked against independent
computations in test_known_answers.py; here only that each obeys the contract.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from models_helpers import micro_model

import models as M
from benchmark.checks.context import Context
from benchmark.checks.known_answers import CHECKS, Outcome
from benchmark.checks.measure import CallableMeasure
from benchmark.core.images import to_uint8
from benchmark.core.paths import REPO_ROOT
from benchmark.inputs.manifests import KnownAnswers, ManifestRegistry, suite_with_profile
from benchmark.run.cache import StageOutput
from metrics.aggregate import Aggregate

CHECK_NAMES = CHECKS.names()
N_IMAGES, STEPS = 3, 4
ATTRIBUTES = ("smiling", "pixar")
# What each check is given in the stand-in suite (its `attribute` and `options`); a check registered without an
# entry here fails `test_every_check_has_a_stand_in_entry`.
CHECK_ARGS: dict[str, dict] = {
    "reconstruction_psnr": {},
    "zero_delta_exact": {},
    "target_shift": {"attribute": "smiling"},
    "non_target_shift": {"attribute": "smiling", "options": {"ignore": ["green"]}},
    "sdir_ci_low": {"attribute": "smiling"},
    "linearity_monotone": {"attribute": "smiling"},
    "linearity_mean_monotone": {"attribute": "smiling"},
    "linearity_r2": {"attribute": "smiling"},
    "homogeneity": {"attribute": "smiling", "options": {"space": "delta_h"}},
    "timestep_consistency": {"attribute": "smiling", "options": {"variant": "global"}},
    "combination_retention": {},
    "combination_additivity": {},
}


def _mean_colour(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.mean(dim=(2, 3))


MEASURE = CallableMeasure(_mean_colour, ("red", "green", "blue"),
                          {"red": (-1.0, 1.0), "green": (-1.0, 1.0), "blue": (-1.0, 1.0)}, "mean-colour")


@dataclasses.dataclass
class StandInEngine:
    """The part of `AsyrpEngine` a `Context` uses: the model, schedules, noise, f_t building and the edit spec."""

    model: M.DiffusionModel
    ft_name: str = "conv"
    ft_options: dict = dataclasses.field(default_factory=lambda: {"norm_groups": 8})
    digests: dict = dataclasses.field(default_factory=dict)

    def new_ft(self, seed: int = 0) -> torch.nn.Module:
        u = self.model.unet
        return M.build_ft(self.ft_name, h_channels=u.h_channels, temb_dim=u.temb_dim, h_size=u.h_size, seed=seed,
                          **self.ft_options)

    def load_ft(self, tensors, attribute=None) -> torch.nn.Module:
        ft = self.new_ft()
        ft.load_state_dict(tensors, strict=True)
        return ft.eval()

    def schedule(self, attribute) -> M.EditSchedule:
        return M.EditSchedule(n_steps=STEPS, t_edit=int(attribute.settings["t_edit"]), t_boost=300)

    def noise_generators(self, ids):
        return [torch.Generator().manual_seed(1000 + i) for i, _ in enumerate(ids)]

    def spec_for(self, stage: str, attribute=None) -> dict:
        return {}


class StandInRunner:
    """Computes every unit (no cache): what `Runner.unit` returns, minus the storage."""

    def unit(self, stage, label, spec, compute, *, digests=None, upstream=None):
        return SimpleNamespace(output=compute())


class StandInContext(Context):
    """The real `Context`, with the global f_t (a training run of its own in a real run) a seeded untrained one."""

    def global_ft_entry(self, attribute: str):
        ft = self.global_engine().new_ft(seed=9)
        return SimpleNamespace(output=StageOutput(tensors=ft.state_dict()))


def entry(**tensors):
    return SimpleNamespace(output=StageOutput(tensors=tensors))


@pytest.fixture(scope="module")
def run_state():
    """A stand-in finished run: inversions, one f_t and its edits per attribute, an S_dir value per attribute."""
    torch.set_num_threads(1)
    model = micro_model()
    engine = StandInEngine(model)
    g = torch.Generator().manual_seed(0)
    size = model.unet.sample_size
    x_T = torch.randn(N_IMAGES, 3, size, size, generator=g)
    originals = to_uint8(torch.rand(N_IMAGES, 3, size, size, generator=g) * 2 - 1)
    attributes = [SimpleNamespace(name=a, ref=f"{a}@1", settings={"t_edit": 500}, ft=None) for a in ATTRIBUTES]
    fts = {a.name: engine.new_ft(seed=i + 1) for i, a in enumerate(attributes)}
    with torch.no_grad():
        noise = engine.noise_generators
        plain = M.generate(model, x_T, [], engine.schedule(attributes[0]), noise(range(N_IMAGES))).images
        edited = {a.name: M.generate(model, x_T, [(fts[a.name], 1.0)], engine.schedule(a),
                                     noise(range(N_IMAGES))).images for a in attributes}
    plan = SimpleNamespace(attributes=attributes, engine=engine, seeds={"bootstrap": 0},
                           images=[SimpleNamespace(id=f"img{i}", pixels=originals[i]) for i in range(N_IMAGES)])
    sdir = Aggregate(mean=0.1, ci_low=0.05, ci_high=0.15, n=N_IMAGES, std=0.02)
    return SimpleNamespace(
        plan=plan, runner=StandInRunner(), test_inversions=[entry(x_T=x_T, reconstruction=to_uint8(plain))],
        ft={a: entry(**ft.state_dict()) for a, ft in fts.items()},
        edits={a: entry(edited=to_uint8(e)) for a, e in edited.items()},
        metrics={a: {"sdir": sdir} for a in ATTRIBUTES})


def stand_in_context(state, name: str) -> StandInContext:
    band = {"lower": -1e9, "upper": 1e9, "gate": True, "rationale": "conformance"}
    spec = KnownAnswers(measure="mean-colour@1", n_images=N_IMAGES, figure_images=2,
                        targets={"smiling": {"factor": "red"}, "pixar": {"factor": "blue", "sign": -1}},
                        combination=list(ATTRIBUTES), combination_coefficients=[0.0, 1.0],
                        checks=[{"check": name, "band": band, **CHECK_ARGS[name]}])
    return StandInContext(state, spec, MEASURE)


def test_every_check_has_a_stand_in_entry():
    assert sorted(set(CHECK_NAMES) ^ set(CHECK_ARGS)) == []


@pytest.fixture(scope="module")
def suite_checks() -> set[str]:
    """The checks every suite manifest names, in its plain form and under each of its profiles."""
    registry = ManifestRegistry()
    names = set()
    for ref in registry.names("suite"):
        loaded = registry.get("suite", ref)
        for profile in [None, *loaded.manifest.profiles]:
            known_answers = suite_with_profile(loaded, profile)[0].known_answers
            names |= {c.check for c in known_answers.checks} if known_answers else set()
    return names


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_every_check_is_named_in_a_suite_or_documented(name, suite_checks):
    docs = " ".join(p.read_text() for p in sorted(Path(REPO_ROOT, "docs").glob("*.md")))
    assert name in suite_checks or f"`{name}`" in docs, f"check {name!r} is in no suite manifest and no doc"


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_check_returns_an_outcome_for_a_stand_in_context(name, run_state):
    ctx = stand_in_context(run_state, name)
    check = ctx.spec.checks[0]
    with torch.no_grad():
        outcome = CHECKS.get(name)(ctx, check)
    assert isinstance(outcome, Outcome)
    assert outcome.key and isinstance(outcome.key, str) and isinstance(outcome.note, str)
    expected_attribute = check.attribute or ("+".join(ATTRIBUTES) if name.startswith("combination") else "ddim")
    assert outcome.attribute == expected_attribute
    value = outcome.value
    assert isinstance(value, Aggregate) and value.n >= 1 and math.isfinite(value.mean)
    assert (value.ci_low is None) == (value.ci_high is None)
    if value.ci_low is not None:
        assert value.ci_low <= value.ci_high
