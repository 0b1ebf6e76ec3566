"""Manifests: the shipped ones validate and resolve; bad YAML, schemas, references and paths fail clearly."""

import math
import shutil
from pathlib import Path

import pytest
import yaml

from benchmark.core.errors import BenchError, ManifestError, UnknownNameError
from benchmark.core.hashing import json_digest
from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.manifests import (
    ManifestRegistry,
    ResolutionErrors,
    deep_merge,
    load_manifest,
    manifest_from_dict,
    parse_yaml,
    resolve_suite,
)

ATTR = {"schema_version": 1, "kind": "attribute", "name": "smiling", "version": 1, "description": "d",
        "source_prompt": "face", "target_prompt": "smiling face", "domain": "in-domain", "t_edit": 513,
        "t_boost": 167, "lambda_clip": 0.8, "lambda_recon": 3.0}


@pytest.fixture(scope="module")
def registry():
    return ManifestRegistry()


def test_every_shipped_manifest_validates(registry):
    assert registry.errors == []
    assert {"paper-table@1", "official-checkpoints@1", "ablation-ft@1", "ldm@1", "synthetic@1"} <= set(
        registry.names("suite"))
    assert {"smiling@1", "sad@1", "tanned@1", "pixar@1", "neanderthal@1"} <= set(registry.names("attribute"))
    ds = registry.get("dataset", "celebahq-test-first100@1").manifest
    assert ds.count == 100 and ds.image_size == 256 and ds.selection is not None


@pytest.mark.parametrize("suite", ["paper-table", "official-checkpoints@1"])
def test_tiny_profiles_resolve_with_digests(registry, suite):
    rs = resolve_suite(suite, profile="tiny", registry=registry)
    assert rs.suite.requires == "cpu-ok" and rs.dataset.ref == "celebahq-fixtures@1"
    assert list(rs.attributes) == ["smiling", "sad", "tanned", "pixar", "neanderthal"]
    digests = rs.manifest_digests()
    assert digests[f"dataset:{rs.dataset.ref}"] == rs.dataset.digest
    assert all(len(d) == 64 for d in digests.values())
    # the profile changes what the suite means, so the recorded suite digest differs from the plain one
    plain = registry.get("suite", suite)
    assert rs.digest != plain.digest


