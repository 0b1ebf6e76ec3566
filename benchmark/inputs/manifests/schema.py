"""The manifest kinds and the schema of each: `MANIFEST_CLASSES` maps a document's `kind` to the class that
validates it.

Attribute and paper-values manifests are small and live here; models, datasets and suites have parts of their own
and live in `schema_model`, `schema_dataset` and `schema_suite`, on the header and field types of `schema_common`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from benchmark.inputs.manifests.schema_common import GatedBand, _Header, _Strict
from benchmark.inputs.manifests.schema_dataset import DatasetManifest
from benchmark.inputs.manifests.schema_model import ModelManifest
from benchmark.inputs.manifests.schema_suite import SuiteManifest

KINDS = ("dataset", "model", "attribute", "suite", "paper_values")


class AttributeManifest(_Header):
    """An edit: prompts, domain, t_edit / t_boost and the loss weights.

    `t_edit: null` means no value is cited and the authors' rule must pick it at run time (it needs the text
    cosine of the loss CLIP, ViT-B/16): a suite editing it needs a `t_select` that covers it. `domain: unstated`
    where the authors' sources do not say whether the edit is in the training domain.
    """

    kind: Literal["attribute"]
    source_prompt: str = Field(min_length=1)
    target_prompt: str = Field(min_length=1)
    domain: Literal["in-domain", "unseen", "unstated"]
    t_edit: int | None = Field(ge=0, le=999)
    t_boost: int = Field(ge=0, le=999)
    lambda_clip: float = Field(gt=0)
    lambda_recon: float = Field(ge=0)
    lambda_recon_times_text_cosine: bool = True

    @model_validator(mode="after")
    def _order(self) -> AttributeManifest:
        if self.t_edit is not None and self.t_boost > self.t_edit:
            raise ValueError(f"t_boost ({self.t_boost}) must not exceed t_edit ({self.t_edit})")
        return self


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
    band: GatedBand | None = None

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
