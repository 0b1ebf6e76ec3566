"""Versioned YAML manifests: schemas, safe loading, `name@version` references and suite resolution.

Five kinds live under `manifests/<kind>s/`: datasets, models, attributes, suites and paper values. Each file is
one manifest with `schema_version`, `kind`, `name` and an integer `version`; a released version never changes
meaning, so anything that changes what a result means gets a new version. A manifest's digest is
`json_digest()` of the parsed document (the YAML as data, not its bytes: comments and key order do not count).

`resolve_suite("paper-table", profile="tiny")` applies a profile, validates the merged suite and resolves every
reference to a concrete manifest with its digest (`ResolvedSuite`), so a run can record exactly what it used.
The shapes are documented for users in `docs/manifests.md`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from benchmark.core.errors import BenchError, ManifestError, UnknownNameError
from benchmark.core.hashing import json_digest
from benchmark.core.paths import manifests_dir
from benchmark.core.registry import suggest, unknown_name_message

SCHEMA_VERSION = 1

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Revision = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
ManifestName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=80)]
Ref = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*(@[1-9][0-9]*)?$")]
ItemId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=120)]

KINDS = ("dataset", "model", "attribute", "suite", "paper_values")
_KIND_DIRS = {"dataset": "datasets", "model": "models", "attribute": "attributes", "suite": "suites",
              "paper_values": "paper_values"}
_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*)(?:@(?P<version>[1-9][0-9]*))?$")


def check_relative_path(value: str, what: str = "path") -> str:
    """A POSIX path relative to its root with no `..`, no backslashes and no drive: manifests never escape a root."""
    if not value or "\\" in value or value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{what} {value!r} must be a relative POSIX path (no leading '/', '~', drive or '\\')")
    if ".." in PurePosixPath(value).parts:
        raise ValueError(f"{what} {value!r} must not contain '..' (paths may not escape their root)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Header(_Strict):
    schema_version: Literal[1]
    name: ManifestName
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    license: str | None = None
    provenance: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


# ---------------------------------------------------------------------------------------------------- models


class WeightFile(_Strict):
    """One file of a model. `sha256`/`size` may be null until `lock` records them on first fetch."""

    path: str = Field(min_length=1)
    sha256: Sha256 | None = None
    size: int | None = Field(default=None, ge=1)
    url: str | None = None

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        return check_relative_path(v, "file path")

    @field_validator("url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s]+$", v):
            raise ValueError(f"url {v!r} must be an http(s) URL")
        return v


class HubSource(_Strict):
    """Files of a Hugging Face Hub repository at a pinned commit (never a branch name)."""

    type: Literal["hub"]
    repo_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")]
    revision: Revision
    files: list[WeightFile] = Field(min_length=1)


class UrlSource(_Strict):
    """Plain URLs; every file names its `url` and the local `path` it is saved under."""

    type: Literal["url"]
    files: list[WeightFile] = Field(min_length=1)

    @model_validator(mode="after")
    def _urls(self) -> UrlSource:
        missing = [f.path for f in self.files if not f.url]
        if missing:
            raise ValueError(f"url source: files {missing} have no `url`")
        return self


class LocalSource(_Strict):
    """Files shipped inside the repository (paths relative to the repository root), e.g. the synthetic world's."""

    type: Literal["local"]
    files: list[WeightFile] = Field(min_length=1)


class PackageSource(_Strict):
    """Files a pip package installs (paths relative to the folder of its import `module`), e.g. dlib's face models
    in face-recognition-models: nothing to download, but the digests are still pinned and checked."""

    type: Literal["package"]
    package: str = Field(min_length=1)
    version: str = Field(min_length=1)
    module: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]
    files: list[WeightFile] = Field(min_length=1)


class RandomSource(_Strict):
    """A tiny randomly initialised model for CPU tests: no files, a seed and the constructor config."""

    type: Literal["random"]
    seed: int = 0
    config: dict[str, Any] = Field(default_factory=dict)


