"""Rehearsal forgeries: release-format files from small pieces (tiny configs), the CelebA-HQ stand-in in every
layout, and the generated manifest tree. Full-size forging is exercised by `test_full_size_*` (slow)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from benchmark.core.hashing import sha256_file
from benchmark.rehearsal import formats
from benchmark.rehearsal.fill import fill_state_dict, random_like

sys.path.insert(0, str(Path(__file__).parent))
from ddpm_reference import ddpm_forward, ddpm_shapes  # noqa: E402

SMALL_DDPM = {"ch": 32, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "attn_resolutions": (8,), "resolution": 16,
              "in_channels": 3, "out_ch": 3}


def test_ermongroup_layout_matches_the_independent_reference_at_full_size():
    ours = formats.ermongroup_ddpm_shapes(**formats.CELEBA_HQ_DDPM)
    assert ours == ddpm_shapes(**formats.CELEBA_HQ_DDPM)
    assert list(ours)[:2] == ["temb.dense.0.weight", "temb.dense.0.bias"] and list(ours)[-1] == "conv_out.bias"
    assert ours["mid.attn_1.q.weight"] == (512, 512, 1, 1)  # the 512×8×8 h-space of the CelebA-HQ DDPM


def test_forged_ermongroup_state_dict_converts_and_runs_like_the_reference():
    import models as M

    shapes = formats.ermongroup_ddpm_shapes(**SMALL_DDPM)
    state = fill_state_dict({k: torch.empty(s) for k, s in shapes.items()}, seed=3)
    unet = M.from_ddpm_checkpoint(state, **SMALL_DDPM)
    x, t = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    with torch.no_grad():
        want, got = ddpm_forward(state, x, t, **SMALL_DDPM), unet(x, t).sample
    assert torch.isfinite(want).all() and want.std() > 0.05  # random weights still give a non-degenerate ε
    assert (got - want).abs().max() < 1e-4


def test_fill_is_per_key_and_seeded():
    like = torch.empty(8, 4)
    a, b = random_like("x.weight", like, 0), random_like("x.weight", like, 0)
    assert torch.equal(a, b) and not torch.equal(a, random_like("y.weight", like, 0))
    assert not torch.equal(a, random_like("x.weight", like, 1))
    assert torch.equal(random_like("bn.num_batches_tracked", torch.ones((), dtype=torch.long), 0),
                       torch.zeros((), dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        random_like("position_ids", torch.ones(3, dtype=torch.long), 0)


def test_diffusers_bin_with_pre_2023_attention_names_loads(tmp_path):
    """The 2022 Hub snapshots' `.bin` carries `query/key/value/proj_attn`; diffusers still maps them."""
    from diffusers import UNet2DModel

    from benchmark.rehearsal.forge_models import _diffusers_bin

    config = {"sample_size": 16, "block_out_channels": [32, 32], "layers_per_block": 1, "norm_num_groups": 8,
              "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]}
    UNet2DModel(**config).save_config(tmp_path)
    _diffusers_bin(UNet2DModel, config, 0, tmp_path / "diffusion_pytorch_model.bin")
    saved = torch.load(tmp_path / "diffusion_pytorch_model.bin", weights_only=True)
    assert any(k.endswith(".query.weight") for k in saved) and not any(".to_q." in k for k in saved)
    unet = UNet2DModel.from_pretrained(tmp_path, use_safetensors=False)
    loaded = unet.state_dict()
    [q] = [k for k in saved if k.endswith("attentions.0.query.weight") and k.startswith("down_blocks")]
    assert torch.equal(loaded[q.replace(".query.", ".to_q.")], saved[q])


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory, fixtures):
    from benchmark.rehearsal.forge_data import forge_celebahq

    return forge_celebahq(tmp_path_factory.mktemp("celebahq"), {"test": 2, "train": 3}, seed=0)


def test_stand_in_items_are_distinct_and_in_rule_order(stand_in):
    test, train = stand_in.items["test"], stand_in.items["train"]
    names = [i["celeba_file"] for i in test + train]
    assert len(set(names)) == 5 and [i["celeba_file"] for i in test] == sorted(i["celeba_file"] for i in test)
    assert len({i["sha256"]["stylemapgan-raw"] for i in test + train}) == 5


