"""What the stages consume: a fully resolved suite (`SuitePlan`), and the two seams to the method and the metrics.

A plan is built from manifests (`benchmark.plan.suite.build_plan`) after every input has been checked, so the stages
never meet a missing file. The method is reached through an `Engine` (the real one wraps `models/`:
`benchmark.run.stages.asyrp.AsyrpEngine`), and each metric through the `metrics` registry's objects. Both are
protocols here so the stage machinery can be tested with small stand-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from benchmark.outputs.results import AttributeInfo, Gate, ReferenceValue


@dataclass(frozen=True)
class ImageItem:
    """One input image: its id, canonical uint8 3×H×W pixels and the digest of those pixels."""

    id: str
    pixels: torch.Tensor
    digest: str


@dataclass(frozen=True)
class FtChoice:
    """An ablation arm's f_t: a registered name and options, its optimiser and lr (None: the suite's), and the
    h-space layer it acts on (None: the suite's)."""

    key: str  # the arm's name in results: attribute `smiling` of arm `conv` is `smiling[conv]`
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    optimizer: str | None = None
    lr: float | None = None
    hspace_layer: str | None = None


@dataclass(frozen=True)
class InitPlan:
    """Where a trained f_t starts (transfer learning): a released f_t or a finished run's saved f_t (`path`,
    checked against `sha256` before loading), or an f_t this run trains first (`attribute`, its plan name)."""

    kind: str  # "released" | "run" | "this-run"
    label: str  # what the manifest said, for provenance
    path: str | None = None
    sha256: str | None = None
    attribute: str | None = None

    def spec(self) -> dict[str, Any]:
        """What the trained f_t depends on (an in-run source adds its own cache key as an upstream entry)."""
        return {"kind": self.kind, "label": self.label, "sha256": self.sha256, "attribute": self.attribute}


@dataclass(frozen=True)
class AttributePlan:
    name: str  # "smiling" (the key in results)
    ref: str  # "smiling@1"
    domain: str
    source_prompt: str
    target_prompt: str
    settings: Mapping[str, Any]  # t_edit, t_boost, lambda_clip, lambda_recon, ... (all part of the cache keys)
    official_ft: tuple[str, str] | None = None  # (path, sha256) of a released f_t, used instead of training
    ft: FtChoice | None = None  # an ablation arm's f_t, instead of the engine's
    init: InitPlan | None = None  # where its f_t starts training (None: the f_t's own initialisation)

    def info(self, delta_h_scale: float = 1.0) -> AttributeInfo:
        return AttributeInfo(name=self.name, domain=self.domain, source_prompt=self.source_prompt,
                             target_prompt=self.target_prompt, delta_h_scale=delta_h_scale)


def edit_key(attribute: str, delta_h_scale: float) -> str:
    """The key of one edit setting in results: `smiling` for Δh scale 1, `smiling_x0.5` for 0.5·Δh."""
    return attribute if delta_h_scale == 1.0 else f"{attribute}_x{delta_h_scale:g}"


class Engine(Protocol):
    """The method, as the stages see it. Tensors in and out are float in [-1, 1] unless named otherwise."""

    digests: Mapping[str, str]  # weights the engine's outputs depend on (base model, CLIP for the loss, ...)

    def spec_for(self, stage: str, attribute: AttributePlan | None = None) -> Mapping[str, Any]:
        """The settings a stage's output depends on (part of its cache key)."""

    def invert(self, x0: torch.Tensor, *, with_reference: bool, reconstruct: bool = True) -> dict[str, torch.Tensor]:
        """DDIM-invert a batch: at least `x_T` and (unless `reconstruct=False`) `reconstruction`; with
        `with_reference`, also the plain-DDIM reference trajectory that sequential training reads.

        Optional, for engines that compute several units together (`AsyrpEngine`): `attribute_batching`,
        `needs_reference`, `batch_group(attribute)`, `train_many(attributes, x0, inversions)`,
        `edit_many(settings, x_T, ids=...)`, `unet_batch(cpu_default=...)` and `execution()`."""

    def train(self, attribute: AttributePlan, x0: torch.Tensor, inversions: Mapping[str, torch.Tensor],
              ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Train f_t for `attribute`: (its state dict, JSON-able info such as the loss history). An attribute with
        an `init` is called with `init_state=` (the weights its f_t starts from)."""

    def load_official(self, attribute: AttributePlan) -> dict[str, torch.Tensor]:
        """The released f_t's state dict (verified against its digest)."""

    def edit(self, attribute: AttributePlan, ft_state: Mapping[str, torch.Tensor], x_T: torch.Tensor, *,
             delta_h_scale: float = 1.0, ids: list[str] | None = None) -> torch.Tensor:
        """The edited images from the inverted latents, with the attribute's t_edit / t_boost, and Δh scaled
        by `delta_h_scale` (on top of the n_train/n_test scaling). `ids` seed each image's own noise."""


class MetricLike(Protocol):
    """A registered metric (`metrics.get_metric(...)`): `compute(EditSet) -> MetricResult`."""

    name: str
    direction: str

    def spec_dict(self) -> dict[str, Any]: ...

    def compute(self, edit_set: Any) -> Any: ...


@dataclass(frozen=True)
class MetricPlan:
    key: str  # column in results, e.g. "sdir"
    metric: MetricLike

    def spec(self) -> dict[str, Any]:
        """The metric's frozen spec (back-end, weights digest, preprocessing, reference) and, for the registered
        metrics, the digest of the metrics code: part of the key."""
        spec = dict(self.metric.spec_dict())
        if type(self.metric).__module__.split(".")[0] == "metrics":
            from benchmark.run.cache import code_digest

            spec["code"] = code_digest("metrics")
        return spec


@dataclass
class SuitePlan:
    suite: str  # "name@version"
    images: Sequence[ImageItem]
    attributes: Sequence[AttributePlan]
    metrics: Sequence[MetricPlan]
    engine: Engine
    make_edit_set: Callable[..., Any]  # metrics.EditSet, injected so the stages do not import metrics/
    train_images: Sequence[ImageItem] = ()
    delta_h_scales: Sequence[float] = (1.0,)  # every attribute is edited at each (the study reports 1 and 0.5)
    batch_size: int = 8
    seeds: dict[str, int] = field(default_factory=lambda: {"global": 0})
    manifest_digests: dict[str, str] = field(default_factory=dict)
    weight_digests: dict[str, str] = field(default_factory=dict)
    references: Sequence[ReferenceValue] = ()
    extra_gates: Sequence[Callable[[Any], list[Gate]]] = ()  # known-answer checks of a suite (synthetic world)
    grid_count: int = 4
    device: Any = "cpu"
    profile: str | None = None
    limit: int | None = None
    notes: list[str] = field(default_factory=list)
    # Seeded noise in place of inverted images (`models.noise_source`); `images` is then filled by the run with the
    # plain DDIM samples, the images the metrics compare edits against.
    noise: Any = None  # the test side's NoiseSourceSpec
    train_noise: Any = None  # the training side's NoiseSourceSpec
