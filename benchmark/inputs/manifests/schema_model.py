"""Model manifests: where a model's files come from (a pinned source) and which loader builds it."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from benchmark.inputs.manifests.schema_common import Revision, Sha256, _Header, _Strict, check_relative_path


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


class UserSource(_Strict):
    """Files the user supplies because no source can be downloaded from (e.g. a checkpoint behind a OneDrive or
    Google Drive folder link): the user copies each one to `<weights>/<name>@<version>/<path>`, the place fetched
    files go. `where` says, for a person, where the authors say to get it. `fetch` never downloads it, only checks
    it; a null sha256 is recorded by `lock` (or `fetch`) on first use and checked on every later read."""

    type: Literal["user"]
    where: str = Field(min_length=1)
    files: list[WeightFile] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_urls(self) -> UserSource:
        with_url = [f.path for f in self.files if f.url]
        if with_url:
            raise ValueError(f"user source: files {with_url} name a `url`; a downloadable file is a `url` source")
        return self


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


Source = Annotated[HubSource | UrlSource | LocalSource | UserSource | PackageSource | RandomSource, Field(discriminator="type")]


class ModelManifest(_Header):
    kind: Literal["model"]
    loader: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    loader_args: dict[str, Any] = Field(default_factory=dict)
    source: Source

    @property
    def files(self) -> list[WeightFile]:
        return [] if isinstance(self.source, RandomSource) else list(self.source.files)
