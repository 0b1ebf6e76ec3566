"""The metric contract: `EditSet` in, `MetricResult` out, a frozen spec, and the versioned registry.

A metric's name carries its version (`sdir@1`); a released version never changes meaning, so any change to what
a metric computes (preprocessing, defaults, formula) gets a new version. The spec is everything that decides the
number (back-end, weights digest, preprocessing, reference image), and it is written into every result. Runtime
choices that must not change the number (device, batch size, cache folder) are not in the spec; the result
records them under `provenance`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm.auto import tqdm

from benchmark.core.errors import BenchError, DataError
from benchmark.core.images import check_same_count, check_uint8_images
from benchmark.core.registry import Registry
from benchmark.core.runtime import device_description, resolve_device
from metrics.aggregate import Aggregate
from metrics.backends.registry import get_backend, load_backend, resolve_weights

Reference = Literal["original", "reconstruction"]


@dataclass(frozen=True)
class EditSet:
    """One attribute's images, all uint8 N×3×H×W RGB with the same ids in the same order.

    `reconstruction` (the DDIM reconstruction of each original) may be None; metrics whose spec picks
    `reference="reconstruction"` then refuse to run. `ids` default to "0", "1", ...
    """

    edited: torch.Tensor
    original: torch.Tensor
    reconstruction: torch.Tensor | None = None
    source_text: str | None = None
    target_text: str | None = None
    ids: tuple[str, ...] | None = None

    def __post_init__(self):
        check_uint8_images(self.edited, "edited")
        check_uint8_images(self.original, "original")
        check_same_count(self.edited, self.original, "edited", "original")
        pairs = [("original", self.original)]
        if self.reconstruction is not None:
            check_uint8_images(self.reconstruction, "reconstruction")
            check_same_count(self.edited, self.reconstruction, "edited", "reconstruction")
            pairs.append(("reconstruction", self.reconstruction))
        for name, images in pairs:
            if images.shape[-2:] != self.edited.shape[-2:]:
                raise DataError(f"edited images are {tuple(self.edited.shape[-2:])} but {name} images are "
                                f"{tuple(images.shape[-2:])}; resize both to the same size before measuring")
        ids = tuple(str(i) for i in range(self.edited.shape[0])) if self.ids is None else tuple(map(str, self.ids))
        if len(ids) != self.edited.shape[0]:
            raise DataError(f"{len(ids)} ids for {self.edited.shape[0]} images; give one id per image")
        if len(set(ids)) != len(ids):
            raise DataError("image ids must be unique")
        object.__setattr__(self, "ids", ids)

    def __len__(self) -> int:
        return self.edited.shape[0]

    def reference(self, which: Reference) -> torch.Tensor:
        if which == "original":
            return self.original
        if self.reconstruction is None:
            raise DataError("this metric's spec compares against the reconstruction, but the EditSet has none",
                            fix="pass reconstruction=<DDIM reconstructions>, or use reference='original'")
        return self.reconstruction


@dataclass(frozen=True)
class MetricResult:
    """A metric's outcome on one EditSet.

    `primary` is the headline number. `variants` are other reported forms of the same measurement (S_dir's
    1 − cos, SC's mIoU). `per_image[key]` lists one value per id for the primary (`"value"`) and per-image variants;
    set metrics (FID, KID) have none. `flags[code]` lists the ids a caveat applies to. `spec` is the frozen spec.
    """

    name: str
    direction: str
    primary: Aggregate
    variants: dict[str, Aggregate]
    per_image: dict[str, list[float]]
    ids: list[str]
    flags: dict[str, list[str]]
    spec: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    # Set metrics only: the N×D feature sets the value was computed from ({"edited": ..., "reference": ...}),
    # so a run can keep them and recompute the metric on any subset of its images (e.g. per group).
    feature_sets: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("feature_sets")
        return out


class MetricSpec(BaseModel):
    """Fields shared by every metric spec. Subclasses add their preprocessing fields with defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str
    backend_options: dict[str, Any] = Field(default_factory=dict)
    reference: Reference = "original"
    weights_sha256: str | None = None
    backend_model_id: str | None = None
    bootstrap_resamples: int = Field(1000, ge=0)
    bootstrap_seed: int = 0


def _spec_error(metric: str, spec_cls: type[MetricSpec], err: ValidationError) -> BenchError:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in err.errors())
    fields = ", ".join(spec_cls.model_fields)
    return BenchError(f"invalid spec for metric {metric}: {problems}", fix=f"valid fields are: {fields}")


