"""official-checkpoints@2: every released CelebA-HQ f_t selectable, the paper table's five by default, and t_edit by
the authors' LPIPS rule for the attributes no source cites (t_select, apply: unset); the selection rules that serve
it (`default_attributes`, `--attributes all`, narrowing what must be on disk)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from benchmark.core.errors import ManifestError, UnknownNameError
from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.lock import LockFile
from benchmark.inputs.manifests import ManifestRegistry, manifest_from_dict, resolve_suite
from benchmark.inputs.selection import narrow_to_selection, selected_names
from benchmark.inputs.validate import validate_suite

FIVE = ["smiling", "sad", "tanned", "pixar", "neanderthal"]
UNCITED = {"makeup", "zombie", "zombie-new"}


@pytest.fixture(scope="module")
def registry():
    return ManifestRegistry()


def test_version_2_lists_all_18_released_f_t_and_defaults_to_the_paper_five(registry):
    rs = resolve_suite("official-checkpoints", registry=registry)
    assert rs.ref == "official-checkpoints@2"
    assert len(rs.attributes) == len(rs.ft_checkpoints) == 18 and set(rs.attributes) == set(rs.ft_checkpoints)
    assert selected_names(rs, None) == FIVE
    assert len(selected_names(rs, ["all"])) == 18
    assert selected_names(rs, ["zombie", "smiling"]) == ["smiling", "zombie"]  # in the suite's order
    with pytest.raises(UnknownNameError, match="Did you mean: zombie"):
        selected_names(rs, ["zombi"])
    # @1 stays what it was: its five attributes, no default selection, no t_select
    one = resolve_suite("official-checkpoints@1", registry=registry)
    assert list(one.attributes) == FIVE and one.suite.default_attributes is None and one.suite.t_select is None
    # the default run of @2 edits what @1 edits, with the same settings and released weights
    for name in FIVE:
        assert rs.attributes[name].ref == one.attributes[name].ref
        assert rs.ft_checkpoints[name].ref == one.ft_checkpoints[name].ref
    assert rs.suite.metrics == one.suite.metrics and rs.suite.steps == one.suite.steps


def test_only_uncited_attributes_leave_t_edit_to_the_rule(registry):
    rs = resolve_suite("official-checkpoints@2", registry=registry)
    unset = {n for n, r in rs.attributes.items() if r.manifest.t_edit is None}
    assert unset == UNCITED
    assert rs.suite.t_select.apply == "unset" and rs.t_select_tables.ref == "asyrp-lpips-celeba-hq@1"
    assert rs.attributes["random-noise-man"].manifest.t_edit == rs.attributes["man"].manifest.t_edit == 513
    assert all(r.manifest.t_boost == 167 for r in rs.attributes.values())


def test_what_must_be_on_disk_follows_the_selection(registry):
    rs = resolve_suite("official-checkpoints@2", registry=registry)
    default = narrow_to_selection(rs, None)
    assert set(default.ft_checkpoints) == set(FIVE) and default.t_select_tables is None
    assert "asyrp-lpips-celeba-hq@1" not in default.models()
    zombie = narrow_to_selection(rs, ["zombie"])
    assert set(zombie.ft_checkpoints) == {"zombie"} and "asyrp-lpips-celeba-hq@1" in zombie.models()
    man = narrow_to_selection(rs, ["man"])  # cited t_edit: no tables needed
    assert man.t_select_tables is None


def test_an_uncited_t_edit_needs_a_t_select(tmp_path):
    from benchmark.inputs.manifests import ResolutionErrors

    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, root)
    path = root / "suites" / "official-checkpoints-2.yaml"
    doc = yaml.safe_load(path.read_text())
    del doc["t_select"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ResolutionErrors, match=r"\['makeup', 'zombie', 'zombie-new'\] cite no t_edit"):
        resolve_suite("official-checkpoints@2", registry=ManifestRegistry(root))


def test_default_attributes_must_be_attributes_of_the_suite():
    doc = yaml.safe_load((MANIFESTS_DIR / "suites" / "official-checkpoints-2.yaml").read_text())
    doc["default_attributes"] = ["smiling", "smilling"]
    with pytest.raises(ManifestError, match="smilling"):
        manifest_from_dict(doc)


def test_the_rule_picks_t_edit_with_the_loss_clips_text_cosine(registry, fixtures, tmp_path, monkeypatch):
    """The planner's t_edit for the uncited attributes against an independent reading of the authors' table:
    the smallest t whose LPIPS(x, P_t) is at least 0.33 · cos of the raw prompts' CLIP text embeddings."""
    import torch

    from benchmark.inputs.curves import load_t_select_curves
    from benchmark.plan.attribute_plans import attribute_plans
    from benchmark.plan.loaders import LOADERS

    weights = tmp_path / "w"
    tables = weights / "asyrp-lpips-celeba-hq@1"
    tables.mkdir(parents=True)
    for f in (fixtures / "asyrp_official" / "tables").glob("celeba_LPIPS_*.tsv"):
        shutil.copyfile(f, tables / f.name)  # tmp only, never the repo
    monkeypatch.setenv("ASYRP_WEIGHTS", str(weights))
    rs = narrow_to_selection(resolve_suite("official-checkpoints@2", profile="tiny", registry=registry),
                             ["smiling", "makeup", "zombie"])
    clip_manifest = rs.clip_loss_model.manifest
    clip, tokenizer = LOADERS.get(clip_manifest.loader)(clip_manifest, device="cpu")

    def loss(src, trg):
        import models

        return models.DirectionalClipLoss(clip, tokenizer, src, trg)

    curves = load_t_select_curves(rs)
    assert set(curves[1]) == {p.name for p in tables.iterdir()}
    lock = LockFile.load(tmp_path / "lock.json")
    # the released f_t are not fetched here; their paths are only recorded in the plans
    monkeypatch.setattr("benchmark.plan.attribute_plans._official", lambda resolved, name, lock: None)
    plans = {p.name: p for p in attribute_plans(rs, [rs.attributes[n] for n in ("smiling", "makeup", "zombie")],
                                                lock, curves, loss)}
    rows = [line.split("\t") for line in (tables / "celeba_LPIPS_distance_x0_t.tsv").read_text().split("\n")
            if line.strip()]
    table = sorted((int(float(r[0])), float(r[1])) for r in rows)
    for name in ("makeup", "zombie"):
        a = rs.attributes[name].manifest
        with torch.no_grad():
            e = clip.encode_text(tokenizer([a.source_prompt, a.target_prompt])).float()
        cos = float(torch.nn.functional.cosine_similarity(e[:1], e[1:]))
        expected = next(t for t, v in table if v >= 0.33 * cos)
        assert plans[name].settings["t_edit"] == expected, name
        assert plans[name].settings["t_boost"] == 167  # cited per dataset: the rule does not replace it
        assert plans[name].settings["t_select"]["text_cosine"] == pytest.approx(cos, abs=1e-6)
    assert plans["smiling"].settings["t_edit"] == 513 and "t_select" not in plans["smiling"].settings


