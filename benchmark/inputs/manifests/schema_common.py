"""What every manifest kind shares: the header, the strict base model, the field types and the acceptance band."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from benchmark.core.bands import Band
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

SCHEMA_VERSION = 1

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Revision = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
ManifestName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=80)]
Ref = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*(@[1-9][0-9]*)?$")]
ItemId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=120)]


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


class GatedBand(Band):
    """A manifest's band for a result: its interval (`lower`/`upper`), whether it gates (`gate: false` = shown,
    never gated) and why it is what it is."""

    gate: bool
    rationale: str = Field(min_length=1)

    @model_validator(mode="after")
    def _gating_needs_an_end(self) -> GatedBand:
        if self.gate and self.is_open:
            raise ValueError("a gating band needs `lower` and/or `upper`")
        return self
