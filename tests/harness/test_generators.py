"""The committed generated manifests are exactly what their scripts produce; `--raw` pins the CelebA-HQ split."""

import sys
import zipfile

import pytest
import yaml

from benchmark.core.paths import MANIFESTS_DIR, REPO_ROOT
from benchmark.inputs.manifests import load_manifest

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import make_celebahq_manifests  # noqa: E402
import make_fixture_manifests  # noqa: E402
import make_paper_values  # noqa: E402

GENERATED = ["datasets/celebahq-fixtures.yaml", "datasets/celebahq-test-first100.yaml",
             "datasets/celebahq-train-first1000.yaml", "models/asyrp-ft-smiling.yaml", "models/asyrp-ft-young.yaml",
             "paper_values/paper-table.yaml"]


def test_committed_manifests_match_their_generators(tmp_path, fixtures, monkeypatch):
    make_fixture_manifests.main(["--fixtures", str(fixtures), "--out", str(tmp_path)])
    make_celebahq_manifests.main(["--out", str(tmp_path / "datasets")])
    monkeypatch.setattr(make_paper_values, "MANIFESTS_DIR", tmp_path)
    make_paper_values.main()
    for rel in GENERATED:
        assert (tmp_path / rel).read_text() == (MANIFESTS_DIR / rel).read_text(), rel


def test_raw_listing_pins_the_first_100_sorted_test_images(tmp_path, fixtures):
    mapping = fixtures / "celebahq" / "CelebA-HQ-to-CelebA-mapping.noheader.txt"
    names = [line.split()[2] for line in mapping.read_text().splitlines()]
    test_names, train_names = sorted(names[:120], reverse=True), names[200:1300]
    raw = tmp_path / "celeba_hq_raw.zip"
    with zipfile.ZipFile(raw, "w") as zf:
        for split, files in (("test", test_names), ("train", train_names)):
            for n in files:
                zf.writestr(f"raw_images/{split}/images/{n}", f"bytes of {n}")
    make_celebahq_manifests.main(["--raw", str(raw), "--mapping", str(mapping), "--out", str(tmp_path / "out")])
    m = load_manifest(tmp_path / "out" / "celebahq-test-first100.yaml").manifest
    assert [it.celeba_file for it in m.items] == sorted(test_names)[:100]
    first = m.items[0]
    hq = names.index(first.celeba_file)
    assert first.celebahq_index == hq and first.id == first.celeba_file.removesuffix(".jpg")
    assert first.sha256["stylemapgan-raw"] is not None and first.sha256["diffusionclip-lmdb"] is None
    with pytest.raises(SystemExit, match="fewer than 1000"):
        short = tmp_path / "short.zip"
        with zipfile.ZipFile(short, "w") as zf:
            for n in test_names:
                zf.writestr(f"raw_images/test/images/{n}", b"x")
            zf.writestr(f"raw_images/train/images/{names[0]}", b"x")
        make_celebahq_manifests.main(["--raw", str(short), "--mapping", str(mapping), "--out", str(tmp_path / "o2")])
    assert yaml.safe_load((tmp_path / "out" / "celebahq-test-first100.yaml").read_text())["count"] == 100