def test_validate_checks_the_tables_only_when_a_selected_attribute_needs_them(registry, tmp_path):
    kwargs = dict(profile="tiny", registry=registry, weights_root=tmp_path / "w", out_dir=tmp_path / "out",
                  lock=LockFile.load(tmp_path / "lock.json"))
    default = validate_suite("official-checkpoints@2", **kwargs)
    assert not any("lpips" in p.subject for p in default.problems)
    assert {p.subject for p in default.problems if p.code == "weights-missing"} == {
        f"model asyrp-ft-{a}@1" for a in FIVE}
    zombie = validate_suite("official-checkpoints@2", attributes=["zombie"], **kwargs)
    subjects = {p.subject for p in zombie.problems if p.code == "weights-missing"}
    assert subjects == {"model asyrp-ft-zombie@1", "model asyrp-lpips-celeba-hq@1"}
    assert not any(p.code == "curves-missing" for p in zombie.problems)  # reported once, as missing weights


def test_every_released_celebahq_f_t_has_an_attribute_manifest_with_the_inventory_prompts(registry):
    import sys

    from benchmark.core.paths import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import make_release_manifests as release

    rs = resolve_suite("official-checkpoints@2", registry=registry)
    inventory = release.load_inventory()
    celeba = [e for e in inventory["checkpoints"] if e["dataset"] == "celeba_hq"]
    assert {release.attribute_name(e) for e in celeba} == set(rs.attributes)
    for e in celeba:
        a = rs.attributes[release.attribute_name(e)].manifest
        assert (a.source_prompt, a.target_prompt) == (e["source"], e["target"])
        assert rs.ft_checkpoints[a.name].manifest.files[0].path == e["file"]
