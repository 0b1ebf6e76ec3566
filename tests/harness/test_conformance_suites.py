"""Conformance of every suite: each manifest suite under each of its profiles, and each suite defined in code.

A manifest suite (and every profile of it) resolves against the shipped manifests with the metric registry's names
(`resolve_suite(..., known_metrics=...)`), validates its own schema (the raw file, and the profile-merged suite
read back from its dump), and names only registered code: its models' loaders (`LOADERS`), its f_t
(`FT_REGISTRY`) and its known-answer checks (`CHECKS`). Every suite defined in code (`CODE_SUITES`) and every
manifest suite is listed by `catalogue` (what `ls` prints).
"""

from __future__ import annotations

import pytest

from benchmark.checks.known_answers import CHECKS
from benchmark.inputs.manifests import (
    ManifestRegistry,
    ResolvedSuite,
    SuiteManifest,
    load_manifest,
    parse_ref,
    resolve_suite,
)
from benchmark.inputs.validate import check_ft_names
from benchmark.plan.loaders import LOADERS
from benchmark.plan.plugins import load_plugins
from benchmark.plan.suite import CODE_SUITES, catalogue
from metrics import METRICS

load_plugins()  # plugin metrics (attribute-shift@1) and loaders (synthetic-ddpm, synthetic-clip)
REGISTRY = ManifestRegistry()
SUITE_REFS = REGISTRY.names("suite")
CASES = [(ref, profile) for ref in SUITE_REFS for profile in [None, *REGISTRY.get("suite", ref).manifest.profiles]]


def test_the_shipped_suites_and_profiles_are_all_here():
    assert REGISTRY.errors == []
    assert {"paper-table@1", "synthetic@1", "ldm@1"} <= set(SUITE_REFS)
    assert ("synthetic@1", "quick") in CASES and ("paper-table@1", "tiny") in CASES


@pytest.mark.parametrize(("ref", "profile"), CASES, ids=[f"{r}-{p or 'plain'}" for r, p in CASES])
def test_suite_resolves_and_validates_its_own_schema(ref, profile):
    loaded = REGISTRY.get("suite", ref)
    assert load_manifest(loaded.path).digest == loaded.digest  # the raw file validates on its own
    resolved = resolve_suite(ref, profile=profile, registry=REGISTRY, known_metrics=METRICS.names())
    assert isinstance(resolved, ResolvedSuite) and resolved.ref == ref and resolved.profile == profile
    suite = resolved.suite
    assert SuiteManifest.model_validate(suite.model_dump(mode="json")) == suite  # the merged suite re-validates
    # a suite that edits seeded noise reads no test images
    assert (resolved.dataset is None) == (suite.source is not None), f"{ref}: a dataset, or a noise source"
    assert resolved.base_model is not None and resolved.clip_loss_model is not None
    assert set(resolved.metric_backends) == {m.key for m in suite.metrics}
    for model in (resolved.base_model, resolved.clip_loss_model):
        assert model.manifest.loader in LOADERS, f"{ref}: model {model.ref} names loader {model.manifest.loader!r}"
    check_ft_names(suite)  # every f_t the suite trains is registered (did-you-mean otherwise)
    if suite.known_answers is not None:
        for check in suite.known_answers.checks:
            CHECKS.get(check.check)
        assert resolved.known_answer_measure is not None


def test_catalogue_lists_every_code_suite_and_every_manifest_suite():
    listed = {e["name"]: e["description"] for e in catalogue(REGISTRY)["suites"]}
    for name in CODE_SUITES.names():
        assert listed.get(name) == "defined in code", f"code suite {name!r} is not in `ls`"
    assert set(SUITE_REFS) <= set(listed)
    assert all(parse_ref(ref)[0] not in CODE_SUITES for ref in SUITE_REFS)  # a name means one suite
