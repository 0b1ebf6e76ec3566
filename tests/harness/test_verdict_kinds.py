"""Two kinds of verdict: every check of a suite manifest is a known answer (it gates) or a paper claim under test
(reported as holding or not, never gating); a released suite version never changes meaning."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from benchmark.core.hashing import json_digest
from benchmark.inputs.manifests import KnownAnswerCheck, ManifestRegistry
from benchmark.outputs.gates import evaluate_gates
from benchmark.outputs.results import Band, MetricValue, ReferenceValue

#: what the synthetic world guarantees by construction (the issue that split the kinds names exactly these)
KNOWN_ANSWER_CHECKS = {"reconstruction_psnr", "zero_delta_exact", "target_shift", "sdir_ci_low"}
UNSEEN = "synthetic-zombie"
SYNTHETIC_1_DIGEST = "19bc7d1dccab75544d3f112e7add4e087b7c0e3ab03ab2b7420790d5e77d5cf4"
SYNTHETIC_2_DIGEST = "6fea57a02704d4873a297404332ac909b4e3ce4e67bb8d79fb38058be22999cc"


@pytest.fixture(scope="module")
def registry():
    return ManifestRegistry()


def test_kind_is_written_or_derived_from_a_legacy_gate():
    band = {"lower": 1.0, "rationale": "r"}
    assert KnownAnswerCheck(check="x", kind="claim", band=band).kind == "claim"
    assert KnownAnswerCheck(check="x", band={**band, "gate": True}).kind == "known_answer"  # written before kinds
    assert KnownAnswerCheck(check="x", band={**band, "gate": False}).kind == "claim"
    assert not KnownAnswerCheck(check="x", kind="claim", band={"rationale": "r"}).has_verdict  # open: reported
    for bad, message in (({"check": "x", "band": band}, "needs `kind"),
                         ({"check": "x", "kind": "claim", "band": {**band, "gate": True}}, "contradicts"),
                         ({"check": "x", "kind": "known_answer", "band": {"rationale": "r"}}, "needs a band"),
                         ({"check": "x", "kind": "maybe", "band": band}, "known_answer")):
        with pytest.raises(ValidationError, match=message):
            KnownAnswerCheck(**bad)


def test_the_default_suite_is_synthetic_3_with_a_kind_on_every_check(registry):
    loaded = registry.get("suite", "synthetic")
    suite = loaded.manifest
    assert suite.ref == "synthetic@3"
    written = [*loaded.document["known_answers"]["checks"],
               *(c for p in loaded.document["profiles"].values() for c in p["overrides"].get("known_answers", {})
                 .get("checks", []))]
    assert all("kind" in c and "gate" not in c["band"] for c in written)  # written, not derived
    for check in suite.known_answers.checks:
        expected = "known_answer" if check.check in KNOWN_ANSWER_CHECKS and check.attribute != UNSEEN else "claim"
        assert check.kind == expected, (check.check, check.attribute)
    assert (suite.steps.n_inv, suite.steps.n_test) == (40, 40)  # the paper's step count: the floor is reachable


def test_released_synthetic_1_is_unchanged(registry):
    """A released version never changes meaning: synthetic@1 keeps the digest it had when synthetic@2 replaced
    it as the default (its checks' kinds come from their `gate`, as they did then)."""
    loaded = registry.get("suite", "synthetic@1")
    assert loaded.digest == SYNTHETIC_1_DIGEST
    kinds = {(c.check, c.attribute, c.kind) for c in loaded.manifest.known_answers.checks}
    assert ("non_target_shift", "synthetic-smiling", "known_answer") in kinds  # it gated then, so it gates now


def test_released_synthetic_2_is_unchanged(registry):
    """synthetic@3 changed the CLIP and the attributes; synthetic@2 keeps the digest its committed runs record, and
    with it synthetic-clip@1 and the @1 attributes."""
    loaded = registry.get("suite", "synthetic@2")
    assert loaded.digest == SYNTHETIC_2_DIGEST
    assert loaded.manifest.clip_loss_model == "synthetic-clip@1"
    assert all(ref.endswith("@1") for ref in loaded.manifest.attributes)


def test_paper_table_claims_use_the_same_vocabulary(registry):
    checks = registry.get("suite", "paper-table@1").manifest.known_answers.checks
    assert {c.check for c in checks if c.kind == "known_answer"} == {"zero_delta_exact"}  # a property of the code
    assert all(c.kind == "claim" for c in checks if c.check != "zero_delta_exact")


def test_gates_carry_their_reference_kind():
    mv = {"a": {"m": MetricValue(mean=0.5, ci_low=0.4, ci_high=0.6, n=3, direction="higher", spec={})}}
    refs = [ReferenceValue(metric="m", attribute="a", column="known-answer", value=None, band=Band(low=0.9),
                           kind="known_answer"),
            ReferenceValue(metric="m", attribute="a", column="paper", value=0.55, band=Band(low=0.9)),
            ReferenceValue(metric="m", attribute="a", column="paper", value=0.55, band=Band(low=0.9), gated=False)]
    gates = evaluate_gates(mv, refs)
    assert [(g.kind, g.passed) for g in gates] == [("known_answer", False), ("claim", False)]
    assert json_digest(gates[1].model_dump())  # serialisable, with its kind
    assert gates[1].model_dump()["kind"] == "claim"
