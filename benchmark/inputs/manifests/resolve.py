"""Suite resolution: apply a profile, validate the merged suite and resolve every reference it makes to a concrete
manifest with its digest (`ResolvedSuite`), so a run can record exactly what it used.

Every problem is collected and reported together (`ResolutionErrors`), with what did resolve, so `validate` can
list them all and go on.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError, ManifestError, UnknownNameError
from benchmark.core.hashing import json_digest
from benchmark.core.registry import unknown_name_message
from benchmark.inputs.manifests.io import LoadedManifest, manifest_from_dict
from benchmark.inputs.manifests.registry import ManifestRegistry, parse_ref
from benchmark.inputs.manifests.schema_suite import SuiteManifest


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Dicts merge key by key; lists and scalars in `overrides` replace those in `base`."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


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
    t_select_tables: Resolved | None = None  # the LPIPS tables of `t_select.tables` (fetched like weights)
    init_from: dict[str, Resolved] = field(default_factory=dict)  # released f_t an f_t starts from, by ref

    def models(self) -> dict[str, Resolved]:
        """Every model manifest the suite needs, keyed by `name@version` (deduplicated)."""
        found = [self.base_model, self.clip_loss_model, *self.ft_checkpoints.values(), *self.metric_backends.values(),
                 self.known_answer_measure, self.t_select_tables, *self.init_from.values()]
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



class _Resolver:
    """Looks references up in a registry, each once, and keeps every problem instead of stopping at the first."""

    def __init__(self, registry: ManifestRegistry):
        self.registry = registry
        self.problems: list[Exception] = []
        self._seen: dict[tuple[str, str], Resolved | None] = {}

    def get(self, kind: str, ref: str | None) -> Resolved | None:
        """The manifest `ref` names, or None when there is no ref or it does not resolve (a problem is kept)."""
        if ref is None:
            return None
        if (kind, ref) not in self._seen:  # a ref used twice is resolved (and reported) once
            try:
                lm = self.registry.get(kind, ref)
                self._seen[kind, ref] = Resolved(lm.ref, lm.digest, lm.manifest, lm.path)
            except BenchError as e:
                self.problems.append(e)
                self._seen[kind, ref] = None
        return self._seen[kind, ref]


def _attributes(suite: SuiteManifest, resolver: _Resolver) -> dict[str, Resolved]:
    """The attributes that resolve, keyed by name."""
    attributes: dict[str, Resolved] = {}
    for a in suite.attributes:
        r = resolver.get("attribute", a)
        if r is not None:
            attributes[r.manifest.name] = r
    return attributes


def _ft_checkpoints(suite: SuiteManifest, attributes: dict[str, Resolved],
                    resolver: _Resolver) -> dict[str, Resolved]:
    """Released f_t weights by attribute: each names an attribute the suite edits, and each attribute has one."""
    ft_checkpoints: dict[str, Resolved] = {}
    for attr, mref in (suite.ft.checkpoints or {}).items():
        if attr not in attributes and not any(parse_ref(a)[0] == attr for a in suite.attributes):
            resolver.problems.append(ManifestError(
                f"ft.checkpoints names attribute {attr!r}, which the suite does not edit",
                fix="add the attribute to `attributes` or remove its checkpoint"))
        r = resolver.get("model", mref)
        if r is not None:
            ft_checkpoints[attr] = r
    if suite.ft.checkpoints:
        for name in attributes:
            if name not in suite.ft.checkpoints:
                resolver.problems.append(ManifestError(f"attribute {name!r} has no released checkpoint in "
                                                       "ft.checkpoints", fix="add one, or train f_t for it instead"))
    return ft_checkpoints


def _metric_backends(suite: SuiteManifest, known_metrics: Iterable[str] | None,
                     resolver: _Resolver) -> dict[str, Resolved]:
    """Each metric's back-end model by metric key; metric names are checked when `known_metrics` is given."""
    backends: dict[str, Resolved] = {}
    known = sorted(set(known_metrics)) if known_metrics is not None else None
    for m in suite.metrics:
        if known is not None and m.name not in known:
            resolver.problems.append(UnknownNameError(unknown_name_message("metric", m.name, known),
                                                      fix="use a registered metric name (`python run_all.py ls`)"))
        r = resolver.get("model", m.backend)
        if r is not None:
            backends[m.key] = r
    return backends


