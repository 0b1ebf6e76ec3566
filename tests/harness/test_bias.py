"""Bias analysis: CelebA attribute groups, per-group means and CIs, per-group FID/KID from stored features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_helpers import random_images

from benchmark.core.errors import DataError, UnknownNameError
from benchmark.core.paths import REPO_ROOT
from benchmark.outputs.report.bias import per_image_row, set_metric_row, split_indices
from benchmark.outputs.report.groups import (
    attribute_values,
    group_labels,
    image_refs,
    read_attribute_table,
    read_mapping,
)

ATTRS = "Male Young Pale_Skin"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture()
def celeba_file(tmp_path):
    # Keyed by the original CelebA file, like list_attr_celeba.txt.
    return _write(tmp_path, "list_attr_celeba.txt", f"3\n{ATTRS}\n000001.jpg  1 -1  1\n000002.jpg -1  1 -1\n"
                                                    "000003.jpg  1  1 -1\n")


@pytest.fixture()
def hq_file(tmp_path):
    # Keyed by the CelebA-HQ index, like CelebAMask-HQ-attribute-anno.txt.
    return _write(tmp_path, "anno.txt", f"2\n{ATTRS}\n0.jpg -1 -1 1\n12.jpg 1 1 1\n")


def test_celeba_keyed_file_groups_by_celeba_file(celeba_file):
    table = read_attribute_table(celeba_file)
    assert table.key_kind == "celeba_file" and table.names == ("Male", "Young", "Pale_Skin")
    refs = image_refs(["000003", "000001", "000002"])  # ids of CelebA-HQ datasets are CelebA file stems
    assert attribute_values(table, refs, "Male").tolist() == [1, 1, -1]
    assert group_labels(table, refs, "Young") == ["Young", "not Young", "Young"]


def test_hq_keyed_file_uses_item_index_or_mapping(hq_file, tmp_path):
    table = read_attribute_table(hq_file)
    assert table.key_kind == "celebahq_index"
    items = {"000005": {"celeba_file": "000005.jpg", "celebahq_index": 12}}
    assert attribute_values(table, image_refs(["000005"], items), "Male").tolist() == [1]
    mapping = read_mapping(_write(tmp_path, "map.txt", "idx orig_idx orig_file\n0 6 000007.jpg\n12 4 000005.jpg\n"))
    refs = image_refs(["000007", "000005"], mapping=mapping)
    assert attribute_values(table, refs, "Pale_Skin").tolist() == [1, 1]
    with pytest.raises(DataError, match="no row") as err:  # no index known: the fix names the mapping file
        attribute_values(table, image_refs(["000007"]), "Male")
    assert "--mapping-file" in err.value.fix


def test_unknown_attribute_suggests_the_name(celeba_file):
    with pytest.raises(UnknownNameError, match="Did you mean: Pale_Skin"):
        read_attribute_table(celeba_file).column("pale_skin")


def test_image_without_row_is_named(celeba_file):
    with pytest.raises(DataError, match="1 image.*000009"):
        attribute_values(read_attribute_table(celeba_file), image_refs(["000001", "000009"]), "Male")


@pytest.mark.parametrize("text, where", [
    (f"3\n{ATTRS}\n000001.jpg 1 1 1\n", "line 1: the header says 3 rows but the file has 1"),
    (f"1\n{ATTRS}\n000001.jpg 1 0 1\n", "line 3: attribute values must be 1 or -1"),
    (f"1\n{ATTRS}\n000001.jpg 1 1\n", "line 3: expected a file name and 3 values"),
    (f"2\n{ATTRS}\n000001.jpg 1 1 1\n000001.jpg 1 1 1\n", "line 4: 000001.jpg appears twice"),
    (f"2\n{ATTRS}\n000001.jpg 1 1 1\n1.jpg 1 1 1\n", "line 4: rows must all be named"),
    ("x\nMale\n", "line 1: expected the number of rows"),
    ("1\nMale Male\n", "line 2: expected distinct attribute names"),
])
def test_malformed_file_names_the_line(tmp_path, text, where):
    with pytest.raises(DataError, match=where):
        read_attribute_table(_write(tmp_path, "bad.txt", text))


def test_group_smaller_than_two_is_refused():
    with pytest.raises(DataError, match="not Male: N = 1"):
        split_indices(["Male", "Male", "not Male"], "Male")


def _numpy_bootstrap_means(values, rng, b):
    idx = rng.integers(0, len(values), size=(b, len(values)))
    return values[idx].mean(axis=1)


def test_group_means_and_cis_match_an_independent_numpy_bootstrap():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(0.3, 0.1, 25), rng.normal(0.2, 0.05, 15)])
    labels = ["Male"] * 25 + ["not Male"] * 15
    rng.shuffle(perm := np.arange(40))
    values, labels = values[perm], [labels[i] for i in perm]
    groups = split_indices(labels, "Male")
    b = 5000
    row = per_image_row("Male", "smiling", "sdir", "higher", values, groups, seed=0, resamples=b)
    ref = np.random.default_rng(12345)  # another generator: agreement is statistical, not by construction
    a_vals = values[[i for i, g in enumerate(labels) if g == "Male"]]
    b_vals = values[[i for i, g in enumerate(labels) if g == "not Male"]]
    for side, vals in ((row.a, a_vals), (row.b, b_vals)):
        assert side.n == len(vals) and side.mean == pytest.approx(vals.mean(), abs=1e-12)
        reps = _numpy_bootstrap_means(vals, ref, b)
        se = vals.std(ddof=1) / np.sqrt(len(vals))
        # Monte Carlo error of a 2.5% quantile at B = 5000 is ≈ 0.04 SE per estimate; 0.2 SE is > 3.5 sd of the
        # difference of two estimates. A CI of the wrong group, or of the values rather than the mean, is far off.
        assert side.ci_low == pytest.approx(np.percentile(reps, 2.5), abs=0.2 * se)
        assert side.ci_high == pytest.approx(np.percentile(reps, 97.5), abs=0.2 * se)
    diff_reps = _numpy_bootstrap_means(a_vals, ref, b) - _numpy_bootstrap_means(b_vals, ref, b)
    se_diff = np.sqrt(a_vals.var(ddof=1) / len(a_vals) + b_vals.var(ddof=1) / len(b_vals))
    assert row.difference == pytest.approx(a_vals.mean() - b_vals.mean(), abs=1e-12)
    assert row.difference_ci_low == pytest.approx(np.percentile(diff_reps, 2.5), abs=0.2 * se_diff)
    assert row.difference_ci_high == pytest.approx(np.percentile(diff_reps, 97.5), abs=0.2 * se_diff)


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory):
    """FID and KID of 12 edits through the real metrics (random Inception), with the feature sets they keep."""
    from metrics import EditSet, get_metric

    cache = tmp_path_factory.mktemp("features")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASYRP_CACHE", str(tmp_path_factory.mktemp("asyrp-cache")))
        metrics = {name: get_metric(name, backend="tiny-inception-random", device="cpu", feature_layer="64",
                                    cache_dir=cache) for name in ("fid@1", "kid@1")}
        edits = EditSet(edited=random_images(12, 48, seed=1), original=random_images(12, 48, seed=2, high=200))
        results = {name: m.compute(edits) for name, m in metrics.items()}
        yield metrics, edits, results


def test_per_group_fid_and_kid_equal_the_metric_on_that_subset(feature_run):
    from metrics import EditSet

    metrics, edits, results = feature_run
    labels = ["Male" if i % 3 == 0 else "not Male" for i in range(12)]
    groups = split_indices(labels, "Male")
    for name, metric in metrics.items():
        res = results[name]
        assert res.feature_sets["edited"].shape == (12, 64)
        row = set_metric_row("Male", "smiling", name, "lower", res.spec, res.feature_sets["edited"],
                             res.feature_sets["reference"], groups, seed=0)
        for side, (_, idx) in zip((row.a, row.b), groups, strict=True):
            subset = EditSet(edited=edits.edited[torch.from_numpy(idx)], original=edits.original[torch.from_numpy(idx)])
            direct = metric.compute(subset).primary
            assert side.n == direct.n == len(idx)
            assert side.mean == pytest.approx(direct.mean, rel=1e-6)
            assert side.ci_low == pytest.approx(direct.ci_low, rel=1e-6)
            assert side.ci_high == pytest.approx(direct.ci_high, rel=1e-6)
        assert row.difference == pytest.approx(row.a.mean - row.b.mean)
        assert row.difference_ci_low < row.difference_ci_high


# -- end to end: a real run of the paper-table `tiny` profile on the 11 fixture images, then `run_all.py bias` ----

def _cli(tmp_path, *args, timeout=900):
    import os
    import subprocess
    import sys

    repo = REPO_ROOT
    env = {**os.environ, "ASYRP_CACHE": str(tmp_path / "cache"), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(repo / "run_all.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tmp_path)


def _hand_counts(anno, manifest_items, attribute):
    """Group sizes read straight from the attribute file by CelebA-HQ index (independent of benchmark.outputs.report)."""
    lines = anno.read_text().splitlines()
    col = lines[1].split().index(attribute)
    value = {ln.split()[0].split(".")[0]: int(ln.split()[1 + col]) for ln in lines[2:]}
    plus = sum(value[str(it["celebahq_index"])] == 1 for it in manifest_items)
    return {attribute: plus, f"not {attribute}": len(manifest_items) - plus}


@pytest.mark.slow
def test_bias_cli_on_a_tiny_paper_table_run(tmp_path, fixtures, capsys):
    import hashlib
    import json
    from pathlib import Path

    import yaml

    run = _cli(tmp_path, "run", "--suite", "paper-table", "--profile", "tiny", "--device", "cpu",
               "--attributes", "smiling", "--json", "--out", "runs")
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = Path(json.loads(run.stdout)["run_dir"])
    assert (run_dir / "features" / "index.json").is_file()
    anno = fixtures / "celebahq" / "CelebAMask-HQ-attribute-anno.txt"
    proc = _cli(tmp_path, "bias", str(run_dir), "--by", "Male", "Pale_Skin", "--attributes-file", str(anno))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run_dir / "bias"
    assert {p.name for p in out.iterdir()} == {"bias.md", "bias.csv", "bias.json", "bias_Male.png",
                                               "bias_Pale_Skin.png"}
    report = json.loads((out / "bias.json").read_text())
    prov = report["provenance"]
    assert prov["attributes_file_sha256"] == hashlib.sha256(anno.read_bytes()).hexdigest()
    assert prov["run_id"] == run_dir.name and prov["grouping"] == ["Male", "Pale_Skin"] and prov["bootstrap_seed"] == 0
    repo = REPO_ROOT
    items = yaml.safe_load((repo / "manifests" / "datasets" / "celebahq-fixtures.yaml").read_text())["items"]
    for attribute in ("Male", "Pale_Skin"):
        assert report["counts"][attribute] == _hand_counts(anno, items, attribute)
    assert "N per group is small" in (out / "bias.md").read_text() and "N < 20" in proc.stderr
    # Per-image group means are the plain means of the run's per-image values over the group's ids.
    rows = [json.loads(line) for line in (run_dir / "per_image.jsonl").read_text().splitlines()]
    males = {str(it["id"]) for it in items if _hand_counts(anno, [it], "Male")["Male"] == 1}
    sdir = next(r for r in report["rows"] if (r["by"], r["edit"], r["metric"]) == ("Male", "smiling", "sdir"))
    expected = np.mean([r["value"] for r in rows if r["attribute"] == "smiling" and r["metric"] == "sdir"
                        and r["id"] in males])
    assert sdir["a_mean"] == pytest.approx(expected, abs=1e-12) and sdir["a_n"] == len(males)
    assert {r["metric"] for r in report["rows"]} == {"sdir", "sc", "id", "fid_orig", "kid_orig"}
    # Bad input: exit 2 with the fix, nothing half-written (in-process: the same CLI entry point, no new interpreter).
    from benchmark.cli import main

    assert main(["bias", str(run_dir), "--by", "Young", "--attributes-file", str(anno)]) == 2
    assert "not Young: N = 0" in capsys.readouterr().err
    assert main(["bias", str(run_dir), "--by", "pale_skin", "--attributes-file", str(anno)]) == 2
    assert "Did you mean: Pale_Skin" in capsys.readouterr().err
    assert json.loads((out / "bias.json").read_text()) == report
