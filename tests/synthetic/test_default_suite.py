"""The default suite as a first run meets it: `python run_all.py` is synthetic@3, and the committed full run of it
(results/synthetic/full/, made by that command) passes every known answer while reporting the paper's claims
as findings. The run is the suite's current definition: its manifest digest is the one this checkout resolves,
so changing the suite without rerunning it (and recommitting the folder) fails here."""

from __future__ import annotations

import pytest

from benchmark.core.paths import REPO_ROOT
from benchmark.inputs.manifests import ManifestRegistry
from benchmark.outputs.results import load_results
from benchmark.plan.suite import default_suite

FULL = REPO_ROOT / "results" / "synthetic" / "full"


@pytest.fixture(scope="module")
def committed():
    return load_results(FULL)


def test_bare_run_all_runs_the_current_synthetic_suite():
    registry = ManifestRegistry()
    assert default_suite(registry) == "synthetic"
    assert registry.get("suite", "synthetic").ref == "synthetic@3"


def test_the_committed_full_run_is_of_the_current_default_suite(committed):
    loaded = ManifestRegistry().get("suite", "synthetic")
    assert committed.suite == loaded.ref and committed.run.profile is None and committed.run.limit is None
    assert committed.run.manifest_digests[f"suite:{loaded.ref}"] == loaded.digest


def test_every_known_answer_passes_and_claims_are_reported(committed):
    known, claims = committed.known_answers(), committed.claims()
    assert len(known) == 8  # reconstruction floor, Δh = 0, three target shifts, three S_dir CIs
    assert not committed.failed_known_answers(), [(g.name, g.value) for g in committed.failed_known_answers()]
    psnr = next(g for g in known if g.name.startswith("recon_psnr_db/"))
    assert psnr.value >= 25.0 and psnr.band.low == 25.0  # the floor, unmoved
    assert len(claims) == 19 and all(g.kind == "claim" for g in claims)