Source = Annotated[HubSource | UrlSource | LocalSource | PackageSource | RandomSource, Field(discriminator="type")]


class ModelManifest(_Header):
    kind: Literal["model"]
    loader: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    loader_args: dict[str, Any] = Field(default_factory=dict)
    source: Source

    @property
    def files(self) -> list[WeightFile]:
        return [] if isinstance(self.source, RandomSource) else list(self.source.files)


# ---------------------------------------------------------------------------------------------------- datasets


class Preprocessing(_Strict):
    """How a source image becomes the canonical uint8 `image_size`² RGB image (see docs/data.md).

    - `resize`: `pil-bilinear` = PIL's BILINEAR resample (antialiased when shrinking), which is what
      DiffusionCLIP's `prepare_lmdb_data.py` (default `--resample bilinear`) applied to build the LMDB the
      authors trained and tested on.
    - `jpeg_quality`: re-encode the resized image as JPEG with this quality (Pillow defaults otherwise) and decode
      it again, as the LMDB stores JPEG q=100; null skips the round trip.
    Images already at `image_size` are taken as they are (they are the LMDB's own bytes or canonical PNGs).
    """

    name: ManifestName
    resize: Literal["pil-bilinear"] = "pil-bilinear"
    jpeg_quality: int | None = Field(default=None, ge=1, le=100)


class Distribution(_Strict):
    """One way the same images are distributed.

    `layout: files` reads `template` (a relative path with `{field}` placeholders filled from the item) from a
    folder or from a zip; `layout: lmdb` reads the key `template` from an LMDB (`{position}` = index in `items`).
    """

    layout: Literal["files", "lmdb"]
    template: str = Field(min_length=1)
    image_size: int = Field(ge=8)
    format: Literal["jpeg", "png"]
    description: str | None = None

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        fields = re.findall(r"{([^{}:!]*)", v)
        if not fields:
            raise ValueError(f"template {v!r} has no {{field}} placeholder")
        check_relative_path(re.sub(r"{[^{}]*}", "x", v), "template")
        return v


class Selection(_Strict):
    """The rule that defines the membership, kept even when `items` pins it, so the definition is on record.

    `listing` is a folder inside a `files` distribution; the dataset is the first `count` file names matching
    `pattern` in sorted order. When `items` is empty this rule is applied to the user's copy and `lock` records
    the membership it found.
    """

    rule: str = Field(min_length=1)
    distribution: str
    listing: str
    pattern: str = "*.jpg"
    id_from: Literal["stem"] = "stem"
    name_field: str = "celeba_file"

    @field_validator("listing")
    @classmethod
    def _listing(cls, v: str) -> str:
        return check_relative_path(v, "listing")