class Metric(ABC):
    """Base of every registered metric. Subclasses set the class attributes and implement `compute`."""

    name: ClassVar[str]
    direction: ClassVar[Literal["higher", "lower"]]
    backend_kind: ClassVar[str]
    Spec: ClassVar[type[MetricSpec]]
    min_images: ClassVar[int] = 1

    def __init__(self, spec: MetricSpec, *, weights: str | Path | None = None, device: Any = None,
                 batch_size: int = 32, cache_dir: str | Path | None = None):
        entry = get_backend(self.backend_kind, spec.backend)
        path, digest = resolve_weights(entry, weights, spec.weights_sha256)
        self.spec = spec.model_copy(update={"weights_sha256": digest, "backend_model_id": entry.model_id})
        self.weights = path
        self.device = resolve_device(device or "auto")
        if batch_size < 1:
            raise BenchError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.reuse_cache = True  # False (a run with --fresh): recompute what a metric caches (FID's features)

    # -- helpers for subclasses -------------------------------------------------------------------------------
    def backend_options(self) -> dict[str, Any]:
        """Options passed to the back-end loader: the spec's `backend_options` plus the metric's preprocessing."""
        return dict(self.spec.backend_options)

    def backend(self) -> Any:
        return load_backend(self.backend_kind, self.spec.backend, weights=self.weights,
                            expected_sha256=self.spec.weights_sha256, device=self.device, **self.backend_options())

    def batches(self, images: torch.Tensor, desc: str) -> Iterator[torch.Tensor]:
        starts = range(0, images.shape[0], self.batch_size)
        for s in tqdm(starts, desc=f"{self.name} {desc}", unit="batch", leave=False, disable=None):
            yield images[s:s + self.batch_size]

    def check(self, edits: EditSet) -> torch.Tensor:
        if not isinstance(edits, EditSet):
            raise DataError(f"{self.name} expects an EditSet, got {type(edits).__name__}")
        if len(edits) < self.min_images:
            raise DataError(f"{self.name} needs at least {self.min_images} images, got {len(edits)}")
        return edits.reference(self.spec.reference)

    def spec_dict(self) -> dict[str, Any]:
        return {"metric": self.name, "direction": self.direction, **self.spec.model_dump(mode="json")}

    def provenance(self, started: float) -> dict[str, Any]:
        return {"device": device_description(self.device), "batch_size": self.batch_size,
                "seconds": round(time.perf_counter() - started, 4)}

    @abstractmethod
    def compute(self, edits: EditSet) -> MetricResult:
        """Score one EditSet."""


METRICS: Registry[type[Metric]] = Registry("metric")


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator: register a Metric subclass under its versioned `name`."""
    if "@" not in cls.name:
        raise ValueError(f"metric name {cls.name!r} must carry a version, e.g. {cls.name}@1")
    if cls.direction not in ("higher", "lower"):
        raise ValueError(f"metric {cls.name}: direction must be 'higher' or 'lower'")
    METRICS.register(cls.name, cls)
    return cls


def build_spec(name: str, **fields: Any) -> MetricSpec:
    """Validate spec fields for metric `name` (defaults filled in), without loading anything."""
    cls = METRICS.get(name)
    try:
        return cls.Spec(**fields)
    except ValidationError as err:
        raise _spec_error(name, cls.Spec, err) from None


def get_metric(name: str, *, weights: str | Path | None = None, device: Any = None, batch_size: int = 32,
               cache_dir: str | Path | None = None, **spec_fields: Any) -> Metric:
    """The metric `name` (e.g. "sdir@1") with its spec built from `spec_fields` over the defaults.

    `weights` is the local path of the back-end's weights (a real back-end refuses to start without it, naming
    the fetch command); `device` defaults to CUDA when present; `cache_dir` is where FID keeps features.
    Models load on the first `compute` and are reused for the rest of the process.
    """
    cls = METRICS.get(name)
    return cls(build_spec(name, **spec_fields), weights=weights, device=device, batch_size=batch_size,
               cache_dir=cache_dir)


def list_metrics() -> list[dict[str, str]]:
    """Name, direction and one-line description of every registered metric."""
    return [{"name": n, "direction": c.direction, "description": (c.__doc__ or "").strip().splitlines()[0]}
            for n, c in METRICS.items()]


def per_image_lists(values: dict[str, Sequence[float]]) -> dict[str, list[float]]:
    return {k: [float(x) for x in v] for k, v in values.items()}
