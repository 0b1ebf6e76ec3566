"""The manifest tree: every manifest under a root folder, indexed by kind, name and version, looked up by
`name@version` references (a bare `name` is the latest version) with did-you-mean for unknown names.

The root is `benchmark.core.paths.manifests_dir()` (the repository's `manifests/`, or `ASYRP_MANIFESTS`) unless a
caller names one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from benchmark.core.errors import ManifestError, UnknownNameError
from benchmark.core.paths import manifests_dir
from benchmark.core.registry import suggest, unknown_name_message
from benchmark.inputs.manifests.io import LoadedManifest, load_manifest
from benchmark.inputs.manifests.schema import KINDS

_KIND_DIRS = {"dataset": "datasets", "model": "models", "attribute": "attributes", "suite": "suites",
              "paper_values": "paper_values"}
_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*)(?:@(?P<version>[1-9][0-9]*))?$")


def unknown_message(kind: str, name: str, choices: list[str], limit: int = 12) -> str:
    """Did-you-mean message that stays a few lines long when there are many choices."""
    if len(choices) <= limit:
        return unknown_name_message(kind, name, choices)
    hint = suggest(name, choices)
    msg = f"Unknown {kind} {name!r}." + (" Did you mean: " + ", ".join(hint) + "?" if hint else "")
    return msg + f" ({len(choices)} available; `python run_all.py ls` lists them)"


def parse_ref(ref: str, kind: str = "reference") -> tuple[str, int | None]:
    """`name@version` -> (name, version); a bare `name` gives version None (the latest). `kind` names what the
    reference is of, for the message when it is empty."""
    if not (ref or "").strip():
        also = " (`python run_all.py ls` lists them), or leave --suite out to run the default suite" \
            if kind == "suite" else " (`python run_all.py ls` lists them)"
        raise ManifestError(f"the {kind} name is empty", fix=f"pass a {kind} name, e.g. name@version{also}")
    m = _REF.match(ref)
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
        label = kind.replace("_", " ")
        name, version = parse_ref(ref, label)
        versions = self._by_kind[kind].get(name)
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
