"""Rehearsal of the LSUN suites, the cheap parts (seconds): the SDEdit church/bedroom layouts, the forged released
f_t and LPIPS tables against the authors' real CelebA-HQ files, the generated LSUN LMDB through the real loader
and the generated `smoke` profiles. The full journey (`rehearse --suite lsun-church-released`, minutes) is
measured by hand (docs/rehearsal.md)."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from ddpm_reference import ddpm_shapes

from benchmark.core.paths import MANIFESTS_DIR, REPO_ROOT
from benchmark.inputs.manifests import ManifestRegistry
from benchmark.rehearsal import formats
from benchmark.rehearsal.forge_models import copy_released_ft, forger_for

LSUN_SUITES = ("lsun-church-released", "lsun-bedroom-released")


def _manifest(name: str):
    return ManifestRegistry(MANIFESTS_DIR).get("model", name).manifest


def _forge(name: str, folder, seed: int = 0):
    manifest = _manifest(name)
    forger_for(manifest)(manifest, seed, lambda path: folder / path)
    return manifest


def test_lsun_ddpm_layouts_are_the_authors_configs():
    """The forged church/bedroom DDPMs follow DiffusionCLIP's configs/{church,bedroom}.yml as the release
    inventory records them (not this project's loader), in the independent reference's layout."""
    inventory = yaml.safe_load((REPO_ROOT / "scripts" / "release_inventory.yaml").read_text())
    for dataset, ours in (("church", formats.LSUN_CHURCH_DDPM), ("bedroom", formats.LSUN_BEDROOM_DDPM)):
        cfg = inventory["datasets"][dataset]["base_model"]["config"]
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in ours.items() if k in cfg} == {
            k: cfg[k] for k in ("ch", "ch_mult", "num_res_blocks", "attn_resolutions", "resolution")}
        assert formats.ermongroup_ddpm_shapes(**ours) == ddpm_shapes(**ours)


def test_forged_released_ft_has_the_authors_layout(tmp_path, fixtures):
    """Keys, shapes, dtypes and the optimizer/scheduler entries of a forged LSUN f_t are those of a real released
    CelebA-HQ f_t (the same DeltaBlock on the same 512-channel DDPM); it loads through the released-f_t loader."""
    import models as M

    real = torch.load(fixtures / "asyrp_official" / "checkpoints" / "smiling_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth",
                      map_location="cpu", weights_only=True)
    assert forger_for(_manifest("asyrp-ft-smiling")) is copy_released_ft  # a published digest: the real file
    forged = {}
    for name in ("asyrp-ft-church-gothic", "asyrp-ft-church-temple", "asyrp-ft-bedroom-hotel"):
        [f] = _forge(name, tmp_path).files
        forged[name] = torch.load(tmp_path / f.path, map_location="cpu", weights_only=True)
        got = forged[name]
        assert list(got) == list(real) and got["optimizer"] == real["optimizer"]
        assert got["scheduler"] == real["scheduler"]
        assert [(k, v.shape, v.dtype) for k, v in got["0"].items()] == [
            (k, v.shape, v.dtype) for k, v in real["0"].items()]
        block = M.load_official_ft(tmp_path / f.path)
        assert isinstance(block, M.DeltaBlock)
    a, b = forged["asyrp-ft-church-gothic"]["0"], forged["asyrp-ft-church-temple"]["0"]
    assert not torch.equal(a["conv1.weight"], b["conv1.weight"])  # each attribute its own f_t


def test_forgeries_are_byte_identical_per_seed_with_the_releases_archive_names(tmp_path, fixtures):
    """torch.save to a path names the archive's records after the file: through the atomic temp file that was a
    random name, so two forgings of one seed differed in bytes (and digests). Now `archive/...`, as released."""
    import zipfile

    from benchmark.core.hashing import sha256_file

    [f] = _forge("asyrp-ft-bedroom-princess", tmp_path / "a").files
    _forge("asyrp-ft-bedroom-princess", tmp_path / "b")
    assert sha256_file(tmp_path / "a" / f.path) == sha256_file(tmp_path / "b" / f.path)
    real = fixtures / "asyrp_official" / "checkpoints" / "smiling_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"
    names = {n.split("/", 1)[0] for n in zipfile.ZipFile(tmp_path / "a" / f.path).namelist()}
    assert names == {n.split("/", 1)[0] for n in zipfile.ZipFile(real).namelist()} == {"archive"}


def test_forged_lpips_tables_have_the_authors_rows_and_give_a_t(tmp_path, fixtures):
    import models as M

    real = M.read_lpips_curve(fixtures / "asyrp_official" / "tables" / "celeba_LPIPS_distance_x0_t.tsv")
    for name, prefix in (("asyrp-lpips-church", "church"), ("asyrp-lpips-bedroom", "bedroom")):
        manifest = _forge(name, tmp_path)
        for f in manifest.files:
            lines = (tmp_path / f.path).read_text().splitlines()
            assert all(re.fullmatch(r"\d+\t\d\.\d+(e-\d+)?", line) for line in lines), f.path
        curves = M.LpipsCurves.load(tmp_path, prefix)
        assert list(curves.x0t) == list(real) and 998 not in curves.x  # t = 1..997, 999 as the authors'
        values = list(curves.x.values())
        assert all(b > a for a, b in zip(values, values[1:], strict=False))
        assert 1 < M.select_t_boost(curves.x) < 999 and 1 < M.select_t_edit(curves.x0t, 0.8) < 999


@pytest.fixture(scope="module")
def lsun_tree(tmp_path_factory):
    from benchmark.rehearsal.forge_data import CelebaStandIn
    from benchmark.rehearsal.forge_lsun import forge_lsun
    from benchmark.rehearsal.manifest_tree import write_manifest_tree
    from benchmark.rehearsal.tree import ForgedTree

    root = tmp_path_factory.mktemp("lsun")
    lsun = forge_lsun(root / "data", ["lsun-church-outdoor-val-first100", "lsun-bedroom-val-first100"], 3)
    tree = write_manifest_tree(root / "manifests", ForgedTree(root / "forged", 0), CelebaStandIn(root / "celeba"),
                               lsun=lsun)
    return root, lsun, ManifestRegistry(tree)


def test_lsun_stand_in_loads_through_the_real_loader_by_the_rule(lsun_tree):
    """The generated LMDB (webp, shorter side 256, hex keys) read by the LSUN loader: the smoke manifest takes
    the first 2 keys by its rule and the lock records that membership, as in the real run."""
    from benchmark.inputs.data import load_dataset
    from benchmark.inputs.lock import LockFile, dataset_key

    root, lsun, registry = lsun_tree
    assert not registry.errors
    for real, smoke in (("lsun-church-outdoor-val-first100", "lsun-church-outdoor-smoke"),
                        ("lsun-bedroom-val-first100", "lsun-bedroom-smoke")):
        manifest = registry.get("dataset", smoke).manifest
        assert manifest.count == 2 and not manifest.items
        lock = LockFile.load(root / f"{smoke}.lock.json")
        images = load_dataset(manifest, lsun.paths[real], lock=lock)
        assert images.ids == lsun.keys[real][:2] and images.images.shape == (2, 3, 256, 256)
        assert images.images.float().std() > 20 and not torch.equal(images.images[0], images.images[1])
        assert lock.members(dataset_key(manifest.ref, "lsun-lmdb")) == images.ids


@pytest.mark.parametrize("suite", LSUN_SUITES)
def test_lsun_smoke_profile_and_journey(lsun_tree, suite):
    from benchmark.inputs.manifests import resolve_suite
    from benchmark.rehearsal.api import Rehearsal, suite_models
    from benchmark.rehearsal.tree import ForgedTree

    root, lsun, registry = lsun_tree
    resolved = resolve_suite(suite, profile="smoke", registry=registry)
    s = resolved.suite
    assert s.requires == "cpu-ok" and (s.steps.n_inv, s.steps.n_test) == (2, 3) and s.train is None
    assert resolved.dataset.ref.startswith("lsun-") and resolved.dataset.ref.endswith("-smoke@1")
    assert s.t_select is not None and s.t_select.tables is not None  # the authors' rule on forged tables
    assert {m.key for m in s.metrics} == {"sdir", "sdir_uva", "fid_orig", "fid_recon", "kid_orig"}
    with pytest.raises(Exception, match="smoke"):  # a CelebA-HQ suite without its stand-in gets no smoke profile
        resolve_suite("paper-table", profile="smoke", registry=registry)
    models = suite_models([suite])
    for m in models:  # every file the real run reads has a forger
        assert forger_for(m) is not None, m.ref
    names = {m.name for m in models}
    assert {"clip-vit-b16-openai", "clip-vit-b32-openai", "clip-vit-l14-openai", "inception-v3-compat"} <= names
    rehearsal = Rehearsal(root, ForgedTree(root / "forged", 0), None, root / "manifests", lsun=lsun)
    run = rehearsal.journey(suite)[-1]
    assert run[run.index("--data") + 1].endswith("_val_lmdb") and "--train-data" not in run
    assert run[run.index("--attributes") + 1] in ("church-gothic", "bedroom-hotel")



def test_prepare_rehearsal_of_an_lsun_suite_forges_its_lmdb_only(tmp_path, monkeypatch):
    """The wiring of `prepare_rehearsal` for an LSUN suite (the model forging, minutes at full size, stubbed):
    the LSUN LMDB is written, the CelebA-HQ stand-in is not, and the journey reads the LMDB."""
    from benchmark.rehearsal import api
    from benchmark.rehearsal.tree import ForgedTree

    seen = {}

    def no_forging(manifests, **kwargs):
        seen["models"] = sorted(m.name for m in manifests)
        return ForgedTree(tmp_path / "forged", 0)

    monkeypatch.setattr(api, "forged_tree", no_forging)
    rehearsal = api.prepare_rehearsal(tmp_path / "work", suites=["lsun-bedroom-released"])
    assert "sdedit-bedroom" in seen["models"] and "asyrp-lpips-bedroom" in seen["models"]
    assert not rehearsal.stand_in.items and set(rehearsal.lsun.paths) == {"lsun-bedroom-val-first100"}
    assert (rehearsal.lsun.paths["lsun-bedroom-val-first100"] / "data.mdb").is_file()
    fetch, validate, run = rehearsal.journey("lsun-bedroom-released")
    assert fetch[:3] == ["fetch", "--suite", "lsun-bedroom-released"] and "bedroom_val_lmdb" in " ".join(run)