def test_every_layout_loads_to_the_same_pixels(stand_in, tmp_path):
    """Folder, zip, LMDB and CelebAMask-HQ (folder and zip) of the stand-in, through data.load_dataset with the
    generated smoke manifest: digests check out and the canonical images agree."""
    from benchmark.inputs.data import load_dataset
    from benchmark.inputs.manifests import ManifestRegistry
    from benchmark.rehearsal.manifest_tree import write_manifest_tree
    from benchmark.rehearsal.tree import ForgedTree

    tree = write_manifest_tree(tmp_path / "manifests", ForgedTree(tmp_path / "forged", 0), stand_in)
    manifest = ManifestRegistry(tree).get("dataset", "celebahq-train-smoke").manifest
    sources = {"stylemapgan-raw": ["raw-folder", "raw-zip"], "diffusionclip-lmdb": ["lmdb-train"],
               "celebamask-hq": ["celebamask-folder", "celebamask-zip"]}
    loaded = {}
    for distribution, layouts in sources.items():
        for layout in layouts:
            images = load_dataset(manifest, stand_in.paths[layout], distribution=distribution, record=False)
            assert images.ids == [i["id"] for i in stand_in.items["train"]]
            loaded[layout] = images.images
    first = loaded.pop("lmdb-train")
    assert first.shape == (3, 3, 256, 256)
    for layout, images in loaded.items():
        assert torch.equal(images, first), layout


def test_generated_tree_pins_forgeries_and_adds_smoke(stand_in, tmp_path):
    from benchmark.core.paths import MANIFESTS_DIR
    from benchmark.inputs.manifests import ManifestRegistry, resolve_suite
    from benchmark.rehearsal.manifest_tree import write_manifest_tree
    from benchmark.rehearsal.tree import ForgedTree

    forged = ForgedTree(tmp_path / "forged", 0)
    (tmp_path / "forged").mkdir()
    (tmp_path / "forged" / "b.bin").write_bytes(b"forged")
    forged.files["bisenet-79999@1"] = {"79999_iter.pth": {"path": "b.bin", "sha256": sha256_file(
        tmp_path / "forged" / "b.bin"), "size": 6}}
    tree = write_manifest_tree(tmp_path / "manifests", forged, stand_in)
    registry = ManifestRegistry(tree)
    assert not registry.errors
    [f] = registry.get("model", "bisenet-79999").manifest.files
    assert (f.sha256, f.size) == (forged.files["bisenet-79999@1"]["79999_iter.pth"]["sha256"], 6)
    shipped = ManifestRegistry(MANIFESTS_DIR).get("model", "bisenet-79999").manifest.files[0]
    assert shipped.sha256 != f.sha256  # the repository's manifests are untouched
    for suite in ("paper-table", "official-checkpoints", "ldm", "ablation-ft"):
        resolved = resolve_suite(suite, profile="smoke", registry=registry)
        assert resolved.suite.requires == "cpu-ok" and resolved.dataset.ref == "celebahq-test-smoke@1"
        assert resolved.suite.steps.n_test == 3 and resolved.base_model.manifest.name in (
            "sdedit-celebahq", "ldm-celebahq-256")
    full = resolve_suite("paper-table", profile="smoke-full", registry=registry).suite.known_answers
    cheap = resolve_suite("paper-table", profile="smoke", registry=registry).suite.known_answers
    assert len(cheap.checks) < len(full.checks) and full.n_images == cheap.n_images == 2
    assert cheap.t_edit_sweep == [] and full.t_edit_sweep == [999, 500]
    assert {c.check for c in cheap.checks} == {"zero_delta_exact", "reconstruction_psnr", "target_shift"}


@pytest.mark.slow
def test_full_size_sdedit_forgery_loads_through_the_harness_loader(tmp_path):
    """The 455 MB celeba_hq.ckpt forgery: the ermongroup layout at full size, converted to a 512×8×8 h-space."""
    from benchmark.core.paths import MANIFESTS_DIR
    from benchmark.inputs.manifests import ManifestRegistry
    from benchmark.rehearsal.forge_models import forge_sdedit

    manifest = ManifestRegistry(MANIFESTS_DIR).get("model", "sdedit-celebahq").manifest
    path = tmp_path / "celeba_hq.ckpt"
    forge_sdedit(manifest, 0, lambda _: path)
    import models as M

    model = M.load_sdedit_celebahq(path, sha256=sha256_file(path))
    assert (model.unet.h_channels, model.unet.h_size, model.unet.temb_dim) == (512, 8, 512)
