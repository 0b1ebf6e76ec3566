"""scripts/release_inventory.yaml: its computed fields re-derived from the fixtures, its cited fields consistent with
the committed manifests, and the f_t manifests it generates identical to the committed ones."""

import sys

import pytest

from benchmark.core.hashing import sha256_file
from benchmark.core.paths import MANIFESTS_DIR, REPO_ROOT
from benchmark.inputs.manifests import load_manifest
from models.t_select import read_lpips_curve, select_t_boost, select_t_edit

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import make_release_manifests as release  # noqa: E402

INVENTORY = release.load_inventory()
CKPTS = INVENTORY["checkpoints"]


def test_the_listing_and_its_file_name_rule():
    files = [e["file"] for e in CKPTS]
    assert len(files) == len(set(files)) == 35
    by_dataset = {d: sum(e["dataset"] == d for e in CKPTS) for d in INVENTORY["datasets"]}
    assert by_dataset == {"celeba_hq": 18, "church": 6, "bedroom": 2, "dog": 5, "metfaces": 4}
    for e in CKPTS:
        category = INVENTORY["datasets"][e["dataset"]]["category"]
        assert e["file"] == f"{e['attribute']}_LC_{category}_t999_ninv40_ngen40_0.pth"
        assert e["source"] and e["target"] and e["refs"]
        assert set(e["refs"]) <= set(INVENTORY["sources"]), e["file"]


def test_cited_t_edit_and_the_implied_cosine_follow_the_lpips_rule(fixtures):
    tables = fixtures / "asyrp_official" / "tables"
    x0t = read_lpips_curve(tables / "celeba_LPIPS_distance_x0_t.tsv")
    celeba = INVENTORY["datasets"]["celeba_hq"]
    assert select_t_boost(read_lpips_curve(tables / "celeba_LPIPS_distance_x.tsv")) == celeba["t_boost"]["value"]
    for cos, t in celeba["t_edit_by_cos"].items():
        if cos != "refs":
            assert select_t_edit(x0t, float(cos)) == t
    cited = [e for e in CKPTS if e["dataset"] == "celeba_hq" and e["t_edit"].get("cited")]
    assert len(cited) == 13
    for e in cited:
        lo, hi = e["t_edit"]["implied_cos"]
        assert select_t_edit(x0t, lo) == select_t_edit(x0t, hi) == e["t_edit"]["cited"], e["attribute"]
        # the range is tight at the scan step: one step outside it gives another t_edit
        assert select_t_edit(x0t, lo - 0.0005) != e["t_edit"]["cited"] != select_t_edit(x0t, hi + 0.0005)
    for name, digest in (("x0_t", "celeba_LPIPS_distance_x0_t.tsv"), ("x", "celeba_LPIPS_distance_x.tsv")):
        assert sha256_file(tables / digest) == celeba["lpips_tables"][name]["sha256"]


def test_known_digests_are_the_fixture_files(fixtures):
    known = [e for e in CKPTS if e["sha256"]]
    assert {e["attribute"] for e in known} == {"smiling", "sad", "tanned", "pixar", "neanderthal"}
    for e in known:
        path = fixtures / "asyrp_official" / "checkpoints" / e["file"]
        assert sha256_file(path) == e["sha256"] and path.stat().st_size == e["size"]


def test_prompts_and_settings_agree_with_the_attribute_manifests():
    checked = 0
    for e in CKPTS:
        path = MANIFESTS_DIR / "attributes" / f"{release.attribute_name(e)}.yaml"
        attr = load_manifest(path).manifest  # every released f_t has one, AFHQ-dog and METFACES included
        checked += 1
        assert (attr.source_prompt, attr.target_prompt) == (e["source"], e["target"])
        assert attr.t_boost == INVENTORY["datasets"][e["dataset"]]["t_boost"]["value"]
        cited = e["t_edit"].get("cited")
        derived = [v for k, v in e["t_edit"].items() if k.startswith("by_rule_if_prompts_are_")]
        assert attr.t_edit == (cited if cited is not None else derived[0] if derived else None), e["attribute"]
        if e.get("lambda_clip", {}).get("uva"):
            assert attr.lambda_clip == e["lambda_clip"]["uva"]
        assert attr.domain == (e.get("domain") or "unstated")
    assert checked == 18 + 6 + 2 + 5 + 4


def test_a_derived_t_edit_is_the_cited_one_of_the_same_prompts():
    by_prompts = {(e["source"], e["target"]): e["t_edit"]["cited"] for e in CKPTS if e["t_edit"].get("cited")}
    for e in CKPTS:
        for key, value in e["t_edit"].items():
            if key.startswith("by_rule_if_prompts_are_"):
                assert by_prompts[(e["source"], e["target"])] == value, e["attribute"]


def test_committed_release_manifests_are_what_the_script_writes(tmp_path, fixtures):
    release.main(["--fixtures", str(fixtures), "--out", str(tmp_path)])
    written = {kind: sorted(p.name for p in (tmp_path / kind).iterdir()) for kind in ("models", "attributes",
                                                                                      "datasets")}
    f_t = [n for n in written["models"] if n.startswith("asyrp-ft-")]
    assert len(f_t) == 35 - 7  # the 7 of make_fixture_manifests.py are not rewritten here
    assert sorted(set(written["models"]) - set(f_t)) == [
        "asyrp-lpips-bedroom.yaml", "asyrp-lpips-celeba-hq.yaml", "asyrp-lpips-church.yaml", "asyrp-lpips-dog.yaml",
        "asyrp-lpips-metfaces.yaml", "sdedit-bedroom.yaml", "sdedit-church-outdoor.yaml"]  # no dog / metfaces base
    assert len(written["attributes"]) == 35 - 7
    assert written["datasets"] == ["lsun-bedroom-val-first100.yaml", "lsun-church-outdoor-val-first100.yaml"]
    for kind, names in written.items():
        for name in names:
            assert (tmp_path / kind / name).read_text() == (MANIFESTS_DIR / kind / name).read_text(), name
    for name in f_t:
        doc = load_manifest(tmp_path / "models" / name).manifest
        assert doc.files[0].sha256 is None and "lock" in doc.provenance
    celeba_tables = load_manifest(tmp_path / "models" / "asyrp-lpips-celeba-hq.yaml").manifest
    for f in celeba_tables.files:  # the fixture copies pin the CelebA-HQ tables
        assert f.sha256 == sha256_file(fixtures / "asyrp_official" / "tables" / f.path)
    unknown_class = {**INVENTORY, "datasets": {**INVENTORY["datasets"],
                                               "dog": {**INVENTORY["datasets"]["dog"], "f_t": "transformer"}}}
    with pytest.raises(SystemExit, match="no manifest format for f_t class 'transformer'"):
        release.release_ft_manifest(next(e for e in CKPTS if e["dataset"] == "dog"), unknown_class, fixtures)