def _check_clip_projection_targets(suite: SuiteManifest, resolver: _Resolver) -> None:
    """A CLIP-projection measure's factors are the attributes' text directions: every target must name one."""
    ka = suite.known_answers
    if ka is None or ka.clip_projection is None:
        return
    stray = sorted({t.factor for t in ka.targets.values()} - {parse_ref(a)[0] for a in suite.attributes})
    if stray:
        resolver.problems.append(ManifestError(
            f"known_answers.clip_projection measures the suite's attributes; targets name other factors {stray}",
            fix="name each target's factor after the attribute itself (e.g. smiling: {factor: smiling})"))


def _check_t_edit_sources(suite: SuiteManifest, attributes: dict[str, Resolved], resolver: _Resolver) -> None:
    """An attribute without a cited t_edit (null) can only be edited by a suite whose `t_select` picks it."""
    if suite.t_select is not None:
        return
    unset = sorted(n for n, r in attributes.items() if r.manifest.t_edit is None)
    if unset:
        resolver.problems.append(ManifestError(
            f"attributes {unset} cite no t_edit (null: the authors' rule must pick it), and the suite has no "
            "`t_select`", fix="add `t_select: {tables: <LPIPS tables manifest>, prefix: ..., apply: unset}`"))


def _init_from(suite: SuiteManifest, resolver: _Resolver) -> dict[str, Resolved]:
    """Released f_t that f_t start from; an in-run source must name an attribute (and arm) of the suite."""
    sources = [("train.init_from", suite.train.init_from if suite.train else None)]
    sources += [(f"ft_variants[{v.key}].init_from", v.init_from) for v in suite.ft_variants or []]
    names = {parse_ref(a)[0] for a in suite.attributes}
    arms = {v.key for v in suite.ft_variants or []}
    out: dict[str, Resolved] = {}
    for where, init in sources:
        if init is None:
            continue
        if init.ft is not None:
            r = resolver.get("model", init.ft)
            if r is not None:
                out[r.ref] = r
        elif init.run is None and (init.attribute not in names or (init.arm is not None and init.arm not in arms)):
            resolver.problems.append(ManifestError(
                f"{where} names {init.label()!r}, which is no attribute (and arm) of this suite",
                fix=f"use one of the suite's attributes {sorted(names)}" + (f" and arms {sorted(arms)}" if arms else "")))
    return out


def resolve_suite(ref: str, *, profile: str | None = None, registry: ManifestRegistry | None = None,
                  known_metrics: Iterable[str] | None = None) -> ResolvedSuite:
    """Resolve a suite and everything it names. All unknown references are reported together.

    `known_metrics` (the metric registry's names) lets unknown metric names fail here with did-you-mean.
    """
    registry = registry or ManifestRegistry()
    suite, digest = suite_with_profile(registry.get("suite", ref), profile)
    resolver = _Resolver(registry)
    dataset = resolver.get("dataset", suite.dataset)
    train_dataset = resolver.get("dataset", suite.train.dataset) if suite.train else None
    base_model = resolver.get("model", suite.base_model)
    clip_model = resolver.get("model", suite.clip_loss_model)
    attributes = _attributes(suite, resolver)
    ft_checkpoints = _ft_checkpoints(suite, attributes, resolver)
    backends = _metric_backends(suite, known_metrics, resolver)
    paper_values = resolver.get("paper_values", suite.paper_values)
    measure = resolver.get("model", suite.known_answers.measure) if suite.known_answers else None
    tables = resolver.get("model", suite.t_select.tables) if suite.t_select else None
    init_from = _init_from(suite, resolver)
    _check_clip_projection_targets(suite, resolver)
    _check_t_edit_sources(suite, attributes, resolver)
    resolved = ResolvedSuite(ref=suite.ref, profile=profile, digest=digest, suite=suite, dataset=dataset,
                             train_dataset=train_dataset, base_model=base_model, clip_loss_model=clip_model,
                             attributes=attributes, ft_checkpoints=ft_checkpoints, metric_backends=backends,
                             paper_values=paper_values, known_answer_measure=measure, t_select_tables=tables,
                             init_from=init_from)
    if resolver.problems:
        raise ResolutionErrors(suite.ref, resolver.problems, partial=resolved)
    return resolved
