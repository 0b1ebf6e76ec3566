"""Small stand-ins for the method and a metric, for testing the harness machinery only.

They compute simple, hand-checkable things (a shift of the pixels, a mean absolute difference), so tests can
predict every number the pipeline reports. They are never registered outside tests.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmark.core.hashing import tensor_digest
from benchmark.run.suite_plan import AttributePlan, ImageItem, MetricPlan, SuitePlan


@dataclass
class StandinEditSet:
    edited: torch.Tensor
    original: torch.Tensor
    reconstruction: torch.Tensor
    source_text: str
    target_text: str
    ids: list[str]


@dataclass
class Agg:  # the shape of metrics.Aggregate
    mean: float
    std: float
    ci_low: float | None
    ci_high: float | None
    n: int


@dataclass
class StandinResult:  # the shape of metrics.MetricResult
    name: str
    direction: str
    primary: Agg
    variants: dict
    per_image: dict
    ids: list
    flags: dict
    spec: dict


def aggregate(values: np.ndarray, seed: int = 0) -> Agg:
    rng = np.random.default_rng(seed)
    boots = rng.choice(values, size=(200, len(values))).mean(1)
    return Agg(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0,
               float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)), len(values))


class MeanAbsShift:
    """Per image: mean |edited − original| / 255. Variant `negated`: minus that."""

    name = "mean-abs-shift@1"
    direction = "higher"

    def __init__(self, reference: str = "original"):
        self.reference = reference

    def spec_dict(self):
        return {"metric": self.name, "direction": self.direction, "reference": self.reference}

    def compute(self, es: StandinEditSet) -> StandinResult:
        ref = es.original if self.reference == "original" else es.reconstruction
        values = (es.edited.double() - ref.double()).abs().mean(dim=(1, 2, 3)).numpy() / 255.0
        flags = {"zero_shift": [i for i, v in zip(es.ids, values, strict=True) if v == 0]}
        return StandinResult(self.name, self.direction, aggregate(values), {"negated": aggregate(-values)},
                             {"value": values.tolist(), "negated": (-values).tolist()}, list(es.ids),
                             {k: v for k, v in flags.items() if v}, self.spec_dict())


class ShiftEngine:
    """Inversion is the identity plus a fixed offset; "training" learns a constant shift from the prompt's
    `shift` setting; the edit adds it. Optional sleeps and a log of computed units for resume tests."""

    def __init__(self, sleep: float = 0.0, log_file: str | None = None):
        self.digests = {"base_model": "standin-0"}
        self.sleep = sleep
        self.log_file = log_file

    def _log(self, what: str) -> None:
        if self.log_file:
            with open(self.log_file, "a") as f:
                f.write(f"{what} {os.getpid()}\n")
        if self.sleep:
            time.sleep(self.sleep)

    def spec_for(self, stage, attribute=None):
        return {"engine": "shift", "stage": stage}

    def invert(self, x0, *, with_reference, reconstruct=True):
        self._log("invert")
        out = {"x_T": x0 + 0.25, "reconstruction": x0} if reconstruct else {"x_T": x0 + 0.25}
        if with_reference:
            out["reference"] = x0.flip(-1)
        return out

    def train(self, attribute, x0, inversions):
        self._log(f"train {attribute.name}")
        return {"shift": torch.tensor([float(attribute.settings["shift"])])}, {"loss_history": [1.0, 0.5]}

    def load_official(self, attribute):
        self._log(f"load {attribute.name}")
        return {"shift": torch.tensor([float(attribute.settings["shift"])])}

    def edit(self, attribute, ft_state, x_T, *, delta_h_scale=1.0, ids=None):
        self._log(f"edit {attribute.name}")
        return x_T - 0.25 + ft_state["shift"] * delta_h_scale


def images(n: int, size: int = 8, seed: int = 0) -> list[ImageItem]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        px = torch.randint(40, 200, (3, size, size), generator=g, dtype=torch.uint8)
        out.append(ImageItem(f"img{i:03d}", px, tensor_digest(px)))
    return out


def attributes(shifts: dict[str, float] | None = None) -> list[AttributePlan]:
    shifts = shifts or {"smiling": 0.2, "pixar": 0.4}
    domains = {"smiling": "in-domain", "sad": "in-domain", "pixar": "unseen"}
    return [AttributePlan(name, f"{name}@1", domains.get(name, "in-domain"), "face", f"{name} face",
                          {"shift": s}) for name, s in shifts.items()]


def plan(n_images: int = 6, *, engine: ShiftEngine | None = None, references=(), limit=None,
         batch_size: int = 2, **kw) -> SuitePlan:
    return SuitePlan(
        suite="standin@1", images=images(n_images), train_images=images(4, seed=1),
        attributes=attributes(kw.pop("shifts", None)),
        metrics=[MetricPlan("shift", MeanAbsShift())], engine=engine or ShiftEngine(),
        make_edit_set=StandinEditSet, batch_size=batch_size, seeds={"global": 0, "bootstrap": 0},
        manifest_digests={"suite": "0" * 64}, references=list(references), limit=limit, grid_count=2, **kw)


@dataclass
class Paths:
    cache: Path
    out: Path
    extra: dict = field(default_factory=dict)
