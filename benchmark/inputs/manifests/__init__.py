"""Versioned YAML manifests: schemas, safe loading, `name@version` references and suite resolution.

Five kinds live under `manifests/<kind>s/`: datasets, models, attributes, suites and paper values. Each file is
one manifest with `schema_version`, `kind`, `name` and an integer `version`; a released version never changes
meaning, so anything that changes what a result means gets a new version. A manifest's digest is
`json_digest()` of the parsed document (the YAML as data, not its bytes: comments and key order do not count).

`resolve_suite("paper-table", profile="tiny")` applies a profile, validates the merged suite and resolves every
reference to a concrete manifest with its digest (`ResolvedSuite`), so a run can record exactly what it used.
The shapes are documented for users in `docs/manifests.md`.

The package's modules: `schema` (the kinds and `MANIFEST_CLASSES`, on `schema_common`, `schema_model`,
`schema_dataset` and `schema_suite`), `io` (parsing, validation and its error messages), `registry` (the manifest
tree and `name@version` lookups) and `resolve` (profiles and suite resolution). Import from the package: these
names are its API.
"""

from benchmark.inputs.manifests.io import (
    LoadedManifest,
    load_manifest,
    manifest_from_dict,
    parse_yaml,
    schema_error,
)
from benchmark.inputs.manifests.registry import ManifestRegistry, parse_ref, unknown_message
from benchmark.inputs.manifests.resolve import (
    ResolutionErrors,
    Resolved,
    ResolvedSuite,
    deep_merge,
    resolve_suite,
    suite_with_profile,
)
from benchmark.inputs.manifests.schema import (
    KINDS,
    MANIFEST_CLASSES,
    AnyManifest,
    AttributeManifest,
    PaperValue,
    PaperValuesManifest,
)
from benchmark.inputs.manifests.schema_common import (
    SCHEMA_VERSION,
    GatedBand,
    ItemId,
    ManifestName,
    Ref,
    Revision,
    Sha256,
    check_relative_path,
)
from benchmark.inputs.manifests.schema_dataset import (
    DatasetItem,
    DatasetManifest,
    Distribution,
    Preprocessing,
    Selection,
)
from benchmark.inputs.manifests.schema_model import (
    HubSource,
    LocalSource,
    ModelManifest,
    PackageSource,
    RandomSource,
    Source,
    UrlSource,
    UserSource,
    WeightFile,
)
from benchmark.inputs.manifests.schema_suite import (
    ClipProjection,
    EditSpec,
    FtSpec,
    FtVariant,
    KnownAnswerCheck,
    KnownAnswers,
    KnownAnswerTarget,
    MetricEntry,
    Profile,
    Resources,
    Steps,
    SuiteManifest,
    TrainSpec,
    TSelect,
)

__all__ = [
    # schema
    "SCHEMA_VERSION", "KINDS", "MANIFEST_CLASSES", "AnyManifest", "Sha256", "Revision", "ManifestName", "Ref",
    "ItemId", "check_relative_path", "GatedBand",
    "ModelManifest", "WeightFile", "Source", "HubSource", "UrlSource", "LocalSource", "UserSource",
    "PackageSource", "RandomSource",
    "DatasetManifest", "DatasetItem", "Distribution", "Preprocessing", "Selection",
    "AttributeManifest",
    "SuiteManifest", "MetricEntry", "Steps", "FtSpec", "FtVariant", "TrainSpec", "EditSpec", "TSelect",
    "Resources", "Profile", "KnownAnswers", "KnownAnswerTarget", "KnownAnswerCheck", "ClipProjection",
    "PaperValuesManifest", "PaperValue",
    # io
    "parse_yaml", "manifest_from_dict", "load_manifest", "LoadedManifest", "schema_error",
    # registry
    "ManifestRegistry", "parse_ref", "unknown_message",
    # resolve
    "deep_merge", "suite_with_profile", "Resolved", "ResolvedSuite", "ResolutionErrors", "resolve_suite",
]
