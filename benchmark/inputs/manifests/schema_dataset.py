"""Dataset manifests: the images' membership, how they are distributed and how they become canonical images."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from benchmark.inputs.manifests.schema_common import (
    ItemId,
    ManifestName,
    Sha256,
    _Header,
    _Strict,
    check_relative_path,
)


class Preprocessing(_Strict):
    """How a source image becomes the canonical uint8 `image_size`² RGB image (see docs/data.md).

    - `resize`: `pil-bilinear` = PIL's BILINEAR resample (antialiased when shrinking), which is what
      DiffusionCLIP's `prepare_lmdb_data.py` (default `--resample bilinear`) applied to build the LMDB the
      authors trained and tested on.
    - `resize: shorter-side-center-crop` = torchvision's `Resize(image_size)` then `CenterCrop(image_size)` on the
      PIL image, as DiffusionCLIP's LSUN dataset (which Asyrp reads) transforms the LSUN LMDB's images (their
      shorter side is already 256, so only the crop changes them).
    - `resize: pil-bicubic` = PIL's BICUBIC, the filter of a plain `Image.resize((w, h))` (Pillow >= 7), which
      Asyrp's `AFHQ_dataset` applies.
    - `jpeg_quality`: re-encode the resized image as JPEG with this quality (Pillow defaults otherwise) and decode
      it again, as the LMDB stores JPEG q=100; null skips the round trip.
    Images already at `image_size` are taken as they are (they are the LMDB's own bytes or canonical PNGs).
    """

    name: ManifestName
    resize: Literal["pil-bilinear", "pil-bicubic", "shorter-side-center-crop"] = "pil-bilinear"
    jpeg_quality: int | None = Field(default=None, ge=1, le=100)


class Distribution(_Strict):
    """One way the same images are distributed.

    `layout: files` reads `template` (a relative path with `{field}` placeholders filled from the item) from a
    folder or from a zip; `layout: lmdb` reads the key `template` from an LMDB (`{position}` = index in `items`).
    """

    layout: Literal["files", "lmdb"]
    template: str = Field(min_length=1)
    image_size: int = Field(ge=8)
    size: Literal["square", "shorter-side"] = "square"  # shorter-side: images are not square, min(w, h) = image_size
    format: Literal["jpeg", "png", "webp"]
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

    `listing` is a folder inside a `files` distribution, or "." for an `lmdb` distribution (its keys, in the
    LMDB's own byte order); the dataset is the first `count` names matching `pattern` in sorted order. When `items`
    is empty this rule is applied to the user's copy and `lock` records the membership it found.
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
            if dist is None or (dist.layout == "lmdb" and self.selection.listing != "."):
                raise ValueError(f"selection.distribution {self.selection.distribution!r} must name a distribution "
                                 "of this dataset (an `lmdb` one is listed as `listing: .`, its keys)")
        return self

    @property
    def pinned(self) -> bool:
        """True when the manifest lists its items (the membership does not depend on the user's copy)."""
        return bool(self.items)
