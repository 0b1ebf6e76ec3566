"""Suite manifests: what a run edits and measures, with what, at which settings, and its known-answer checks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.dataclasses import dataclass

from benchmark.core.bands import Band
from benchmark.inputs.manifests.schema_common import (
    ManifestName,
    Ref,
    _Header,
    _Strict,
    check_relative_path,
)
from benchmark.inputs.manifests.schema_method import (
    ClipSource,
    HSpaceSpec,
    InitFrom,
    LayerName,
    NoiseSourceSpec,
)


class MetricEntry(_Strict):
    """One measured column: `key` names it in results, `name` is the metric registry name (`sdir@1`)."""

    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$")]
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*@[1-9][0-9]*$")]
    backend: Ref | None = None
    reference: Literal["original", "reconstruction"] = "original"
    options: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Steps:
    """The DDIM step counts (asyrp-reference.md section 4): inversion, training rollout, generation; all grids
    end at `t0`. One type for the suite manifest and the engine that runs it."""

    n_inv: int = Field(ge=1)
    n_train: int = Field(ge=1)
    n_test: int = Field(ge=1)
    t0: int = Field(999, ge=1)


class FtSpec(_Strict):
    """The f_t network. `checkpoints` (attribute name -> model ref) loads released weights instead of training."""

    name: str = "conv"
    options: dict[str, Any] = Field(default_factory=dict)
    checkpoints: dict[str, Ref] | None = None


class FtVariant(_Strict):
    """One arm of an f_t ablation: a registered f_t with its options, and optionally its own optimiser and lr
    (else the suite's `train`). `key` names the arm in results: attribute `smiling` becomes `smiling[key]`.

    An arm may also set where its f_t starts (`init_from`, else `train.init_from`), its h-space layer
    (`hspace_layer`, else the suite's `hspace.layer`), the CLIP source when it trains from noise (`clip_source`,
    else `train.source.clip_source`), and the attributes it applies to (`attributes`, else all)."""

    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    optimizer: Literal["sgd", "adam"] | None = None
    lr: float | None = Field(default=None, gt=0)
    init_from: InitFrom | None = None
    hspace_layer: LayerName | None = None
    clip_source: ClipSource | None = None
    attributes: list[str] | None = Field(default=None, min_length=1)


class TrainSpec(_Strict):
    """Training: the first `n_images` of `dataset`, or `source` (its `n` items of seeded noise);
    `init_from` starts every f_t from existing weights (transfer learning)."""

    dataset: Ref | None = None
    source: NoiseSourceSpec | None = None
    n_images: int | None = Field(default=None, ge=1)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(gt=0)
    loss_form: Literal["official"] = "official"
    init_from: InitFrom | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TrainSpec:
        if (self.dataset is None) == (self.source is None):
            raise ValueError("train needs exactly one of `dataset` (images) and `source` (seeded noise)")
        if (self.dataset is None) != (self.n_images is None):
            raise ValueError("`n_images` goes with `dataset` (a noise `source` has its own `n`)")
        return self


class EditSpec(_Strict):
    """Test-time settings. `delta_h_scale` multiplies Δh on top of the n_train/n_test scaling."""

    delta_h_scale: list[float] = Field(default_factory=lambda: [1.0], min_length=1)
    eta_after_boost: float = 1.0

    @field_validator("eta_after_boost")
    @classmethod
    def _eta_is_the_authors(cls, value: float) -> float:
        # The sampler hard-codes the authors' quality boosting (eta = 1 below t_boost); a different value here
        # would be accepted and silently not applied, so it is refused.
        if value != 1.0:
            raise ValueError(f"eta_after_boost={value} is not supported: the sampler uses eta = 1 below t_boost "
                             "(the authors' quality boosting); set the attribute's t_boost to 0 to sample without noise")
        return value


class TSelect(_Strict):
    """t_edit / t_boost from the base model's own LPIPS curves (the authors' rule, `models.t_select`) instead of
    the attribute manifests' values, which belong to the pixel DDPM. `curves`: a repository-relative folder with
    `{prefix}_LPIPS_distance_x.tsv` and `{prefix}_LPIPS_distance_x0_t.tsv` (+ `_std`), as written by
    `python -m benchmark.plan.lpips_curves`. The text cosine of each attribute comes from the loss CLIP."""

    curves: str | None = Field(default=None, min_length=1)
    tables: Ref | None = None  # instead of `curves`: a model manifest whose files are the tables (fetched, pinned)
    prefix: ManifestName
    edit_threshold: float = Field(0.33, gt=0)
    boost_threshold: float = Field(1.2, gt=0)
    apply: Literal["all", "unset"] = "all"  # unset: only t_edit of attributes whose manifest leaves it null

    @field_validator("curves")
    @classmethod
    def _relative(cls, v: str | None) -> str | None:
        return None if v is None else check_relative_path(v, "curves folder")

    @model_validator(mode="after")
    def _one_place(self) -> TSelect:
        if (self.curves is None) == (self.tables is None):
            raise ValueError("t_select needs exactly one of `curves` (a repository folder) and `tables` (a model "
                             "manifest of the table files)")
        return self


class Resources(_Strict):
    disk_gb: float = Field(default=1.0, ge=0)


class Profile(_Strict):
    """Overrides deep-merged into the suite document (dicts merge, lists and scalars replace)."""

    description: str = Field(min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict)


class KnownAnswerTarget(_Strict):
    """The factor an attribute should move (a name of the measure's factors) and the sign of the move."""

    factor: str = Field(min_length=1)
    sign: Literal[1, -1] = 1


CheckKind = Literal["known_answer", "claim"]
KNOWN_ANSWER: CheckKind = "known_answer"
CLAIM: CheckKind = "claim"


class CheckBand(Band):
    """A check's band: its interval (`lower`/`upper`) and why it is what it is. `gate` is the spelling of manifests
    written before checks had a `kind` (true: a known answer, false: a claim); new manifests write `kind`."""

    gate: bool | None = None
    rationale: str = Field(min_length=1)


class KnownAnswerCheck(_Strict):
    """One check of a suite: a named computation (`benchmark.checks.known_answers.CHECKS`), its kind and its band.

    `kind: known_answer`: what the world guarantees by construction (Δh = 0 is exact, the reconstruction floor, an
    in-domain target factor moving by its margin); it gates, so `run --gate` exits 1 when it fails.
    `kind: claim`: a claim of the paper under test (disentanglement, linearity, consistency, ...); it is reported
    as holding or not in this world, never gates. A claim with an open band is reported without a verdict.
    Either way the band is set before looking at results, with a rationale, and is never moved to make a check pass.
    A manifest without `kind` (written before kinds existed) says it with `band.gate`.
    """

    check: str = Field(min_length=1)
    attribute: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    kind: CheckKind
    band: CheckBand

    @model_validator(mode="before")
    @classmethod
    def _kind_from_legacy_gate(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kind" not in data and isinstance(data.get("band"), dict):
            gate = data["band"].get("gate")
            if gate is None:
                raise ValueError("a check needs `kind: known_answer` or `kind: claim`")
            data = {**data, "kind": KNOWN_ANSWER if gate else CLAIM}
        return data

    @model_validator(mode="after")
    def _consistent_kind(self) -> KnownAnswerCheck:
        if self.band.gate is not None and self.band.gate != (self.kind == KNOWN_ANSWER):
            raise ValueError(f"`kind: {self.kind}` contradicts `band.gate: {str(self.band.gate).lower()}`; "
                             "write `kind` only")
        if self.kind == KNOWN_ANSWER and self.band.is_open:
            raise ValueError("a known answer needs a band with `lower` and/or `upper`")
        return self

    @property
    def has_verdict(self) -> bool:
        """A band with an end gives a verdict (pass/fail, holds/does not hold); an open band only reports."""
        return not self.band.is_open


class ClipProjection(_Strict):
    """Measure with a CLIP instead of an oracle: one factor per suite attribute, cos(E_I(image), ΔT_attribute)
    (`metrics.clip_projection`). `templates` and `image_preprocess` mean what they mean for S_dir."""

    templates: bool = True
    image_preprocess: Literal["open_clip", "tensor"] = "open_clip"


class KnownAnswers(_Strict):
    """The synthetic world's equivalent of paper values: checks whose right answer is known in advance; in the
    real world, where no answer is known, the same checks with the paper's claims as reported bands.

    `measure` is the model whose loader gives the factor measure: a factor oracle, or, with `clip_projection`, a
    CLIP back-end whose factors are the suite's attributes' text directions. `targets` maps each attribute to
    the factor it should move and the sign it should move it in; the h-space properties are computed on the first
    `n_images` test images (`figure_images` of them also go into the figures).
    """

    measure: Ref
    clip_projection: ClipProjection | None = None
    targets: dict[str, KnownAnswerTarget]
    n_images: int = Field(ge=2)
    figure_images: int = Field(default=4, ge=1)
    linearity_scales: list[float] = Field(default_factory=lambda: [-1.0, -0.5, 0.0, 0.5, 1.0], min_length=3)
    combination: list[str] | None = Field(default=None, min_length=2, max_length=2)
    combination_coefficients: list[float] = Field(default_factory=lambda: [0.0, 0.5, 1.0], min_length=2)
    t_edit_sweep: list[int] = Field(default_factory=list)
    checks: list[KnownAnswerCheck] = Field(min_length=1)

    @model_validator(mode="after")
    def _targets_known(self) -> KnownAnswers:
        for name in [*(self.combination or []), *(c.attribute for c in self.checks if c.attribute)]:
            base = name.split("+")[0]
            if base not in self.targets and "+" not in name and base != "ddim":
                raise ValueError(f"known-answer attribute {name!r} has no entry in `targets`")
        return self


class SuiteManifest(_Header):
    kind: Literal["suite"]
    dataset: Ref | None = None  # the test images; absent when `source` is seeded noise
    source: NoiseSourceSpec | None = None  # edit from seeded noise instead of inverted images
    default_attributes: list[str] | None = Field(default=None, min_length=1)  # run without --attributes
    hspace: HSpaceSpec = Field(default_factory=HSpaceSpec)
    metrics_omitted: dict[str, str] = Field(default_factory=dict)  # metric key -> why the suite leaves it out
    base_model: Ref
    clip_loss_model: Ref
    ft: FtSpec = Field(default_factory=FtSpec)
    ft_variants: list[FtVariant] | None = Field(default=None, min_length=1)  # an ablation: every arm trained
    attributes: list[Ref] = Field(min_length=1)
    steps: Steps
    train: TrainSpec | None = None
    edit: EditSpec = Field(default_factory=EditSpec)
    t_select: TSelect | None = None
    metrics: list[MetricEntry] = Field(min_length=1)
    paper_values: Ref | None = None
    requires: Literal["cuda", "cpu-ok"]
    seeds: dict[str, int] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    profiles: dict[str, Profile] = Field(default_factory=dict)
    known_answers: KnownAnswers | None = None
    # Train the attributes that share the training settings in one pass and edit every attribute × Δh scale in
    # one batch (false: one attribute at a time, with the reference trajectory cached at inversion). Each f_t is
    # an exact batch-1 run either way; the two differ by float rounding (docs/speed.md, docs/performance.md).
    attribute_batching: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> SuiteManifest:
        keys = [m.key for m in self.metrics]
        if len(set(keys)) != len(keys):
            raise ValueError(f"metric keys must be unique, got {keys}")
        if self.train is None and not self.ft.checkpoints:
            raise ValueError("a suite either trains f_t (`train`) or loads released weights (`ft.checkpoints`)")
        if self.ft_variants is not None:
            variant_keys = [v.key for v in self.ft_variants]
            if len(set(variant_keys)) != len(variant_keys):
                raise ValueError(f"ft_variants keys must be unique, got {variant_keys}")
            if self.train is None or self.ft.checkpoints:
                raise ValueError("`ft_variants` trains every arm: it needs `train` and no `ft.checkpoints`")
        if (self.dataset is None) == (self.source is None):
            raise ValueError("a suite needs exactly one of `dataset` (test images) and `source` (seeded noise)")
        names = [a.split("@")[0] for a in self.attributes]
        for what, listed in (("default_attributes", self.default_attributes or []),
                             *((f"ft_variants[{v.key}].attributes", v.attributes or [])
                               for v in self.ft_variants or [])):
            stray = [a for a in listed if a not in names]
            if stray:
                raise ValueError(f"{what} names attributes the suite does not edit: {stray}")
        noise_training = self.train is not None and self.train.source is not None
        if any(v.clip_source for v in self.ft_variants or []) and not noise_training:
            raise ValueError("an arm's `clip_source` applies to training from seeded noise (`train.source`)")
        clash = sorted(set(self.metrics_omitted) & {m.key for m in self.metrics})
        if clash:
            raise ValueError(f"metrics_omitted names metrics the suite measures: {clash}")
        if self.known_answers is not None and 1.0 not in self.edit.delta_h_scale:
            # the checks measure each attribute's edit at the trained strength, the one named after the attribute
            raise ValueError(f"known_answers measure the Delta h scale 1.0 edit: add 1.0 to edit.delta_h_scale "
                             f"(got {self.edit.delta_h_scale})")
        return self