class DatasetItem(BaseModel):
    """One image. Extra fields (indices, file names, the synthetic world's true factors) are allowed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: ItemId
    sha256: dict[str, Sha256 | None] = Field(default_factory=dict)


class DatasetManifest(_Header):
    kind: Literal["dataset"]
    image_size: int = Field(ge=8)
    count: int = Field(ge=1)
    preprocessing: Preprocessing
    distributions: dict[str, Distribution] = Field(min_length=1)
    selection: Selection | None = None
    items: list[DatasetItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetManifest:
        if not self.items and self.selection is None:
            raise ValueError("a dataset needs `items`, or a `selection` rule when the membership is not yet pinned")
        if self.items and len(self.items) != self.count:
            raise ValueError(f"`count` is {self.count} but {len(self.items)} items are listed")
        ids = [it.id for it in self.items]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate item ids: {dupes[:5]}")
        for it in self.items:
            unknown = set(it.sha256) - set(self.distributions)
            if unknown:
                raise ValueError(f"item {it.id!r} has digests for unknown distributions {sorted(unknown)}")
        if self.selection is not None:
            dist = self.distributions.get(self.selection.distribution)
            if dist is None or dist.layout != "files":
                raise ValueError(f"selection.distribution {self.selection.distribution!r} must name a `files` "
                                 "distribution of this dataset")
        return self

    @property
    def pinned(self) -> bool:
        """True when the manifest lists its items (the membership does not depend on the user's copy)."""
        return bool(self.items)


# ---------------------------------------------------------------------------------------------------- attributes


class AttributeManifest(_Header):
    kind: Literal["attribute"]
    source_prompt: str = Field(min_length=1)
    target_prompt: str = Field(min_length=1)
    domain: Literal["in-domain", "unseen"]
    t_edit: int = Field(ge=0, le=999)
    t_boost: int = Field(ge=0, le=999)
    lambda_clip: float = Field(gt=0)
    lambda_recon: float = Field(ge=0)
    lambda_recon_times_text_cosine: bool = True

    @model_validator(mode="after")
    def _order(self) -> AttributeManifest:
        if self.t_boost > self.t_edit:
            raise ValueError(f"t_boost ({self.t_boost}) must not exceed t_edit ({self.t_edit})")
        return self


# ---------------------------------------------------------------------------------------------------- suites


class MetricEntry(_Strict):
    """One measured column: `key` names it in results, `name` is the metric registry name (`sdir@1`)."""

    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$")]
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*@[1-9][0-9]*$")]
    backend: Ref | None = None
    reference: Literal["original", "reconstruction"] = "original"
    options: dict[str, Any] = Field(default_factory=dict)


class Steps(_Strict):
    n_inv: int = Field(ge=1)
    n_train: int = Field(ge=1)
    n_test: int = Field(ge=1)


class FtSpec(_Strict):
    """The f_t network. `checkpoints` (attribute name -> model ref) loads released weights instead of training."""

    name: str = "conv"
    options: dict[str, Any] = Field(default_factory=dict)
    checkpoints: dict[str, Ref] | None = None


class FtVariant(_Strict):
    """One arm of an f_t ablation: a registered f_t with its options, and optionally its own optimiser and lr
    (else the suite's `train`). `key` names the arm in results: attribute `smiling` becomes `smiling[key]`."""

    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    optimizer: Literal["sgd", "adam"] | None = None
    lr: float | None = Field(default=None, gt=0)


class TrainSpec(_Strict):
    dataset: Ref
    n_images: int = Field(ge=1)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(gt=0)
    loss_form: Literal["official"] = "official"


class EditSpec(_Strict):
    """Test-time settings. `delta_h_scale` multiplies Δh on top of the n_train/n_test scaling."""

    delta_h_scale: list[float] = Field(default_factory=lambda: [1.0], min_length=1)
    eta_after_boost: float = 1.0


class TSelect(_Strict):
    """t_edit / t_boost from the base model's own LPIPS curves (the authors' rule, `models.t_select`) instead of
    the attribute manifests' values, which belong to the pixel DDPM. `curves`: a repository-relative folder with
    `{prefix}_LPIPS_distance_x.tsv` and `{prefix}_LPIPS_distance_x0_t.tsv` (+ `_std`), as written by
    `python -m benchmark.plan.lpips_curves`. The text cosine of each attribute comes from the loss CLIP."""

    curves: str = Field(min_length=1)
    prefix: ManifestName
    edit_threshold: float = Field(0.33, gt=0)
    boost_threshold: float = Field(1.2, gt=0)

    @field_validator("curves")
    @classmethod
    def _relative(cls, v: str) -> str:
        return check_relative_path(v, "curves folder")


class Resources(_Strict):
    disk_gb: float = Field(default=1.0, ge=0)


class Profile(_Strict):
    """Overrides deep-merged into the suite document (dicts merge, lists and scalars replace)."""

    description: str = Field(min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict)


class Band(_Strict):
    """Acceptance band for a result compared with a reference value. `gate: false` = shown, never gated."""

    lower: float | None = None
    upper: float | None = None
    gate: bool
    rationale: str = Field(min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> Band:
        if self.gate and self.lower is None and self.upper is None:
            raise ValueError("a gating band needs `lower` and/or `upper`")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"band lower {self.lower} > upper {self.upper}")
        return self


class KnownAnswerTarget(_Strict):
    """The factor an attribute should move (a name of the measure's factors) and the sign of the move."""

    factor: str = Field(min_length=1)
    sign: Literal[1, -1] = 1


class KnownAnswerCheck(_Strict):
    """One known-answer check of a suite: a named computation (`benchmark.checks.known_answers.CHECKS`) and its band.

    The band is set from what the method should achieve, before looking at results, with a rationale; a check
    whose band has `gate: false` is reported (value, band, reached or not) but never fails a run.
    """

    check: str = Field(min_length=1)
    attribute: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    band: Band


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
    dataset: Ref
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
        return self


# ---------------------------------------------------------------------------------------------------- paper values


class PaperValue(_Strict):
    metric: str
    attribute: str
    column: Literal["paper", "reproduction-study"]
    variant: str = "primary"
    value: float | None
    std: float | None = None
    n: int | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    provenance: str = Field(min_length=1)
    band: Band | None = None

    @model_validator(mode="after")
    def _missing_is_null(self) -> PaperValue:
        if self.value is None and self.band is not None:
            raise ValueError(f"{self.metric}/{self.attribute}/{self.column}: a value that is not reported "
                             "(null) has no band")
        if self.value is not None and self.band is None:
            raise ValueError(f"{self.metric}/{self.attribute}/{self.column}: a reported value needs a `band`")
        return self


class PaperValuesManifest(_Header):
    kind: Literal["paper_values"]
    values: list[PaperValue] = Field(min_length=1)


MANIFEST_CLASSES: dict[str, type[_Header]] = {
    "dataset": DatasetManifest, "model": ModelManifest, "attribute": AttributeManifest,
    "suite": SuiteManifest, "paper_values": PaperValuesManifest,
}
AnyManifest = DatasetManifest | ModelManifest | AttributeManifest | SuiteManifest | PaperValuesManifest


# ---------------------------------------------------------------------------------------------------- loading


def _describe_location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def schema_error(path: str | Path, err: ValidationError, cls: type[BaseModel] | None = None) -> ManifestError:
    """Turn a pydantic error into a ManifestError that names the file, each field and what was expected."""
    lines = []
    for e in err.errors()[:8]:
        got = e.get("input")
        got_s = "" if isinstance(got, dict | list) else f" (got {got!r})"
        msg = e["msg"]
        if e["type"] == "extra_forbidden" and cls is not None and len(e["loc"]) == 1:
            hint = suggest(str(e["loc"][0]), list(cls.model_fields))
            msg = "unknown field" + (f" (did you mean {hint[0]}?)" if hint else "")
        lines.append(f"  - {_describe_location(e['loc'])}: {msg}{got_s}")
    more = f"\n  ... and {len(err.errors()) - 8} more" if len(err.errors()) > 8 else ""
    return ManifestError(f"{path}: does not match the manifest schema:\n" + "\n".join(lines) + more,
                         fix="correct the fields listed above; docs/manifests.md describes every field")


def parse_yaml(text: str, path: str | Path = "<string>") -> dict[str, Any]:
    """`yaml.safe_load` with errors that name the file and line; the document must be a mapping."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ManifestError(f"{path}: malformed YAML{where}: {problem}",
                            fix="fix the YAML syntax (indentation, quoting, ':' after keys)") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: expected a YAML mapping at the top level, got {type(doc).__name__}",
                            fix="a manifest is a mapping with schema_version, kind, name, version, ...")
    return doc


def manifest_from_dict(doc: dict[str, Any], path: str | Path = "<dict>") -> AnyManifest:
    """Validate a parsed document against the schema of its `kind`."""
    kind = doc.get("kind")
    if kind not in MANIFEST_CLASSES:
        raise ManifestError(f"{path}: {unknown_name_message('manifest kind', str(kind), list(KINDS))}",
                            fix="set `kind` to one of: " + ", ".join(KINDS))
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(f"{path}: schema_version {doc.get('schema_version')!r} is not supported "
                            f"(this harness reads schema_version {SCHEMA_VERSION})",
                            fix=f"set `schema_version: {SCHEMA_VERSION}` or upgrade asyrp-bench")
    try:
        return MANIFEST_CLASSES[kind].model_validate(doc)  # type: ignore[return-value]
    except ValidationError as e:
        raise schema_error(path, e, MANIFEST_CLASSES[kind]) from None


def load_manifest(path: str | Path) -> LoadedManifest:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ManifestError(f"{path}: cannot be read ({e.strerror})", fix="check the path and permissions") from None
    doc = parse_yaml(text, path)
    return LoadedManifest(manifest_from_dict(doc, path), json_digest(doc), path, doc)


@dataclass(frozen=True)
class LoadedManifest:
    manifest: AnyManifest
    digest: str
    path: Path
    document: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        return self.manifest.ref


def unknown_message(kind: str, name: str, choices: list[str], limit: int = 12) -> str:
    """Did-you-mean message that stays a few lines long when there are many choices."""
    if len(choices) <= limit:
        return unknown_name_message(kind, name, choices)
    hint = suggest(name, choices)
    msg = f"Unknown {kind} {name!r}." + (" Did you mean: " + ", ".join(hint) + "?" if hint else "")
    return msg + f" ({len(choices)} available; `python run_all.py ls` lists them)"


def parse_ref(ref: str) -> tuple[str, int | None]:
    m = _REF.match(ref or "")
    if not m:
        raise ManifestError(f"reference {ref!r} is not of the form name@version (e.g. smiling@1)",
                            fix="write the reference as name@version, or a bare name for the latest version")
    return m["name"], int(m["version"]) if m["version"] else None


class ManifestRegistry:
    """All manifests under a root folder, indexed by kind, name and version.

    Loading never stops at the first bad file: `errors` collects a ManifestError per bad manifest so `validate`
    can list them all. Lookups of unknown names raise UnknownNameError with did-you-mean suggestions.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else manifests_dir()
        self._by_kind: dict[str, dict[str, dict[int, LoadedManifest]]] = {k: {} for k in KINDS}
        self.errors: list[ManifestError] = []
        for path in sorted(self._files()):
            self._add_file(path)

    def _files(self) -> Iterator[Path]:
        for kind in KINDS:
            folder = self.root / _KIND_DIRS[kind]
            if folder.is_dir():
                yield from (p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())

    def _add_file(self, path: Path) -> None:
        try:
            loaded = load_manifest(path)
        except ManifestError as e:
            self.errors.append(e)
            return
        m = loaded.manifest
        expected_dir = _KIND_DIRS[m.kind]
        if path.relative_to(self.root).parts[0] != expected_dir:
            self.errors.append(ManifestError(f"{path}: a {m.kind} manifest must live under {expected_dir}/",
                                             fix=f"move it to {self.root / expected_dir}/"))
            return
        versions = self._by_kind[m.kind].setdefault(m.name, {})
        if m.version in versions:
            self.errors.append(ManifestError(f"{path}: {m.kind} {m.ref} is also defined in {versions[m.version].path}",
                                             fix="give one of them a new version (a released version never "
                                                 "changes meaning)"))
            return
        versions[m.version] = loaded

    def names(self, kind: str) -> list[str]:
        """Every `name@version` of a kind, sorted."""
        return sorted(f"{n}@{v}" for n, vs in self._by_kind[kind].items() for v in vs)

    def all(self, kind: str | None = None) -> list[LoadedManifest]:
        kinds = [kind] if kind else list(KINDS)
        return [lm for k in kinds for vs in self._by_kind[k].values() for lm in vs.values()]

    def get(self, kind: str, ref: str) -> LoadedManifest:
        """Resolve `name@version` (or bare `name` = latest version) of a kind."""
        name, version = parse_ref(ref)
        versions = self._by_kind[kind].get(name)
        label = kind.replace("_", " ")
        if not versions:
            raise UnknownNameError(unknown_message(label, ref, self.names(kind)),
                                   fix=f"use one of the {label} manifests under {self.root / _KIND_DIRS[kind]}/")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise UnknownNameError(f"Unknown {label} version {ref!r}. Available: "
                                   + ", ".join(f"{name}@{v}" for v in sorted(versions)),
                                   fix="pick an existing version; a released version never changes meaning")
        return versions[version]


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Dicts merge key by key; lists and scalars in `overrides` replace those in `base`."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Resolved:
    """A manifest a suite refers to, with the digest a result records."""

    ref: str
    digest: str
    manifest: Any
    path: Path


@dataclass(frozen=True)
class ResolvedSuite:
    """Everything a run of a suite depends on, resolved to concrete manifests with their digests.

    Only `ResolutionErrors.partial` holds one with None in place of what did not resolve.
    """

    ref: str
    profile: str | None
    digest: str
    suite: SuiteManifest
    dataset: Resolved
    train_dataset: Resolved | None
    base_model: Resolved
    clip_loss_model: Resolved
    attributes: dict[str, Resolved]
    ft_checkpoints: dict[str, Resolved]
    metric_backends: dict[str, Resolved]
    paper_values: Resolved | None
    known_answer_measure: Resolved | None = None  # the factor oracle of the suite's known-answer checks

    def models(self) -> dict[str, Resolved]:
        """Every model manifest the suite needs, keyed by `name@version` (deduplicated)."""
        found = [self.base_model, self.clip_loss_model, *self.ft_checkpoints.values(), *self.metric_backends.values(),
                 self.known_answer_measure]
        return {r.ref: r for r in found if r is not None}

    def manifest_digests(self) -> dict[str, str]:
        """`kind:name@version` -> digest of every manifest used: what `run.manifest_digests` records."""
        out = {f"suite:{self.ref}": self.digest}
        pairs: list[tuple[str, Resolved | None]] = [("dataset", self.dataset), ("dataset", self.train_dataset),
                                                    ("paper_values", self.paper_values)]
        pairs += [("attribute", r) for r in self.attributes.values()]
        pairs += [("model", r) for r in self.models().values()]
        for kind, r in pairs:
            if r is not None:
                out[f"{kind}:{r.ref}"] = r.digest
        return dict(sorted(out.items()))


class ResolutionErrors(ManifestError):
    """Several problems found while resolving a suite; `problems` holds each one."""

    def __init__(self, suite: str, problems: list[Exception], partial: ResolvedSuite | None = None):
        self.problems = problems
        self.partial = partial  # what did resolve (unresolved parts are None), so `validate` can go on
        body = "\n".join(f"  - {p}".replace("\n", "\n    ") for p in problems)
        super().__init__(f"suite {suite}: {len(problems)} problem(s) while resolving:\n{body}",
                         fix="fix each problem listed; `python run_all.py validate --suite ...` lists them too")


def suite_with_profile(loaded: LoadedManifest, profile: str | None) -> tuple[SuiteManifest, str]:
    """The suite after applying `profile`, and its digest (of the merged document)."""
    suite = loaded.manifest
    assert isinstance(suite, SuiteManifest)
    if profile is None:
        return suite, loaded.digest
    if profile not in suite.profiles:
        raise UnknownNameError(unknown_name_message(f"profile of suite {suite.ref}", profile, list(suite.profiles)),
                               fix="pick one of the suite's profiles, or leave --profile out")
    merged = deep_merge({k: v for k, v in loaded.document.items() if k != "profiles"},
                        suite.profiles[profile].overrides)
    merged["profiles"] = {}
    merged_suite = manifest_from_dict(merged, f"{loaded.path} (profile {profile})")
    assert isinstance(merged_suite, SuiteManifest)
    return merged_suite, json_digest({"suite": loaded.digest, "profile": profile, "merged": merged})


def resolve_suite(ref: str, *, profile: str | None = None, registry: ManifestRegistry | None = None,
                  known_metrics: Iterable[str] | None = None) -> ResolvedSuite:
    """Resolve a suite and everything it names. All unknown references are reported together.

    `known_metrics` (the metric registry's names) lets unknown metric names fail here with did-you-mean.
    """
    registry = registry or ManifestRegistry()
    loaded = registry.get("suite", ref)
    suite, digest = suite_with_profile(loaded, profile)
    problems: list[Exception] = []
    seen: dict[tuple[str, str], Resolved | None] = {}

    def get(kind: str, r: str | None) -> Resolved | None:
        if r is None:
            return None
        if (kind, r) not in seen:  # a ref used twice is resolved (and reported) once
            try:
                lm = registry.get(kind, r)
                seen[kind, r] = Resolved(lm.ref, lm.digest, lm.manifest, lm.path)
            except BenchError as e:
                problems.append(e)
                seen[kind, r] = None
        return seen[kind, r]

    dataset = get("dataset", suite.dataset)
    train_dataset = get("dataset", suite.train.dataset) if suite.train else None
    base_model = get("model", suite.base_model)
    clip_model = get("model", suite.clip_loss_model)
    attributes: dict[str, Resolved] = {}
    for a in suite.attributes:
        r = get("attribute", a)
        if r is not None:
            attributes[r.manifest.name] = r
    ft_checkpoints: dict[str, Resolved] = {}
    for attr, mref in (suite.ft.checkpoints or {}).items():
        if attr not in attributes and not any(parse_ref(a)[0] == attr for a in suite.attributes):
            problems.append(ManifestError(f"ft.checkpoints names attribute {attr!r}, which the suite does not edit",
                                          fix="add the attribute to `attributes` or remove its checkpoint"))
        r = get("model", mref)
        if r is not None:
            ft_checkpoints[attr] = r
    if suite.ft.checkpoints:
        for name in attributes:
            if name not in suite.ft.checkpoints:
                problems.append(ManifestError(f"attribute {name!r} has no released checkpoint in ft.checkpoints",
                                              fix="add one, or train f_t for it instead"))
    backends: dict[str, Resolved] = {}
    known = sorted(set(known_metrics)) if known_metrics is not None else None
    for m in suite.metrics:
        if known is not None and m.name not in known:
            problems.append(UnknownNameError(unknown_name_message("metric", m.name, known),
                                             fix="use a registered metric name (`python run_all.py ls`)"))
        r = get("model", m.backend)
        if r is not None:
            backends[m.key] = r
    paper_values = get("paper_values", suite.paper_values)
    measure = get("model", suite.known_answers.measure) if suite.known_answers else None
    ka = suite.known_answers
    if ka is not None and ka.clip_projection is not None:  # its factors are the attributes' text directions
        stray = sorted({t.factor for t in ka.targets.values()} - {parse_ref(a)[0] for a in suite.attributes})
        if stray:
            problems.append(ManifestError(
                f"known_answers.clip_projection measures the suite's attributes; targets name other factors {stray}",
                fix="name each target's factor after the attribute itself (e.g. smiling: {factor: smiling})"))
    resolved = ResolvedSuite(ref=suite.ref, profile=profile, digest=digest, suite=suite, dataset=dataset,
                             train_dataset=train_dataset, base_model=base_model, clip_loss_model=clip_model,
                             attributes=attributes, ft_checkpoints=ft_checkpoints, metric_backends=backends,
                             paper_values=paper_values, known_answer_measure=measure)
    if problems:
        raise ResolutionErrors(suite.ref, problems, partial=resolved)
    return resolved