def test_manifest_digest_is_json_digest_of_the_document_not_of_its_bytes(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text(yaml.safe_dump(ATTR, sort_keys=True))
    b = tmp_path / "b.yaml"
    b.write_text("# a comment\n" + yaml.safe_dump(dict(reversed(list(ATTR.items()))), sort_keys=False))
    assert load_manifest(a).digest == load_manifest(b).digest == json_digest(ATTR)
    changed = dict(ATTR, t_edit=512)
    assert json_digest(changed) != json_digest(ATTR)


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("schema_version: 1\nkind: attribute\nname: x\n  version: 1\n")
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    assert str(p) in str(e.value) and "line 4" in str(e.value) and "fix:" in str(e.value)
    with pytest.raises(ManifestError, match="mapping at the top level"):
        parse_yaml("- just\n- a list\n", "list.yaml")


def test_schema_errors_name_each_field_and_what_was_expected():
    bad = dict(ATTR, domain="sideways", t_edit=1200)
    with pytest.raises(ManifestError) as e:
        manifest_from_dict(bad, "smiling.yaml")
    msg = str(e.value)
    assert "smiling.yaml" in msg and "domain" in msg and "in-domain" in msg and "t_edit" in msg
    with pytest.raises(ManifestError, match="Did you mean: attribute"):
        manifest_from_dict(dict(ATTR, kind="atribute"))
    with pytest.raises(ManifestError, match="schema_version 2 is not supported"):
        manifest_from_dict(dict(ATTR, schema_version=2))
    with pytest.raises(ManifestError, match="t_boost"):
        manifest_from_dict(dict(ATTR, t_boost=600))
    with pytest.raises(ManifestError, match="lamda_clip: unknown field \\(did you mean lambda_clip\\?\\)"):
        manifest_from_dict(dict(ATTR, lamda_clip=1.0))


@pytest.mark.parametrize("path", ["../../etc/passwd", "/abs/model.bin", "a/../../b.bin", "..\\x.bin"])
def test_path_traversal_in_a_model_manifest_is_refused(path):
    doc = {"schema_version": 1, "kind": "model", "name": "m", "version": 1, "description": "d", "loader": "x",
           "source": {"type": "url", "files": [{"path": path, "url": "https://example.org/m.bin"}]}}
    with pytest.raises(ManifestError, match="path"):
        manifest_from_dict(doc)


def test_path_traversal_in_a_dataset_template_is_refused():
    doc = yaml.safe_load((MANIFESTS_DIR / "datasets" / "celebahq-fixtures.yaml").read_text())
    doc["distributions"]["fixtures"]["template"] = "../{file}"
    with pytest.raises(ManifestError, match=r"\.\."):
        manifest_from_dict(doc)


def test_unknown_suite_attribute_and_metric_get_did_you_mean(registry, tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean: paper-table@1"):
        resolve_suite("paper-tabel", registry=registry)
    with pytest.raises(UnknownNameError, match="Available: smiling@1"):
        registry.get("attribute", "smiling@7")
    root = _copy_manifests(tmp_path)
    suite = root / "suites" / "paper-table.yaml"
    suite.write_text(suite.read_text().replace("[smiling@1, sad@1", "[smilling@1, sad@1"))
    with pytest.raises(ResolutionErrors) as e:
        resolve_suite("paper-table", profile="tiny", registry=ManifestRegistry(root),
                      known_metrics=["sdir@1", "sc@1", "fid@1", "kid@1"])
    msgs = [str(p) for p in e.value.problems]
    assert any("Unknown attribute 'smilling@1'. Did you mean: smiling@1" in m for m in msgs)
    assert any("Unknown metric 'id@1'" in m for m in msgs)  # every problem is reported, not just the first
    assert isinstance(e.value, BenchError) and e.value.exit_code == 2


def test_registry_collects_every_bad_file(tmp_path):
    root = _copy_manifests(tmp_path)
    (root / "attributes" / "broken.yaml").write_text("kind: attribute\nname: [oops\n")
    (root / "models" / "smiling.yaml").write_text(yaml.safe_dump(ATTR))  # right schema, wrong folder
    (root / "attributes" / "smiling-copy.yaml").write_text(yaml.safe_dump(ATTR))  # duplicate smiling@1
    reg = ManifestRegistry(root)
    text = "\n".join(str(e) for e in reg.errors)
    assert len(reg.errors) == 3
    assert "broken.yaml: malformed YAML" in text and "must live under attributes/" in text
    assert "also defined in" in text


def test_profiles_deep_merge_dicts_and_replace_lists():
    base = {"steps": {"n_inv": 40, "n_test": 40}, "metrics": [1, 2, 3], "requires": "cuda"}
    merged = deep_merge(base, {"steps": {"n_inv": 4}, "metrics": [9], "requires": "cpu-ok"})
    assert merged == {"steps": {"n_inv": 4, "n_test": 40}, "metrics": [9], "requires": "cpu-ok"}
    assert base["steps"]["n_inv"] == 40  # not mutated


def test_paper_values_null_is_not_reported_and_bands_follow_the_documented_rule(registry):
    pv = registry.get("paper_values", "paper-table").manifest
    paper_sdir = {v.attribute: v.value for v in pv.values if v.metric == "sdir" and v.column == "paper"}
    assert paper_sdir == {"smiling": 0.921, "sad": 0.964, "tanned": 0.991, "pixar": 0.956, "neanderthal": 0.805}
    assert all(not v.band.gate for v in pv.values if v.column == "paper" and v.value is not None)
    nulls = [v for v in pv.values if v.value is None]
    assert nulls and all(v.band is None for v in nulls)
    assert not any(v.value == 0 for v in pv.values)
    smiling = next(v for v in pv.values if v.metric == "sdir_uva" and v.attribute == "smiling"
                   and v.settings["delta_h_scale"] == 1.0)
    # by hand: 1.96 * sqrt(2) * 0.048 / sqrt(100) = 0.013304...
    assert smiling.value == 0.955 and math.isclose(smiling.band.high - 0.955, 0.0133, abs_tol=1e-4)
    assert math.isclose(0.955 - smiling.band.low, 0.0133, abs_tol=1e-4) and smiling.band.gate
    with pytest.raises(ManifestError, match="not reported"):
        manifest_from_dict({**pv.model_dump(mode="json"),
                            "values": [{"metric": "sc", "attribute": "sad", "column": "paper", "value": None,
                                        "provenance": "p", "band": {"gate": False, "rationale": "r"}}]})


def test_attribute_t_edit_and_t_boost_follow_the_authors_lpips_rule(registry, fixtures):
    """Independent check of the quoted settings against the authors' own LPIPS tables (asyrp-reference §5)."""
    tables = fixtures / "asyrp_official" / "tables"

    def table(name):
        rows = [line.split("\t") for line in (tables / name).read_text().splitlines() if line.strip()]
        return {int(t): float(v) for t, v in rows}

    x0t, x = table("celeba_LPIPS_distance_x0_t.tsv"), table("celeba_LPIPS_distance_x.tsv")
    implied_cos = {"smiling": 0.895, "sad": 0.895, "tanned": 0.888, "angry": 0.888, "young": 0.907,
                   "pixar": 0.666, "neanderthal": 0.803}  # midpoints of asyrp-reference §5's intervals
    for name, cos in implied_cos.items():
        attr = registry.get("attribute", name).manifest
        t_edit = min(t for t, v in x0t.items() if v >= 0.33 * cos)
        assert attr.t_edit == t_edit, name
        assert attr.t_boost == min(t for t, v in x.items() if v >= 1.2) == 167


def _copy_manifests(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, root, ignore=shutil.ignore_patterns("lock.json"))
    return root


def test_known_answers_need_the_trained_strength_among_the_delta_h_scales():
    """The checks measure each attribute's Δh-scale-1 edit: a suite without that scale is refused when it loads,
    not with a crash after its edits are computed."""
    suite = yaml.safe_load((MANIFESTS_DIR / "suites" / "synthetic.yaml").read_text())
    suite["edit"]["delta_h_scale"] = [2.0]
    with pytest.raises(ManifestError, match=r"add 1\.0 to edit\.delta_h_scale"):
        manifest_from_dict(suite)
    suite["edit"]["delta_h_scale"] = [2.0, 1.0]
    assert manifest_from_dict(suite).edit.delta_h_scale == [2.0, 1.0]


def test_an_eta_the_sampler_would_not_apply_is_refused():
    """The sampler always uses eta = 1 below t_boost: another value would be accepted and silently ignored."""
    suite = yaml.safe_load((MANIFESTS_DIR / "suites" / "synthetic.yaml").read_text())
    suite["edit"]["eta_after_boost"] = 0.0
    with pytest.raises(ManifestError, match=r"eta_after_boost=0\.0 is not supported.*t_boost to 0"):
        manifest_from_dict(suite)
    suite["edit"]["eta_after_boost"] = 1.0
    assert manifest_from_dict(suite).edit.eta_after_boost == 1.0
